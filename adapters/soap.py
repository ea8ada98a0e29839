"""SOAP delivery via zeep: one configured route per service, X-Road headers, faults classified.

A route names a WSDL (in ``schemas/wsdl/`` unless absolute), the operation to call, the X-Road
header values (``client``, ``service``, ``userId``, ``protocolVersion``; ``id`` is the delivery
id, so the service can recognise a retried call) and a declarative request mapping
``{request field: source}``. Sources:

    package_base64   the package bytes exactly as received, base64-encoded
    delivery_id      the gateway's delivery id;  document_pk: its document id;  recipient: OrganId
    <dotted path>    a field of the parsed package, e.g. ``header.document_id``, ``sender``,
                     ``header.subject``, ``header.code.code_number`` (absent fields are omitted)

zeep loads the WSDL from local files only (no network, no DTD, no entities), builds the envelope
and reads the answer; aiohttp sends it (zeep's async transport needs httpx, not installed).
Outcome: a reply is delivered; a ``Server``/``Receiver`` fault, a timeout, a connection error and
HTTP 408/429/5xx without a fault are transient; a ``Client``/``Sender`` (or any other) fault, a
request that does not fit the WSDL and other HTTP statuses are permanent, with the fault text.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Final

import aiohttp
from lxml import etree
from multidict import CIMultiDictProxy
from zeep import Client, Settings
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import Fault, TransportError
from zeep.helpers import serialize_object
from zeep.transports import Transport

from adapters.base import (
    Adapter,
    DeliveryOutcome,
    OutboundDelivery,
    PermanentDeliveryError,
    TransientDeliveryError,
    request_body,
)
from gateway.core.errors import ConfigError, PackageError
from gateway.edxml.xml_codec import parse_package

PROTOCOL_VERSION: Final = "4.0"
DELIVERY_SOURCES: Final = frozenset({"package_base64", "delivery_id", "document_pk", "recipient"})
MAX_RESPONSE_BYTES: Final = 4 * 1024 * 1024
MAX_REASON_CHARS: Final = 300
BUILD_IN_THREAD_BYTES: Final = 1024 * 1024  # larger packages are parsed and encoded off the loop
TRANSIENT_FAULTS: Final = frozenset({"server", "receiver"})


@dataclass(frozen=True, slots=True)
class XRoadClient:
    """``xrd:client``: the calling member (``instance:memberClass:memberCode[:subsystem]``)."""

    instance: str
    member_class: str
    member_code: str
    subsystem: str | None = None


@dataclass(frozen=True, slots=True)
class XRoadService:
    """``xrd:service``: the provider's member, subsystem, service code and version."""

    instance: str
    member_class: str
    member_code: str
    service_code: str
    subsystem: str | None = None
    service_version: str | None = None


@dataclass(frozen=True, slots=True)
class SoapRoute:
    """How to call one SOAP service; ``request`` maps request fields to sources (see module)."""

    name: str
    wsdl: Path
    operation: str
    client: XRoadClient
    service: XRoadService
    user_id: str
    request: tuple[tuple[str, str], ...]
    protocol_version: str = PROTOCOL_VERSION
    service_name: str | None = None
    port_name: str | None = None
    endpoint: str | None = None
    timeout_s: float = 30.0


class _LocalTransport(Transport):
    """zeep's transport for loading WSDL/XSD: local files only, never the network."""

    def load(self, url: str) -> bytes:
        if "://" in url and not url.startswith("file://"):
            raise ConfigError(
                f"the WSDL refers to {url}: only local files are loaded",
                code="config.soap_remote_schema",
            )
        path = Path(url.removeprefix("file://")).expanduser()
        return path.read_bytes()


_ZEEP_SETTINGS: Final = Settings(
    strict=True, xml_huge_tree=False, forbid_dtd=True, forbid_entities=True, forbid_external=True
)


@dataclass(frozen=True, slots=True)
class _Reply:
    """What zeep's ``process_reply`` reads from an HTTP answer (a ``requests.Response`` shape)."""

    status_code: int
    content: bytes
    headers: CIMultiDictProxy[str]
    encoding: str | None = None


@dataclass(frozen=True, slots=True)
class _Bound:
    """A route with its loaded WSDL: the zeep client, operation, address and SOAPAction."""

    route: SoapRoute
    client: Any
    binding: Any
    operation: Any
    proxy: Any
    address: str
    soap_action: str
    headers: Mapping[str, object]


