"""Which addresses a push URL may reach: public ones, and non-public ones only for named hosts.

A push URL comes from the directory, which admins edit; without a policy, a URL naming
``127.0.0.1``, ``10.x``, or ``169.254.169.254`` (cloud metadata) turns the gateway into a reader
of internal services. By default every address that is not globally routable is refused
(loopback, private, link-local, shared, reserved, multicast, unspecified; and such an IPv4
address inside an IPv6 one). The check is made on the addresses the connection will use: the
resolver of the push session refuses them, so a DNS answer that changes after the URL was
saved cannot bypass it; IP literals (which aiohttp does not resolve) are checked from the URL.
``allow_private_hosts`` lifts the check for hosts named exactly as in the URL.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from adapters.base import PermanentDeliveryError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
SCHEMES = frozenset({"http", "https"})


class ForbiddenTargetError(PermanentDeliveryError):
    """The push URL reaches an address the policy refuses (or is not an http(s) URL)."""

    default_code = "delivery.forbidden_target"


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` (and any IPv4 address inside it) is globally routable."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None and not is_public(inner):
            return False
    return address.is_global and not address.is_multicast


class TargetPolicy:
    """Public addresses always; others only for the hosts in ``allow_private_hosts``."""

    def __init__(self, allow_private_hosts: Iterable[str] = ()) -> None:
        self.allowed = frozenset(_normal(host) for host in allow_private_hosts)

    def host_allowed(self, host: str) -> bool:
        return _normal(host) in self.allowed

    def check_url(self, url: str) -> URL:
        """The parsed URL, if its scheme is http(s) and an IP literal host is allowed."""
        try:
            parsed = URL(url)
        except (ValueError, TypeError) as exc:
            raise ForbiddenTargetError(f"not a URL: {exc}", code="delivery.bad_url") from exc
        if parsed.scheme not in SCHEMES or not parsed.host:
            raise ForbiddenTargetError(
                "a push URL must be http:// or https:// with a host", code="delivery.bad_url"
            )
        try:
            literal = ipaddress.ip_address(parsed.host.strip("[]"))
        except ValueError:
            return parsed  # a name: its addresses are checked by the resolver
        self.check_address(parsed.host, literal)
        return parsed

    def check_address(self, host: str, address: IPAddress) -> None:
        if not is_public(address) and not self.host_allowed(host):
            raise ForbiddenTargetError(
                f"push host {host} reaches {address}, which is not a public address; "
                "name the host in [push] allow_private_hosts to allow it"
            )


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing answers that the policy does not allow (all or nothing)."""

    def __init__(self, policy: TargetPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self._policy.host_allowed(host):
            for result in results:
                self._policy.check_address(host, ipaddress.ip_address(result["host"]))
        return results

    async def close(self) -> None:
        await self._inner.close()


def guarded_session(policy: TargetPolicy) -> aiohttp.ClientSession:
    """A client session whose connections only reach what ``policy`` allows (no proxies from
    the environment, no cached answers from before a change of policy)."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy), use_dns_cache=False)
    return aiohttp.ClientSession(connector=connector, trust_env=False)


def _normal(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()
