"""The local systems allowed to speak the national protocol to this gateway, and their secrets.

The server must know each secret to check an HMAC, so the secrets cannot live in the participant
directory as hashes: they are kept in a file of their own (``settings.southbound.systems_path``,
mode 0600) that is never printed::

    [[system]]
    system_id = "000.00.04.H56"     # what the SDK is configured with
    secret = "…"
    organ_id = "000.00.04.H56"      # the participant whose credentials the system uses
    timestamp_window_s = 300        # optional: the default comes from the settings; 0 = any
    allowed_networks = ["10.1.2.0/24"]  # optional: the addresses it may call from (default: any)

The file is re-read when it changes, so systems can be added without a restart.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from adapters.national.protocol import SystemCredentials
from gateway.core.config_files import read_toml
from gateway.core.errors import ConfigError

log = structlog.get_logger(__name__)
_KEYS = frozenset({"system_id", "secret", "organ_id", "timestamp_window_s", "allowed_networks"})
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class LocalSystem:
    """A local document system: its protocol credentials, the participant it acts as, and the
    networks it may call from (empty: any)."""

    credentials: SystemCredentials
    organ_id: str
    allowed_networks: tuple[Network, ...] = ()

    @property
    def system_id(self) -> str:
        return self.credentials.system_id

    def allows(self, address: str | None) -> bool:
        """Whether a call from ``address`` (the peer's IP) is allowed."""
        if not self.allowed_networks:
            return True
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.allowed_networks)


def load_local_systems(path: Path, default_window_s: float) -> dict[str, LocalSystem]:
    """The systems in ``path`` by system id; ``ConfigError`` if the file is wrong."""
    data = read_toml(path)
    entries = data.get("system", [])
    if set(data) - {"system"} or not isinstance(entries, list):
        raise ConfigError(
            f"{path}: expected [[system]] tables only", code="config.invalid", path=str(path)
        )
    systems: dict[str, LocalSystem] = {}
    for i, entry in enumerate(entries):
        system = _system(entry, f"system[{i}]", default_window_s)
        if system.system_id in systems:
            raise ConfigError(
                f"system {system.system_id} is listed twice",
                code="config.invalid",
                path=f"system[{i}].system_id",
            )
        systems[system.system_id] = system
    return systems


def _system(entry: object, where: str, default_window_s: float) -> LocalSystem:
    if not isinstance(entry, dict) or set(entry) - _KEYS:
        raise ConfigError(
            f"{where}: only {', '.join(sorted(_KEYS))}", code="config.invalid", path=where
        )
    texts = [entry.get(key) for key in ("system_id", "secret", "organ_id")]
    window = entry.get("timestamp_window_s", default_window_s)
    if not all(isinstance(t, str) and t for t in texts):
        raise ConfigError(
            f"{where}: system_id, secret and organ_id are required strings",
            code="config.invalid",
            path=where,
        )
    if isinstance(window, bool) or not isinstance(window, int | float) or window < 0:
        raise ConfigError(
            f"{where}.timestamp_window_s must be a number >= 0",
            code="config.invalid",
            path=f"{where}.timestamp_window_s",
        )
    system_id, secret, organ_id = (str(t) for t in texts)
    return LocalSystem(
        SystemCredentials(system_id, secret, float(window) or None),
        organ_id,
        _networks(entry.get("allowed_networks", []), f"{where}.allowed_networks"),
    )


def _networks(value: object, where: str) -> tuple[Network, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"{where} must be a list of CIDR strings", code="config.invalid", path=where
        )
    try:
        return tuple(ipaddress.ip_network(v, strict=False) for v in value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}", code="config.invalid", path=where) from exc


def local_systems_toml(systems: Iterable[tuple[str, str, str]]) -> str:
    """The file for ``(system_id, secret, organ_id)`` triples (e.g. from ``lgsp demo init``)."""
    lines = [
        "# Local systems speaking the national SDK protocol to this gateway "
        "(/XrdAdapter/adapter/).",
        "# Secrets: keep this file private (mode 0600).",
        "",
    ]
    for system_id, secret, organ_id in systems:
        lines += [
            "[[system]]",
            f"system_id = {json.dumps(system_id)}",
            f"secret = {json.dumps(secret)}",
            f"organ_id = {json.dumps(organ_id)}",
            "",
        ]
    return "\n".join(lines)


class LocalSystems:
    """The live set of local systems: re-read when the file changes (a bad edit keeps the old)."""

    def __init__(self, path: Path | None, default_window_s: float) -> None:
        if default_window_s < 0:
            raise ConfigError(
                "southbound.timestamp_window_s must be >= 0 (0: any timestamp)",
                code="config.invalid",
                path="southbound.timestamp_window_s",
            )
        self.path = path
        self._default_window_s = default_window_s
        self._mtime_ns: int | None = None
        self._systems: Mapping[str, LocalSystem] = {}
        if path is not None:
            self._mtime_ns = self._stat()
            self._systems = load_local_systems(path, default_window_s)

    def _stat(self) -> int | None:
        try:
            return os.stat(self.path).st_mtime_ns if self.path else None
        except OSError:
            return None

    def get(self, system_id: str) -> LocalSystem | None:
        self._reload_if_changed()
        return self._systems.get(system_id)

    def credentials(self, system_id: str) -> SystemCredentials | None:
        system = self.get(system_id)
        return system.credentials if system else None

    def _reload_if_changed(self) -> None:
        mtime_ns = self._stat()
        if self.path is None or mtime_ns is None or mtime_ns == self._mtime_ns:
            return
        self._mtime_ns = mtime_ns
        try:
            self._systems = load_local_systems(self.path, self._default_window_s)
        except ConfigError as exc:
            log.error("local_systems_reload_failed", code=exc.code, error=exc.message)
