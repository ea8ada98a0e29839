"""``lgsp sim soap``: a real HTTP server answering the sample national SOAP service from its WSDL.

It serves ``GET <path>?wsdl`` (its address rewritten to the server's own) and the schemas beside
the WSDL, and answers ``POST <path>``: the envelope is parsed by the hardened loader, the X-Road
headers must be present and, with the body, valid against the WSDL's schemas; zeep reads the
request and writes the answer. What it answers is programmable per package ``DocumentId``
(:meth:`SoapSimulator.script`, or ``POST /_sim/script``), else the default behaviour:

    ok             ReceiveDocumentResponse with an AckId (the same AckId for the same X-Road id)
    server_fault   soap:Server fault, HTTP 500 (transient for callers)
    client_fault   soap:Client fault, HTTP 500 (permanent for callers)
    unavailable    HTTP 503 without an envelope, as a proxy in front of a down service answers
    slow           ok, but only after ``slow_s`` (callers with a shorter timeout give up)

``GET /_sim/calls`` lists what was received (also :attr:`SoapSimulator.calls` in-process).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from aiohttp import web
from lxml import etree
from zeep import Client, Settings
from zeep.exceptions import Error as ZeepError
from zeep.helpers import serialize_object

from gateway.core.errors import ConfigError, InputError, LgspError
from gateway.core.resources import wsdl_dir
from gateway.edxml.hardened import load_xml
from gateway.edxml.limits import ParseLimits

DEFAULT_WSDL_NAME: Final = "document-service.wsdl"  # in the packaged schemas/wsdl
SOAP11_NS: Final = "http://schemas.xmlsoap.org/soap/envelope/"
XROAD_NS: Final = "http://x-road.eu/xsd/xroad.xsd"
XROAD_HEADERS: Final = ("client", "service", "id", "userId", "protocolVersion")
WSDL_SOAP_NS: Final = "http://schemas.xmlsoap.org/wsdl/soap/"
XSD_NS: Final = "http://www.w3.org/2001/XMLSchema"
REQUEST_LIMITS: Final = ParseLimits(max_bytes=96 * 1024 * 1024)
_SAFE_PARSER: Final = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


class Behaviour(StrEnum):
    """What the simulator answers to one call."""

    OK = "ok"
    SERVER_FAULT = "server_fault"
    CLIENT_FAULT = "client_fault"
    UNAVAILABLE = "unavailable"
    SLOW = "slow"


@dataclass(frozen=True, slots=True)
class ReceivedCall:
    """One request the simulator accepted as well-formed, and what it answered."""

    document_id: str | None
    xroad: Mapping[str, Any]  # the X-Road header values, as zeep read them
    fields: Mapping[str, Any]  # the request body fields, except the package
    package: bytes | None = field(repr=False)
    behaviour: Behaviour
    received_at: datetime

    def to_json(self) -> dict[str, object]:
        return {
            "document_id": self.document_id,
            "xroad": dict(self.xroad),
            "fields": dict(self.fields),
            "package_bytes": len(self.package or b""),
            "behaviour": self.behaviour.value,
            "received_at": self.received_at.isoformat(),
        }


def default_wsdl() -> Path:
    """The sample document service's WSDL, shipped in the package."""
    return wsdl_dir() / DEFAULT_WSDL_NAME


