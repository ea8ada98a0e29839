"""The SOAP simulator as a real server: ``lgsp sim soap``, its WSDL, its checks and its control."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from lxml import etree
from samples import CONFORMANCE_DIR
from service.service_kit import free_port

from adapters.base import OutboundDelivery, PermanentDeliveryError
from adapters.soap import SoapAdapter, SoapRoute, XRoadClient, XRoadService
from gateway.demo.soap_sim import SoapSimulator

SAMPLE = CONFORMANCE_DIR / "edoc_new.edxml"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
XRD = "http://x-road.eu/xsd/xroad.xsd"
ID = "http://x-road.eu/xsd/identifiers"
SVC = "urn:lgsp:sample:national-document-service:v1"
HEADERS = """
  <xrd:client id:objectType="SUBSYSTEM"><id:xRoadInstance>VN</id:xRoadInstance>
    <id:memberClass>GOV</id:memberClass><id:memberCode>000.00.00.H56</id:memberCode>
    <id:subsystemCode>lgsp</id:subsystemCode></xrd:client>
  <xrd:service id:objectType="SERVICE"><id:xRoadInstance>VN</id:xRoadInstance>
    <id:memberClass>GOV</id:memberClass><id:memberCode>000.00.00.G22</id:memberCode>
    <id:serviceCode>ReceiveDocument</id:serviceCode></xrd:service>
  <xrd:id>call-1</xrd:id><xrd:userId>tester</xrd:userId>
  <xrd:protocolVersion>4.0</xrd:protocolVersion>"""
BODY = """<s:ReceiveDocument><s:DocumentId>D-1</s:DocumentId><s:Sender>000.00.04.H56</s:Sender>
  <s:Receiver>000.00.00.G22</s:Receiver><s:PackageBase64>PGVkWE1MLz4=</s:PackageBase64>
  </s:ReceiveDocument>"""


def envelope(headers: str = HEADERS, body: str = BODY, prolog: str = "") -> bytes:
    return (
        f'{prolog}<soapenv:Envelope xmlns:soapenv="{SOAP_NS}" xmlns:xrd="{XRD}" '
        f'xmlns:id="{ID}" xmlns:s="{SVC}"><soapenv:Header>{headers}</soapenv:Header>'
        f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    ).encode()


def route(wsdl: Path, endpoint: str | None = None) -> SoapRoute:
    return SoapRoute(
        name="docs",
        wsdl=wsdl,
        operation="ReceiveDocument",
        client=XRoadClient("VN", "GOV", "000.00.00.H56", "lgsp"),
        service=XRoadService("VN", "GOV", "000.00.00.G22", "ReceiveDocument", "ndxp", "v1"),
        user_id="tester",
        request=(
            ("DocumentId", "header.document_id"),
            ("Sender", "sender"),
            ("Receiver", "recipient"),
            ("PackageBase64", "package_base64"),
        ),
        endpoint=endpoint,
    )


def delivery(delivery_id: str) -> OutboundDelivery:
    return OutboundDelivery(
        delivery_id, "doc-1", "000.00.00.G22", SAMPLE.read_bytes(), "application/xml", url="docs"
    )


@pytest.fixture
async def sim() -> AsyncIterator[SoapSimulator]:
    simulator = SoapSimulator()
    await simulator.start()
    yield simulator
    await simulator.stop()


async def post(url: str, body: bytes) -> tuple[int, etree._Element | str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers={"Content-Type": "text/xml"}) as r,
    ):
        raw = await r.read()
    try:
        return r.status, etree.fromstring(raw)
    except etree.XMLSyntaxError:
        return r.status, raw.decode()


def fault_of(answer: etree._Element | str) -> tuple[str | None, str | None]:
    assert not isinstance(answer, str), answer
    fault = answer.find(f"{{{SOAP_NS}}}Body/{{{SOAP_NS}}}Fault")
    assert fault is not None, etree.tostring(answer)
    return fault.findtext("faultcode"), fault.findtext("faultstring")


async def test_a_valid_call_is_answered_and_recorded(sim: SoapSimulator) -> None:
    status, answer = await post(sim.url, envelope())

    assert status == 200
    assert not isinstance(answer, str)
    assert answer.findtext(f".//{{{SVC}}}AckId", "").startswith("ACK-")
    assert answer.findtext(f".//{{{XRD}}}id") == "call-1"  # X-Road headers are echoed
    [call] = sim.calls
    assert call.document_id == "D-1"
    assert call.package == b"<edXML/>"
    assert call.xroad["userId"] == "tester"


@pytest.mark.parametrize(
    ("case", "request_body", "expected"),
    [
        (
            "no X-Road id",
            envelope(HEADERS.replace("<xrd:id>call-1</xrd:id>", "")),
            "missing X-Road header(s): id",
        ),
        ("no headers", envelope(""), "client, service, id, userId, protocolVersion"),
        (
            "no DocumentId",
            envelope(body=BODY.replace("<s:DocumentId>D-1</s:DocumentId>", "")),
            "DocumentId",
        ),
        (
            "service code missing",
            envelope(HEADERS.replace("<id:serviceCode>ReceiveDocument</id:serviceCode>", "")),
            "serviceCode",
        ),
        ("entity", envelope(prolog='<!DOCTYPE x [<!ENTITY e "boom">]>'), "DOCTYPE"),
        ("not SOAP", b"<Envelope/>", "not a SOAP 1.1 Envelope"),
    ],
)
async def test_invalid_calls_get_a_client_fault(
    sim: SoapSimulator, case: str, request_body: bytes, expected: str
) -> None:
    status, answer = await post(sim.url, request_body)

    assert status == 500, case
    code, text = fault_of(answer)
    assert code == "soapenv:Client"
    assert text is not None
    assert expected in text, text
    assert sim.calls == []


async def test_same_xroad_id_gets_the_same_ack(sim: SoapSimulator) -> None:
    async with SoapAdapter({"docs": route(sim.wsdl, sim.url)}) as adapter:
        first = await adapter.deliver(delivery("dlv-1"))
        again = await adapter.deliver(delivery("dlv-1"))
        other = await adapter.deliver(delivery("dlv-2"))

    assert first.detail == again.detail
    assert first.detail != other.detail


@pytest.fixture
async def cli_sim() -> AsyncIterator[str]:
    """``lgsp sim soap --port N`` in a child process; yields its base URL."""
    port = free_port()
    lgsp = Path(sys.executable).parent / "lgsp"
    process = await asyncio.create_subprocess_exec(
        str(lgsp), "sim", "soap", "--port", str(port), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert b"SOAP simulator on" in line, line
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await process.wait()


async def test_cli_serves_its_wsdl_and_answers_calls_made_from_it(
    cli_sim: str, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{cli_sim}/DocumentReceivingService?wsdl") as r:
            assert r.status == 200
            wsdl = await r.read()
        for name in ("xroad.xsd", "identifiers.xsd", "document-service.xsd"):
            async with session.get(f"{cli_sim}/{name}") as r:
                assert r.status == 200
                (tmp_path / name).write_bytes(await r.read())
        (tmp_path / "served.wsdl").write_bytes(wsdl)
        async with session.post(
            f"{cli_sim}/_sim/script",
            json={
                "document_id": "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT",
                "behaviours": ["ok", "client_fault"],
            },
        ) as r:
            assert r.status == 200

        # no endpoint override: the served WSDL's address points at the simulator itself
        async with SoapAdapter({"docs": route(tmp_path / "served.wsdl")}) as adapter:
            outcome = await adapter.deliver(delivery("dlv-cli"))
            with pytest.raises(PermanentDeliveryError) as refused:
                await adapter.deliver(delivery("dlv-cli-2"))

        async with session.get(f"{cli_sim}/_sim/calls") as r:
            calls = await r.json()

    assert outcome.delivered
    assert "unknown receiver" in refused.value.message
    assert [c["behaviour"] for c in calls] == ["ok", "client_fault"]
    assert [c["xroad"]["id"] for c in calls] == ["dlv-cli", "dlv-cli-2"]
    assert calls[0]["package_bytes"] == len(SAMPLE.read_bytes())