def bind_route(route: SoapRoute) -> _Bound:
    """Load the route's WSDL and check the operation and request fields against it."""
    try:
        transport = _LocalTransport()  # type: ignore[no-untyped-call]  # zeep is untyped
        client = Client(
            str(route.wsdl),
            settings=_ZEEP_SETTINGS,  # type: ignore[no-untyped-call]
            transport=transport,
        )
        service = (
            client.wsdl.services[route.service_name]
            if route.service_name
            else next(iter(client.wsdl.services.values()))
        )
        port = (
            service.ports[route.port_name]
            if route.port_name
            else next(iter(service.ports.values()))
        )
        operation = port.binding.get(route.operation)
    except (OSError, KeyError, StopIteration, ValueError, ZeepError, etree.LxmlError) as exc:
        raise ConfigError(
            f"SOAP route {route.name}: cannot use {route.wsdl}: {exc}",
            code="config.soap_wsdl",
            path=f"route.{route.name}",
        ) from exc
    known = {name for name, _ in getattr(operation.input.body.type, "elements", ())}
    unknown = sorted({key for key, _ in route.request} - known)
    if unknown:
        raise ConfigError(
            f"SOAP route {route.name}: {route.operation} has no field {unknown[0]}"
            f" (fields: {', '.join(sorted(known))})",
            code="config.soap_mapping",
            path=f"route.{route.name}.request.{unknown[0]}",
        )
    address = route.endpoint or port.binding_options.get("address")
    if not address:
        raise ConfigError(
            f"SOAP route {route.name}: no endpoint in the WSDL or the route",
            code="config.soap_endpoint",
            path=f"route.{route.name}.endpoint",
        )
    proxy = client.bind(service.name, port.name)
    return _Bound(
        route,
        client,
        port.binding,
        operation,
        proxy,
        address,
        operation.soapaction or "",
        _xroad_headers(route),
    )


def _xroad_headers(route: SoapRoute) -> dict[str, object]:
    c, s = route.client, route.service
    client = {
        "xRoadInstance": c.instance,
        "memberClass": c.member_class,
        "memberCode": c.member_code,
        "subsystemCode": c.subsystem,
        "objectType": "SUBSYSTEM" if c.subsystem else "MEMBER",
    }
    service = {
        "xRoadInstance": s.instance,
        "memberClass": s.member_class,
        "memberCode": s.member_code,
        "subsystemCode": s.subsystem,
        "serviceCode": s.service_code,
        "serviceVersion": s.service_version,
        "objectType": "SERVICE",
    }
    return {
        "client": client,
        "service": service,
        "userId": route.user_id,
        "protocolVersion": route.protocol_version,
    }


class SoapAdapter(Adapter):
    """Calls the SOAP route named by the recipient's delivery URL, one connection pool for all."""

    def __init__(
        self, routes: Mapping[str, SoapRoute], *, session: aiohttp.ClientSession | None = None
    ) -> None:
        self._bound = {name: bind_route(route) for name, route in routes.items()}
        self._session = session
        self._owns_session = session is None

    async def deliver(self, delivery: OutboundDelivery) -> DeliveryOutcome:
        bound = self._bound.get(delivery.url or "")
        if bound is None:
            raise PermanentDeliveryError(
                f"no SOAP route {delivery.url!r} for {delivery.organ_id}", code="soap.no_route"
            )
        if len(delivery.package) > BUILD_IN_THREAD_BYTES:
            body = await asyncio.to_thread(_envelope, bound, delivery)
        else:
            body = _envelope(bound, delivery)
        reply = await self._post(bound, body)
        return _outcome(bound, reply)

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, bound: _Bound, body: bytes) -> _Reply:
        headers = {
            "Content-Type": 'text/xml; charset="utf-8"',
            "SOAPAction": f'"{bound.soap_action}"',
        }
        timeout = aiohttp.ClientTimeout(total=bound.route.timeout_s)
        try:
            async with self._client().post(
                bound.address,
                data=request_body(body),
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                content = await _read_capped(response)
                return _Reply(response.status, content, response.headers, response.charset)
        except TimeoutError as exc:
            raise TransientDeliveryError(
                f"no answer from {bound.address} in {bound.route.timeout_s:g} s",
                code="delivery.timeout",
            ) from exc
        except aiohttp.ClientError as exc:
            raise TransientDeliveryError(
                f"cannot reach {bound.address}: {exc}", code="delivery.connection"
            ) from exc

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise PermanentDeliveryError(
                f"the SOAP answer exceeds {MAX_RESPONSE_BYTES} bytes",
                code="soap.bad_response",
                status_code=response.status,
            )
        chunks.append(chunk)
    return b"".join(chunks)


# --- request -------------------------------------------------------------------------------------


def _envelope(bound: _Bound, delivery: OutboundDelivery) -> bytes:
    """The SOAP envelope for ``delivery``, built by zeep from the WSDL."""
    values = request_values(bound.route, delivery)
    headers = {**bound.headers, "id": delivery.delivery_id}
    try:
        envelope = bound.client.create_message(
            bound.proxy, bound.route.operation, _soapheaders=headers, **values
        )
    except (ZeepError, TypeError, ValueError) as exc:
        raise PermanentDeliveryError(
            f"the request for {bound.route.operation} does not fit the WSDL: {exc}",
            code="soap.request_invalid",
        ) from exc
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="utf-8"))


