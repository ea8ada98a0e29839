"""The SOAP adapter against the real simulator over HTTP: X-Road headers, mapping, faults."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from samples import CONFORMANCE_DIR

from adapters.base import OutboundDelivery, PermanentDeliveryError, TransientDeliveryError
from adapters.soap import SoapAdapter, SoapRoute
from adapters.soap_routes import load_routes
from gateway.core.errors import ConfigError
from gateway.core.resources import wsdl_dir
from gateway.demo.soap_sim import Behaviour, SoapSimulator
from gateway.edxml.xml_codec import parse_package

SAMPLE = CONFORMANCE_DIR / "edoc_new.edxml"
RECIPIENT = "000.00.00.G22"

ROUTES_TOML = """
[[route]]
name = "national-documents"
wsdl = "document-service.wsdl"
operation = "ReceiveDocument"
endpoint = "{endpoint}"
timeout_s = {timeout_s}
user_id = "lgsp-thanhhoa"

[route.client]
instance = "VN"
member_class = "GOV"
member_code = "000.00.00.H56"
subsystem = "lgsp"

[route.service]
instance = "VN"
member_class = "GOV"
member_code = "000.00.00.G22"
subsystem = "ndxp"
service_code = "ReceiveDocument"
service_version = "v1"

[route.request]
DocumentId = "header.document_id"
Sender = "sender"
Receiver = "recipient"
Subject = "header.subject"
CodeNumber = "header.code.code_number"
CodeNotation = "header.code.code_notation"
PackageBase64 = "package_base64"
"""


@pytest.fixture
async def sim() -> AsyncIterator[SoapSimulator]:
    simulator = SoapSimulator(slow_s=30)
    await simulator.start()
    yield simulator
    await simulator.stop()


def write_routes(tmp_path: Path, endpoint: str, timeout_s: float = 5.0) -> Path:
    path = tmp_path / "soap-routes.toml"
    path.write_text(ROUTES_TOML.format(endpoint=endpoint, timeout_s=timeout_s), encoding="utf-8")
    return path


def route_for(tmp_path: Path, endpoint: str, timeout_s: float = 5.0) -> SoapRoute:
    return load_routes(write_routes(tmp_path, endpoint, timeout_s))["national-documents"]


def delivery(package: bytes, delivery_id: str = "dlv-0001") -> OutboundDelivery:
    return OutboundDelivery(
        delivery_id=delivery_id,
        document_id="doc-1",
        organ_id=RECIPIENT,
        package=package,
        content_type="application/xml",
        url="national-documents",
    )


@pytest.fixture
def package() -> bytes:
    return SAMPLE.read_bytes()


async def test_request_carries_xroad_headers_mapped_fields_and_the_exact_bytes(
    sim: SoapSimulator, tmp_path: Path, package: bytes
) -> None:
    async with SoapAdapter({"national-documents": route_for(tmp_path, sim.url)}) as adapter:
        outcome = await adapter.deliver(delivery(package, "dlv-42"))

    assert outcome.delivered
    assert outcome.status_code == 200
    [call] = sim.calls
    assert outcome.detail.startswith("SOAP ReceiveDocument: AckId=ACK-")
    assert call.xroad == {
        "client": {
            "xRoadInstance": "VN",
            "memberClass": "GOV",
            "memberCode": "000.00.00.H56",
            "subsystemCode": "lgsp",
            "objectType": "SUBSYSTEM",
        },
        "service": {
            "xRoadInstance": "VN",
            "memberClass": "GOV",
            "memberCode": "000.00.00.G22",
            "subsystemCode": "ndxp",
            "serviceCode": "ReceiveDocument",
            "serviceVersion": "v1",
            "objectType": "SERVICE",
        },
        "id": "dlv-42",
        "userId": "lgsp-thanhhoa",
        "protocolVersion": "4.0",
    }
    parsed = parse_package(package)
    assert call.fields == {
        "DocumentId": parsed.document_id,
        "Sender": parsed.sender,
        "Receiver": RECIPIENT,
        "Subject": parsed.header.subject,  # type: ignore[union-attr]
        "CodeNumber": "74fass22",
        "CodeNotation": "VPCP-TTĐT",
    }
    assert call.package == package  # base64 of the bytes as received, not a re-serialisation


async def test_server_fault_is_transient_and_client_fault_is_permanent_with_its_text(
    sim: SoapSimulator, tmp_path: Path, package: bytes
) -> None:
    document_id = parse_package(package).document_id
    assert document_id is not None
    sim.script(document_id, Behaviour.SERVER_FAULT, Behaviour.CLIENT_FAULT)
    async with SoapAdapter({"national-documents": route_for(tmp_path, sim.url)}) as adapter:
        with pytest.raises(TransientDeliveryError) as transient:
            await adapter.deliver(delivery(package))
        with pytest.raises(PermanentDeliveryError) as permanent:
            await adapter.deliver(delivery(package))
        outcome = await adapter.deliver(delivery(package))

    assert transient.value.code == "soap.server_fault"
    assert transient.value.retryable
    assert "temporarily unavailable" in transient.value.message
    assert permanent.value.code == "soap.client_fault"
    assert not permanent.value.retryable
    assert "refused by the receiving system: unknown receiver" in permanent.value.message
    assert "soapenv:Client" in permanent.value.message
    assert outcome.delivered
    assert [c.behaviour for c in sim.calls] == [
        Behaviour.SERVER_FAULT,
        Behaviour.CLIENT_FAULT,
        Behaviour.OK,
    ]


async def test_timeout_and_http_503_and_connection_refused_are_transient(
    sim: SoapSimulator, tmp_path: Path, package: bytes
) -> None:
    document_id = parse_package(package).document_id
    assert document_id is not None
    sim.script(document_id, Behaviour.SLOW, Behaviour.UNAVAILABLE)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    route = route_for(tmp_path, sim.url, timeout_s=0.3)
    dead = replace(route, name="dead", endpoint=f"http://127.0.0.1:{closed_port}/x")
    async with SoapAdapter({"national-documents": route, "dead": dead}) as adapter:
        with pytest.raises(TransientDeliveryError) as slow:
            await adapter.deliver(delivery(package))
        with pytest.raises(TransientDeliveryError) as unavailable:
            await adapter.deliver(delivery(package))
        with pytest.raises(TransientDeliveryError) as refused:
            await adapter.deliver(replace(delivery(package), url="dead"))

    assert slow.value.code == "delivery.timeout"
    assert unavailable.value.code == "delivery.http_status"
    assert unavailable.value.status_code == 503
    assert refused.value.code == "delivery.connection"


async def test_unknown_route_and_unreadable_package_are_permanent(
    sim: SoapSimulator, tmp_path: Path, package: bytes
) -> None:
    async with SoapAdapter({"national-documents": route_for(tmp_path, sim.url)}) as adapter:
        with pytest.raises(PermanentDeliveryError) as no_route:
            await adapter.deliver(replace(delivery(package), url="elsewhere"))
        with pytest.raises(PermanentDeliveryError) as unreadable:
            await adapter.deliver(delivery(b"<not-edxml/>"))

    assert no_route.value.code == "soap.no_route"
    assert unreadable.value.code == "soap.package_unreadable"
    assert sim.calls == []


async def test_a_request_that_does_not_fit_the_wsdl_is_permanent_and_not_sent(
    sim: SoapSimulator, tmp_path: Path, package: bytes
) -> None:
    route = route_for(tmp_path, sim.url)
    without_id = replace(route, request=tuple(r for r in route.request if r[0] != "DocumentId"))
    async with SoapAdapter({"national-documents": without_id}) as adapter:
        with pytest.raises(PermanentDeliveryError) as refused:
            await adapter.deliver(delivery(package))

    assert refused.value.code == "soap.request_invalid"
    assert "DocumentId" in refused.value.message
    assert sim.calls == []


def test_routes_file_refuses_unknown_keys_and_bad_sources(tmp_path: Path) -> None:
    good = ROUTES_TOML.format(endpoint="http://127.0.0.1:1/x", timeout_s=1)
    cases = {
        "typo": good.replace("user_id =", "userid ="),
        "source": good.replace('"package_base64"', '"Package Base64!"'),
        "client": good.replace('subsystem = "lgsp"', 'subsytem = "lgsp"'),
        "timeout": good.replace("timeout_s = 1", "timeout_s = -1"),
        "twice": good + good[good.index("[[route]]") :],
    }
    for name, text in cases.items():
        path = tmp_path / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError):
            load_routes(path)
    (tmp_path / "good.toml").write_text(good, encoding="utf-8")
    route = load_routes(tmp_path / "good.toml")["national-documents"]
    assert route.wsdl == wsdl_dir() / "document-service.wsdl"
    assert route.service.service_version == "v1"
    assert dict(route.request)["PackageBase64"] == "package_base64"


def test_a_field_the_operation_does_not_have_is_refused_at_startup(tmp_path: Path) -> None:
    route = route_for(tmp_path, "http://127.0.0.1:1/x")
    wrong = replace(route, request=(*route.request, ("Attachments", "package_base64")))
    with pytest.raises(ConfigError) as refused:
        SoapAdapter({"r": wrong})
    assert refused.value.code == "config.soap_mapping"
    with pytest.raises(ConfigError) as no_operation:
        SoapAdapter({"r": replace(route, operation="SendDocument")})
    assert no_operation.value.code == "config.soap_wsdl"


def test_wsdl_importing_a_remote_schema_or_with_a_dtd_is_refused(tmp_path: Path) -> None:
    wsdl = (wsdl_dir() / "document-service.wsdl").read_text(encoding="utf-8")
    remote = tmp_path / "remote.wsdl"
    remote.write_text(
        wsdl.replace('schemaLocation="xroad.xsd"', 'schemaLocation="http://127.0.0.1:9/xroad.xsd"'),
        encoding="utf-8",
    )
    dtd = tmp_path / "dtd.wsdl"
    dtd.write_text(
        wsdl.replace(
            "<wsdl:definitions", '<!DOCTYPE x [<!ENTITY e "boom">]>\n<wsdl:definitions', 1
        ),
        encoding="utf-8",
    )
    route = route_for(tmp_path, "http://127.0.0.1:1/x")
    for path in (remote, dtd):
        with pytest.raises(ConfigError) as refused:
            SoapAdapter({"r": replace(route, wsdl=path)})
        assert refused.value.code == "config.soap_wsdl"


async def test_large_package_is_sent_whole(
    sim: SoapSimulator, tmp_path: Path, package: bytes
) -> None:
    comment = b"<!--" + b"x" * 1_500_000 + b"-->\r\n"
    padded = package.rstrip().removesuffix(b"</edXML>") + comment + b"</edXML>"
    assert len(padded) > 1_500_000
    async with SoapAdapter({"national-documents": route_for(tmp_path, sim.url)}) as adapter:
        outcome = await adapter.deliver(delivery(padded))
    assert outcome.delivered
    assert sim.calls[0].package == padded
