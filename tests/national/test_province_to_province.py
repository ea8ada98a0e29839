"""Thanh Hóa and Nghệ An, each its own gateway, store and broker prefix, via `lgsp sim national`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from directory_kit import stored_directory
from provinces import (
    H41_DEPARTMENT,
    H41_PROVINCE,
    H56_DEPARTMENT,
    H56_PROVINCE,
    NATIONAL,
    Province,
    SimProcess,
    new_document,
    second_broker,
    sim_process,
    status_of,
    two_provinces,
)
from service_sites import BrokerSite

from gateway.core.methods import DeliveryMethod
from gateway.edxml import build
from gateway.edxml.model import DocumentPackage

__all__ = ["second_broker", "sim_process"]  # fixtures used by this module


def _kinds(trace: list[dict[str, Any]]) -> set[str]:
    return {event["kind"] for event in trace}


async def _arrived(
    receiver: Province, recipient: str, document_id: str, business_doc_type: str
) -> dict[str, Any]:
    """The receiving gateway's view of the package with this DocumentId and business type."""

    async def probe() -> list[dict[str, Any]]:
        found = []
        for item in await receiver.inbox(recipient):
            view = await receiver.view(item["document"], recipient)
            if (view["document_id"], view["business_doc_type"]) == (document_id, business_doc_type):
                found.append(view)
        return found

    [view] = await receiver.wait_for(probe, lambda found: len(found) == 1)
    return view


async def _exchange(
    sender_gw: Province, sender: str, receiver_gw: Province, recipient: str
) -> None:
    """A document, its status 03 back, then its revoke, with every hop in both traces."""
    document: DocumentPackage = new_document(sender, [recipient])
    answer = await sender_gw.submit(sender_gw.sign(document, sender), sender)
    [route] = answer["recipients"]
    assert (route["organ_id"], route["method"]) == (recipient, "national")

    inbound = await _arrived(receiver_gw, recipient, document.document_id or "", "0")
    assert (inbound["sender"], inbound["caller"]) == (sender, NATIONAL)
    [local] = inbound["recipients"]
    assert (local["organ_id"], local["method"], local["state"]) == (
        recipient,
        "mailbox",
        "delivered",
    )
    # the "published" mark rides on the receiving gateway's next group commit (a moment later)
    inbound = await receiver_gw.wait_for(
        lambda: receiver_gw.view(inbound["id"], recipient),
        lambda view: "published" in _kinds(view["trace"]),
    )
    assert {"received", "published", "delivered"} <= _kinds(inbound["trace"])
    assert (inbound["trace"][0]["kind"], inbound["trace"][0]["actor"]) == ("received", NATIONAL)

    await receiver_gw.submit(
        receiver_gw.sign(status_of(document, recipient, "03"), recipient), recipient
    )

    def answered(view: dict[str, Any]) -> bool:
        return view["recipients"][0]["business_status"] == "03"

    sent = await sender_gw.wait_for(lambda: sender_gw.view(answer["id"], sender), answered)
    [hop] = sent["recipients"]
    assert (hop["state"], hop["method"]) == ("delivered", "national")
    kinds = [event["kind"] for event in hop["trace"]]
    assert {"published", "delivered", "business_status"} <= set(kinds)
    delivered = next(e for e in hop["trace"] if e["kind"] == "delivered")
    assert "national DocId" in delivered["detail"]["message"]
    assert sent["trace"][0]["kind"] == "received"
    on_receiver = await receiver_gw.view(inbound["id"], recipient)
    assert on_receiver["recipients"][0]["business_status"] == "03"  # the recipient's own view

    revoke = build.revoke_of(document)
    await sender_gw.submit(sender_gw.sign(revoke, sender), sender)
    revoked = await _arrived(receiver_gw, recipient, document.document_id or "", "1")
    assert revoked["sender"] == sender
    assert revoked["received_at"] > inbound["received_at"]


async def test_documents_statuses_and_revokes_flow_both_ways(
    tmp_path: Path,
    test_broker: BrokerSite,
    second_broker: BrokerSite,
    sim_process: SimProcess,
) -> None:
    h56, h41 = await two_provinces(tmp_path, test_broker, second_broker, sim_process)
    try:
        await _exchange(h56, H56_DEPARTMENT, h41, H41_PROVINCE)
        await _exchange(h41, H41_DEPARTMENT, h56, H56_PROVINCE)
        # each side's agency sync made the other province's agencies national participants
        for province, foreign in ((h56, H41_DEPARTMENT), (h41, H56_DEPARTMENT)):
            entry = (await stored_directory(province.settings.store.url)).get(foreign)
            assert entry is not None
            assert entry.delivery.method is DeliveryMethod.NATIONAL
    finally:
        await h41.stop()
        await h56.stop()


async def test_simulator_stopped_during_a_burst_every_document_arrives_once(
    tmp_path: Path,
    test_broker: BrokerSite,
    second_broker: BrokerSite,
    sim_process: SimProcess,
) -> None:
    patient = {"LGSP_BROKER__RETRY_DELAYS_S": "0.2,0.5,1", "LGSP_BROKER__MAX_TRIES": "60"}
    h56, h41 = await two_provinces(tmp_path, test_broker, second_broker, sim_process, patient)
    try:
        burst = [new_document(H56_DEPARTMENT, [H41_PROVINCE]) for _ in range(12)]
        answers = [
            await h56.submit(h56.sign(doc, H56_DEPARTMENT), H56_DEPARTMENT) for doc in burst[:6]
        ]
        await sim_process.kill()  # mid-burst: some sent, some in flight, the rest still to come
        answers += [
            await h56.submit(h56.sign(doc, H56_DEPARTMENT), H56_DEPARTMENT) for doc in burst[6:]
        ]
        await sim_process.start()

        expected = sorted(doc.document_id or "" for doc in burst)

        async def arrived() -> list[str]:
            items = await h41.inbox(H41_PROVINCE)
            views = [await h41.view(item["document"], H41_PROVINCE) for item in items]
            return sorted(view["document_id"] for view in views)

        assert (
            await h41.wait_for(arrived, lambda ids: len(ids) >= len(expected), timeout_s=60)
            == expected
        )
        for answer in answers:
            view = await h56.view(answer["id"], H56_DEPARTMENT)
            assert view["recipients"][0]["state"] == "delivered", view
        assert await arrived() == expected  # still once each after the last poll rounds
    finally:
        await h41.stop()
        await h56.stop()