def request_values(route: SoapRoute, delivery: OutboundDelivery) -> dict[str, object]:
    """The request fields of ``route`` for ``delivery`` (fields whose source is absent omitted)."""
    needs_package = any(source not in DELIVERY_SOURCES for _, source in route.request)
    package: object = None
    if needs_package:
        try:
            package = parse_package(delivery.package)
        except PackageError as exc:
            raise PermanentDeliveryError(
                f"cannot read the package for the SOAP request: {exc}",
                code="soap.package_unreadable",
            ) from exc
    values: dict[str, object] = {}
    for name, source in route.request:
        value = _source_value(source, delivery, package)
        if value is not None:
            values[name] = value
    return values


def _source_value(source: str, delivery: OutboundDelivery, package: object) -> object:
    direct = {
        "package_base64": lambda: base64.b64encode(delivery.package).decode("ascii"),
        "delivery_id": lambda: delivery.delivery_id,
        "document_pk": lambda: delivery.document_id,
        "recipient": lambda: delivery.organ_id,
    }
    if source in direct:
        return direct[source]()
    value = package
    for part in source.split("."):
        value = getattr(value, part, None)
    return _plain(value, source)


def _plain(value: object, source: str) -> object:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    if type(value).__str__ is not object.__str__:
        return str(value)  # records with a text form, e.g. Code -> "7816/VPCP-TTĐT"
    raise PermanentDeliveryError(
        f"request source {source!r} is a record, not a value", code="soap.mapping"
    )


# --- reply ---------------------------------------------------------------------------------------


def _outcome(bound: _Bound, reply: _Reply) -> DeliveryOutcome:
    try:
        result = bound.binding.process_reply(bound.client, bound.operation, reply)
    except Fault as exc:
        raise _fault_error(exc, reply.status_code) from exc
    except TransportError as exc:
        raise _status_error(reply, str(exc)) from exc
    except (ZeepError, etree.LxmlError, ValueError) as exc:
        if reply.status_code != 200:
            raise _status_error(reply, str(exc)) from exc
        raise PermanentDeliveryError(
            f"unreadable SOAP answer: {exc}"[:MAX_REASON_CHARS],
            code="soap.bad_response",
            status_code=200,
        ) from exc
    return DeliveryOutcome(True, _detail(bound.route.operation, result), reply.status_code)


def _fault_error(fault: Fault, status: int) -> TransientDeliveryError | PermanentDeliveryError:
    code = str(fault.code or "")
    reason = f"SOAP fault {code}: {fault.message}"[:MAX_REASON_CHARS]
    kind = code.rpartition(":")[2].split(".")[0].lower()
    if kind in TRANSIENT_FAULTS:
        return TransientDeliveryError(reason, code="soap.server_fault", status_code=status)
    return PermanentDeliveryError(reason, code="soap.client_fault", status_code=status)


def _status_error(reply: _Reply, why: str) -> TransientDeliveryError | PermanentDeliveryError:
    status = reply.status_code
    text = reply.content[: MAX_REASON_CHARS * 4].decode("utf-8", "replace").strip()
    reason = f"HTTP {status}: {text or why}"[:MAX_REASON_CHARS]
    if status in (408, 429) or status >= 500:
        return TransientDeliveryError(reason, code="delivery.http_status", status_code=status)
    return PermanentDeliveryError(reason, code="soap.bad_response", status_code=status)


def _detail(operation: str, result: object) -> str:
    data = serialize_object(result, dict)  # type: ignore[no-untyped-call]
    if isinstance(data, dict) and "body" in data:
        data = data["body"]
    if isinstance(data, dict):
        fields = ", ".join(f"{k}={v}" for k, v in data.items() if isinstance(v, str | int))
        return f"SOAP {operation}: {fields}"[:MAX_REASON_CHARS]
    return f"SOAP {operation}: {data}"[:MAX_REASON_CHARS]
