"""End to end over HTTP: sender -> gateway -> real RabbitMQ -> worker -> push endpoint / mailbox."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

from directory_kit import change_directory
from service_kit import (
    BUSINESS,
    COMMUNE,
    DEPARTMENT,
    DISTRICT,
    METRICS_HEADERS,
    PushReceiver,
    StartGateway,
    new_document,
    states,
    status_for,
)

from gateway.core.directory import load_directory
from gateway.signatures.jws import verify_jws


def _delivered(view: dict[str, object]) -> bool:
    return all(state == "delivered" for state in states(view).values())  # type: ignore[arg-type]


async def test_push_delivery_carries_the_signed_bytes_unchanged(
    start_gateway: StartGateway, push_receiver: PushReceiver
) -> None:
    gw = await start_gateway(push={DISTRICT: push_receiver.url})
    signed = gw.sign(new_document(DEPARTMENT, [DISTRICT]), DEPARTMENT)

    status, answer = await gw.submit(signed, DEPARTMENT)

    assert status == 202, answer
    assert answer["recipients"][0]["organ_id"] == DISTRICT
    assert answer["recipients"][0]["state"] == "queued"
    checked = verify_jws(answer["receipt"])
    assert checked.algorithm == "ES256"  # the gateway's own P-256 identity
    receipt = json.loads(checked.payload)
    assert receipt["id"] == answer["id"]
    assert receipt["sender"] == DEPARTMENT
    view = await gw.wait_for(answer["id"], DEPARTMENT, _delivered)
    assert push_receiver.delivered == [signed]
    headers, _ = push_receiver.received[0]
    assert headers["Idempotency-Key"] == answer["recipients"][0]["delivery_id"]
    assert view["trace"][0]["kind"] == "received"
    kinds = {e["kind"] for e in view["recipients"][0]["trace"]}
    assert {"published", "delivered"} <= kinds  # the worker may deliver before the confirm


async def test_mailbox_pull_and_ack(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    signed = gw.sign(new_document(DEPARTMENT, [COMMUNE, BUSINESS]), DEPARTMENT)

    status, answer = await gw.submit(signed, DEPARTMENT)
    assert status == 202, answer
    await gw.wait_for(answer["id"], DEPARTMENT, _delivered)

    status, inbox = await gw.get("/api/v1/inbox", COMMUNE)
    assert status == 200
    [item] = inbox["items"]
    assert item["document"] == answer["id"]
    status, package = await gw.get(f"/api/v1/inbox/{item['id']}", COMMUNE)
    assert status == 200
    assert package == signed
    status, _ = await gw.get(f"/api/v1/inbox/{item['id']}", BUSINESS)
    assert status == 404  # another participant's item is invisible
    status, acked = await gw.post(f"/api/v1/inbox/{item['id']}/ack", COMMUNE)
    assert status == 200
    assert acked["acked_at"]
    assert (await gw.get("/api/v1/inbox", COMMUNE))[1]["items"] == []
    assert len((await gw.get("/api/v1/inbox", BUSINESS))[1]["items"]) == 1


async def test_status_package_flows_back_and_sets_business_status(
    start_gateway: StartGateway, push_receiver: PushReceiver
) -> None:
    gw = await start_gateway(push={DISTRICT: push_receiver.url})
    document = new_document(DEPARTMENT, [DISTRICT])
    status, answer = await gw.submit(gw.sign(document, DEPARTMENT), DEPARTMENT)
    assert status == 202, answer
    await gw.wait_for(answer["id"], DEPARTMENT, _delivered)

    status_package = gw.sign(status_for(document, DISTRICT, "03"), DISTRICT)
    status, status_answer = await gw.submit(status_package, DISTRICT)

    assert status == 202, status_answer
    assert status_answer["kind"] == "status"
    assert [r["organ_id"] for r in status_answer["recipients"]] == [DEPARTMENT]
    view = await gw.wait_for(
        answer["id"], DEPARTMENT, lambda v: v["recipients"][0]["business_status"] == "03"
    )
    assert view["recipients"][0]["organ_id"] == DISTRICT
    await gw.wait_for(status_answer["id"], DISTRICT, _delivered)
    [item] = (await gw.get("/api/v1/inbox", DEPARTMENT))[1]["items"]
    assert item["kind"] == "status"
    assert item["status_code"] == "03"


async def test_duplicates_same_bytes_200_other_bytes_409(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    document = new_document(DEPARTMENT, [COMMUNE], number="77")
    signed = gw.sign(document, DEPARTMENT)
    first_status, first = await gw.submit(signed, DEPARTMENT)
    assert first_status == 202

    again_status, again = await gw.submit(signed, DEPARTMENT)
    assert again_status == 200
    assert again["id"] == first["id"]
    assert again["duplicate"] is True

    changed = replace(document, header=replace(document.header, subject="V/v khác"))
    other_status, other = await gw.submit(gw.sign(changed, DEPARTMENT), DEPARTMENT)
    assert other_status == 409
    assert other["code"] == "conflict.duplicate_document"
    # what to change: the DocumentId (not the internal key) and a new number
    assert other["document_id"] == document.document_id
    assert other["accepted_as"] == first["id"]
    assert "new number" in other["hint"]
    assert "document|" not in other["detail"]


async def test_refusals_have_their_codes(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    department = load_directory(gw.setup.directory_path).get(DEPARTMENT)
    assert department is not None

    unknown = gw.sign(new_document(DEPARTMENT, [COMMUNE, "000.00.99.H56"]), DEPARTMENT)
    status, problem = await gw.submit(unknown, DEPARTMENT)
    assert status == 422
    assert problem["code"] == "acl.recipients_refused"
    assert problem["recipients"] == [
        {
            "organ_id": "000.00.99.H56",
            "reason": "unknown_recipient",
            "code": "acl.unknown_recipient",
            "detail": problem["recipients"][0]["detail"],
        }
    ]

    signed = gw.sign(new_document(DEPARTMENT, [COMMUNE]), DEPARTMENT)
    tampered = signed.replace("thử nghiệm".encode(), "THỬ NGHIỆM".encode(), 1)
    status, problem = await gw.submit(tampered, DEPARTMENT)
    assert status == 422
    assert problem["code"] == "signature.digest_mismatch"

    status, problem = await gw.submit(signed, COMMUNE)  # the commune speaks for the department
    assert status == 403
    assert problem["code"] == "acl.cannot_speak_for"

    async with gw.session.post(
        f"{gw.base_url}/api/v1/documents", data=signed, headers={"Content-Type": "application/xml"}
    ) as r:
        assert r.status == 401
        assert (await r.json())["code"] == "auth.required"
    async with gw.session.post(
        f"{gw.base_url}/api/v1/documents",
        data=b"<x/>",
        headers=gw.headers(DEPARTMENT, "text/plain"),
    ) as r:
        assert r.status == 415

    await change_directory(gw.settings.store.url, replace(department, may_send_to=(DISTRICT,)))
    await _wait_directory_reload()
    denied = gw.sign(new_document(DEPARTMENT, [COMMUNE, DISTRICT]), DEPARTMENT)
    status, problem = await gw.submit(denied, DEPARTMENT)
    assert status == 422
    assert [(r["organ_id"], r["reason"]) for r in problem["recipients"]] == [
        (COMMUNE, "acl_denied")
    ]


async def _wait_directory_reload() -> None:
    await asyncio.sleep(2.0)  # every process applies a change in the store within 2 s


async def test_push_that_fails_twice_then_succeeds_ends_delivered(
    start_gateway: StartGateway, push_receiver: PushReceiver
) -> None:
    push_receiver.script = [503, 500]
    gw = await start_gateway(push={DISTRICT: push_receiver.url})
    status, answer = await gw.submit(
        gw.sign(new_document(DEPARTMENT, [DISTRICT]), DEPARTMENT), DEPARTMENT
    )
    assert status == 202

    view = await gw.wait_for(answer["id"], DEPARTMENT, _delivered)

    [recipient] = view["recipients"]
    assert recipient["attempts"] == 3
    assert len(push_receiver.received) == 3
    assert len(push_receiver.delivered) == 1
    kinds = [e["kind"] for e in recipient["trace"]]
    assert kinds.count("retry_scheduled") == 2
    assert kinds[-1] == "delivered"
    keys = {headers["Idempotency-Key"] for headers, _ in push_receiver.received}
    assert keys == {recipient["delivery_id"]}


async def test_push_answering_400_is_dead_lettered_with_the_reason(
    start_gateway: StartGateway, push_receiver: PushReceiver
) -> None:
    push_receiver.script = [400]
    gw = await start_gateway(push={DISTRICT: push_receiver.url})
    status, answer = await gw.submit(
        gw.sign(new_document(DEPARTMENT, [DISTRICT]), DEPARTMENT), DEPARTMENT
    )
    assert status == 202

    view = await gw.wait_for(
        answer["id"], DEPARTMENT, lambda v: states(v)[DISTRICT] == "dead_lettered"
    )

    [recipient] = view["recipients"]
    assert (recipient["error_code"], "last_error" in recipient) == ("delivery.refused", False)
    assert "400" in (await gw.admin_view(answer["id"]))["recipients"][0]["last_error"]
    assert len(push_receiver.received) == 1


async def test_health_ready_metrics_openapi(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    async with gw.session.get(f"{gw.base_url}/healthz") as r:
        assert r.status == 200
    async with gw.session.get(f"{gw.base_url}/readyz") as r:
        body = await r.json()
        assert r.status == 200
        assert body["checks"] == {"store": "ok", "broker": "ok"}
    async with gw.session.get(gw.metrics_url, headers=METRICS_HEADERS) as r:
        assert "lgsp_documents_accepted_total" in await r.text()
    async with gw.session.get(f"{gw.base_url}/api/v1/openapi.json") as r:
        spec = await r.json()
        assert "/api/v1/documents" in spec["paths"]