class SoapSimulator:
    """The sample service of ``wsdl``; ``await start()``, then ``url``, ``script()``, ``calls``."""

    def __init__(
        self,
        wsdl: Path | None = None,
        *,
        default: Behaviour = Behaviour.OK,
        slow_s: float = 30.0,
        operation: str = "ReceiveDocument",
    ) -> None:
        wsdl = wsdl if wsdl is not None else default_wsdl()
        self.wsdl = wsdl
        self.default = default
        self.slow_s = slow_s
        self.calls: list[ReceivedCall] = []
        self._scripts: dict[str, deque[Behaviour]] = defaultdict(deque)
        self._acks: dict[str, str] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""
        self._wsdl_tree = etree.parse(str(wsdl), _SAFE_PARSER)
        self.path = _service_path(self._wsdl_tree)
        self._schema = _schema_of(self._wsdl_tree, wsdl)
        self._operation = _operation(wsdl, operation)

    # --- programming -----------------------------------------------------------------------------

    def script(self, document_id: str, *behaviours: Behaviour) -> None:
        """Answer the next calls for ``document_id`` with ``behaviours``, then the default."""
        self._scripts[document_id].extend(behaviours)

    def calls_for(self, document_id: str) -> list[ReceivedCall]:
        return [c for c in self.calls if c.document_id == document_id]

    # --- serving ---------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=REQUEST_LIMITS.max_bytes)
        app.router.add_get(self.path, self._get_wsdl)
        app.router.add_post(self.path, self._call)
        app.router.add_get("/{name:[A-Za-z0-9_.-]+\\.xsd}", self._get_schema)
        app.router.add_post("/_sim/script", self._post_script)
        app.router.add_post("/_sim/default", self._post_default)
        app.router.add_get("/_sim/calls", self._get_calls)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0: any free port); returns the service URL."""
        self._closing.clear()
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        sock = socket.create_server((host, port))  # bound here to learn the port of port 0
        await web.SockSite(self._runner, sock).start()
        bound = sock.getsockname()[1]
        self.url = f"http://{host}:{bound}{self.path}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _on_shutdown(self, _app: web.Application) -> None:
        self._closing.set()  # slow answers stop waiting

    async def _get_wsdl(self, request: web.Request) -> web.Response:
        if "wsdl" not in request.query:
            return web.Response(status=405, text="POST SOAP requests here; GET ?wsdl")
        tree = etree.fromstring(etree.tostring(self._wsdl_tree), _SAFE_PARSER)
        for address in tree.iter(f"{{{WSDL_SOAP_NS}}}address"):
            address.set("location", str(request.url.with_query(None)))
        body = etree.tostring(tree, xml_declaration=True, encoding="utf-8")
        return web.Response(body=body, content_type="text/xml", charset="utf-8")

    async def _get_schema(self, request: web.Request) -> web.Response:
        path = self.wsdl.parent / request.match_info["name"]
        if not path.is_file():
            raise web.HTTPNotFound(text="no such schema")
        return web.Response(body=path.read_bytes(), content_type="text/xml", charset="utf-8")

    async def _post_script(self, request: web.Request) -> web.Response:
        data = await request.json()
        try:
            self.script(str(data["document_id"]), *(Behaviour(b) for b in data["behaviours"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=f"want document_id and behaviours: {exc}") from exc
        return web.json_response({"scripted": data["document_id"]})

    async def _post_default(self, request: web.Request) -> web.Response:
        data = await request.json()
        try:
            self.default = Behaviour(data["behaviour"])
        except (KeyError, TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=f"want behaviour: {exc}") from exc
        return web.json_response({"default": self.default.value})

    async def _get_calls(self, _request: web.Request) -> web.Response:
        return web.json_response([c.to_json() for c in self.calls])

    # --- the service -----------------------------------------------------------------------------

    async def _call(self, request: web.Request) -> web.Response:
        try:
            envelope = load_xml(await request.read(), REQUEST_LIMITS)
            values = self._read_request(envelope)
        except LgspError as exc:
            return _fault("Client", f"invalid request: {exc.message}")
        header, body = _as_dict(values.header), _as_dict(values.body)
        document_id = body.get("DocumentId")
        behaviour = self._next_behaviour(document_id)
        package = body.pop("PackageBase64", None)
        self.calls.append(
            ReceivedCall(document_id, header, body, package, behaviour, datetime.now(UTC))
        )
        return await self._answer(behaviour, header, document_id)

    def _read_request(self, envelope: etree._Element) -> Any:
        if envelope.tag != f"{{{SOAP11_NS}}}Envelope":
            raise _refused("not a SOAP 1.1 Envelope")
        found = {el.tag for el in envelope.iterfind(f"{{{SOAP11_NS}}}Header/*")}
        missing = [n for n in XROAD_HEADERS if f"{{{XROAD_NS}}}{n}" not in found]
        if missing:
            raise _refused(f"missing X-Road header(s): {', '.join(missing)}")
        parts = [
            *envelope.iterfind(f"{{{SOAP11_NS}}}Header/{{{XROAD_NS}}}*"),
            *envelope.iterfind(f"{{{SOAP11_NS}}}Body/*"),
        ]
        try:
            for part in parts:
                self._schema.assertValid(part)
            return self._operation.input.deserialize(envelope)
        except (etree.DocumentInvalid, ZeepError, ValueError) as exc:
            raise _refused(str(exc)) from exc

    def _next_behaviour(self, document_id: object) -> Behaviour:
        queue = self._scripts.get(str(document_id))
        return queue.popleft() if queue else self.default

    async def _answer(
        self, behaviour: Behaviour, header: Mapping[str, Any], document_id: object
    ) -> web.Response:
        if behaviour is Behaviour.SERVER_FAULT:
            return _fault("Server", "the national service is temporarily unavailable (simulated)")
        if behaviour is Behaviour.CLIENT_FAULT:
            return _fault(
                "Client",
                f"document {document_id} refused by the receiving system: "
                "unknown receiver (simulated)",
            )
        if behaviour is Behaviour.UNAVAILABLE:
            return web.Response(status=503, text="503 Service Unavailable (simulated)")
        if behaviour is Behaviour.SLOW:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.slow_s)
            if self._closing.is_set():
                return web.Response(status=503, text="shutting down")
        ack = self._acks.setdefault(str(header.get("id")), f"ACK-{uuid.uuid4().hex[:16]}")
        message = self._operation.output.serialize(
            AckId=ack, ReceivedAt=datetime.now(UTC), _soapheaders=dict(header)
        )
        body = etree.tostring(message.content, xml_declaration=True, encoding="utf-8")
        return web.Response(body=body, content_type="text/xml", charset="utf-8")


async def serve(
    host: str,
    port: int,
    *,
    wsdl: Path | None = None,
    default: Behaviour = Behaviour.OK,
    slow_s: float = 30.0,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Run a simulator until cancelled; ``ready(url)`` once it listens."""
    simulator = SoapSimulator(wsdl, default=default, slow_s=slow_s)
    url = await simulator.start(host, port)
    if ready is not None:
        ready(url)
    try:
        await asyncio.Event().wait()
    finally:
        await simulator.stop()


