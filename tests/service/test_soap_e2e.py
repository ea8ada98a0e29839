"""SOAP recipients end to end: gateway -> real RabbitMQ -> worker -> SOAP simulator over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from service_kit import DEPARTMENT, DISTRICT, StartGateway, new_document, states

from gateway.demo.soap_sim import Behaviour, SoapSimulator
from gateway.edxml.model import DocumentPackage

ROUTE = "national-documents"
ROUTES_TOML = """
[[route]]
name = "national-documents"
wsdl = "document-service.wsdl"
operation = "ReceiveDocument"
endpoint = "{endpoint}"
timeout_s = 0.5
user_id = "lgsp-thanhhoa"
client = {{ instance = "VN", member_class = "GOV", member_code = "000.00.00.H56" }}
service = {{ instance = "VN", member_class = "GOV", member_code = "000.00.00.G22", \
subsystem = "ndxp", service_code = "ReceiveDocument", service_version = "v1" }}
request = {{ DocumentId = "header.document_id", Sender = "sender", Receiver = "recipient", \
PackageBase64 = "package_base64" }}
"""

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def _id(document: DocumentPackage) -> str:
    assert document.document_id is not None
    return document.document_id


@pytest.fixture
async def sim() -> AsyncIterator[SoapSimulator]:
    simulator = SoapSimulator(slow_s=30)
    await simulator.start()
    yield simulator
    await simulator.stop()


async def test_soap_faults_are_retried_or_dead_lettered_with_the_fault_text(
    start_gateway: StartGateway, sim: SoapSimulator, tmp_path: Path
) -> None:
    routes = tmp_path / "soap-routes.toml"
    routes.write_text(ROUTES_TOML.format(endpoint=sim.url), encoding="utf-8")
    gw = await start_gateway(soap={DISTRICT: ROUTE}, env={"LGSP_SOAP__ROUTES_PATH": str(routes)})
    flaky, slow, refused = (new_document(DEPARTMENT, [DISTRICT]) for _ in range(3))
    sim.script(_id(flaky), Behaviour.SERVER_FAULT, Behaviour.SERVER_FAULT)
    sim.script(_id(slow), Behaviour.SLOW)
    sim.script(_id(refused), Behaviour.CLIENT_FAULT)
    answers, signed = {}, {}
    for document in (flaky, slow, refused):
        signed[document.document_id] = gw.sign(document, DEPARTMENT)
        status, answers[document.document_id] = await gw.submit(
            signed[document.document_id], DEPARTMENT
        )
        assert status == 202, answers[document.document_id]

    flaky_view = await gw.wait_for(
        answers[flaky.document_id]["id"], DEPARTMENT, lambda v: states(v)[DISTRICT] == "delivered"
    )
    slow_view = await gw.wait_for(
        answers[slow.document_id]["id"], DEPARTMENT, lambda v: states(v)[DISTRICT] == "delivered"
    )
    refused_view = await gw.wait_for(
        answers[refused.document_id]["id"],
        DEPARTMENT,
        lambda v: states(v)[DISTRICT] == "dead_lettered",
    )

    [recipient] = flaky_view["recipients"]
    assert recipient["attempts"] == 3
    assert [e["kind"] for e in recipient["trace"]].count("retry_scheduled") == 2
    delivered = next(e for e in recipient["trace"] if e["kind"] == "delivered")
    assert "SOAP ReceiveDocument: AckId=ACK-" in str(delivered["detail"])
    calls = sim.calls_for(_id(flaky))
    assert [c.behaviour for c in calls] == [
        Behaviour.SERVER_FAULT,
        Behaviour.SERVER_FAULT,
        Behaviour.OK,
    ]
    assert {c.xroad["id"] for c in calls} == {recipient["delivery_id"]}  # X-Road id = delivery
    assert calls[-1].xroad["client"]["memberCode"] == "000.00.00.H56"
    assert calls[-1].xroad["service"]["serviceCode"] == "ReceiveDocument"
    assert calls[-1].fields["Receiver"] == DISTRICT
    assert calls[-1].package == signed[flaky.document_id]  # the bytes as submitted

    [recipient] = slow_view["recipients"]
    assert recipient["attempts"] == 2
    retry = next(e for e in recipient["trace"] if e["kind"] == "retry_scheduled")
    assert retry["detail"]["code"] == "delivery.timeout"

    [recipient] = refused_view["recipients"]
    assert (recipient["attempts"], recipient["error_code"]) == (1, "soap.client_fault")
    [in_full] = (await gw.admin_view(refused_view["id"]))["recipients"]
    assert "refused by the receiving system: unknown receiver" in in_full["last_error"]
    assert in_full["trace"][-1]["detail"]["error"].startswith("soap.client_fault")
    assert len(sim.calls_for(_id(refused))) == 1