def _refused(message: str) -> InputError:
    """The request is not a valid call of the service: answered with a soap:Client fault."""
    return InputError(message, code="soap.invalid_request")


def _as_dict(value: object) -> dict[str, Any]:
    data = serialize_object(value, dict)  # type: ignore[no-untyped-call]  # zeep is untyped
    return dict(data) if isinstance(data, dict) else {}


def _fault(kind: str, text: str) -> web.Response:
    """A SOAP 1.1 fault (HTTP 500, as SOAP 1.1 over HTTP requires)."""
    env = etree.Element(f"{{{SOAP11_NS}}}Envelope", nsmap={"soapenv": SOAP11_NS})
    fault = etree.SubElement(etree.SubElement(env, f"{{{SOAP11_NS}}}Body"), f"{{{SOAP11_NS}}}Fault")
    etree.SubElement(fault, "faultcode").text = f"soapenv:{kind}"
    etree.SubElement(fault, "faultstring").text = text
    body = etree.tostring(env, xml_declaration=True, encoding="utf-8")
    return web.Response(status=500, body=body, content_type="text/xml", charset="utf-8")


def _service_path(wsdl: etree._ElementTree) -> str:
    address = next(wsdl.getroot().iter(f"{{{WSDL_SOAP_NS}}}address"), None)
    location = address.get("location") if address is not None else None
    if not location:
        raise ConfigError("the WSDL has no soap:address", code="config.soap_wsdl")
    return urlsplit(location).path or "/"


def _schema_of(wsdl: etree._ElementTree, path: Path) -> etree.XMLSchema:
    """The WSDL's ``types`` schema (with its local imports), to validate headers and body."""
    schema = next(wsdl.getroot().iter(f"{{{XSD_NS}}}schema"), None)
    if schema is None:
        raise ConfigError(f"{path} has no types schema", code="config.soap_wsdl")
    document = etree.fromstring(
        etree.tostring(schema), _SAFE_PARSER, base_url=path.resolve().as_uri()
    )
    try:
        return etree.XMLSchema(document)
    except etree.XMLSchemaParseError as exc:
        raise ConfigError(f"{path}: {exc}", code="config.soap_wsdl") from exc


def _operation(wsdl: Path, name: str) -> Any:
    settings = Settings(
        strict=True, xml_huge_tree=True, forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    try:
        client = Client(str(wsdl), settings=settings)  # type: ignore[no-untyped-call]
        service = next(iter(client.wsdl.services.values()))
        port = next(iter(service.ports.values()))
        return port.binding.get(name)
    except (OSError, StopIteration, ValueError, ZeepError) as exc:
        raise ConfigError(f"cannot serve {wsdl}: {exc}", code="config.soap_wsdl") from exc
