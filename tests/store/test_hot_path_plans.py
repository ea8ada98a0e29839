"""The statements of the paths that run at a rate are served by indexes, on both stores (query
plans, not timing).

Every statement that intake batches (documents, status packages answering them, published marks)
and a worker's batch (its check, its attempts) send to the store is captured as it is sent, then
EXPLAINed on the same store with its own parameters (``plans_kit``): none may scan a table that
grows with the store. A scan there costs CPU in proportion to the store's size, on every batch: the
status packages' read scanned ``documents`` on SQLite (its planner seeks no index with a row-value
IN of a VALUES list), 3 ms a batch at 20,000 documents, until a plain IN was added beside it. The
same holds for the other paths that run at a rate: the worker's failures and claim checks, the
outbox relay, the delivery sweep, dead letters, a participant's mailbox and lookups, the national
poller's bookkeeping (the timers' paths: ``test_timer_plans``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from plans_kit import plans, scans, statements_of
from records_kit import new_status

from adapters.national.protocol import AckStatus, MessageType
from gateway.edxml.model import StatusCode
from gateway.national.received import NewProcessedDoc, ReceivedLog
from gateway.national.sent_list import sent_items
from gateway.store import DeliveryLog, DeliveryState, NewDocument
from gateway.store.attempts import AttemptReport, AttemptResult
from gateway.store.records import IntakeResult, NationalDoc, StatusAnswer
from gateway.store.sweep import SweepLog

ROUTES = [("000.00.01.H56", "push"), ("0101234567", "mailbox")]
ANSWERING = "000.00.01.H56"
BUSINESS = "0101234567"
T0 = datetime(2026, 5, 2, 8, 0, tzinfo=UTC)

Make = Callable[..., NewDocument]


async def _hot_path(log: DeliveryLog, make_document: Make) -> None:
    """Intake (documents, then statuses answering them, with published marks), then a worker's
    check and attempts: each through the log's own API, so each batch's real statements."""
    originals = []
    for i in range(3):
        new = make_document(dedup_key=f"doc-{i}", document_id=f"DOC-{i}", received_at=T0)
        originals.append(await log.record_intake(new, f"<d{i}/>".encode(), ROUTES))
    log.note_published([d.id for o in originals for d in o.deliveries])

    def answering(i: int) -> Awaitable[IntakeResult]:
        status = new_status(
            ANSWERING,
            dedup_key=f"status-{i}",
            document_id=f"S-{i}",
            received_at=T0 + timedelta(minutes=i + 1),
        )
        answer = StatusAnswer(
            organ_id="000.00.00.H56", document_id=f"DOC-{i}", code=StatusCode.ACCEPTANCE
        )
        return log.record_intake(
            status, f"<s{i}/>".encode(), [("000.00.00.H56", "push")], answers=answer
        )

    # One status alone, then three at once: one batch (a single reference is an equality to
    # SQLite, several are the IN list that was scanned).
    log.writer.max_wait_s = 0.2
    answered = [await answering(0), *await asyncio.gather(*(answering(i) for i in (1, 2, 0)))]
    assert [r.document.in_reply_to for r in answered] == [o.document.id for o in originals] + [
        originals[0].document.id
    ]
    ids = [d.id for o in originals for d in o.deliveries]
    found, _ = await log.check_batch(ids, {})
    assert set(found) == set(ids)
    await log.record_attempts(
        [AttemptReport(ids[0], DeliveryState.DELIVERED, "HTTP 200")]
        + [
            AttemptReport(i, DeliveryState.RETRYING, "HTTP 503", "delivery.http_status: 503")
            for i in ids[1:3]
        ]
    )
    delivered = await log.find_delivery(originals[0].document.id, ANSWERING)
    assert delivered is not None
    assert delivered.business_status is StatusCode.ACCEPTANCE


async def _intake(
    log: DeliveryLog, make_document: Make, tag: str, n: int, **kw: object
) -> list[str]:
    """``n`` documents to ``ROUTES`` (DocumentIds ``{tag}-{i}``); their delivery ids (push,
    mailbox, push, mailbox, ...)."""
    ids = []
    for i in range(n):
        new = make_document(document_id=f"{tag}-{i}", received_at=T0 + timedelta(seconds=i))
        result = await log.record_intake(new, f"<{tag}{i}/>".encode(), ROUTES, **kw)  # type: ignore[arg-type]
        ids += [d.id for d in sorted(result.deliveries, key=lambda d: d.method.value != "push")]
    return ids


async def _worker(log: DeliveryLog, make_document: Make) -> None:
    """A worker's batch with claim checks, its failures (retrying, dead-lettered, a stale copy,
    a late report of a delivered one) and single attempts; a mailbox's delivery."""
    ids = await _intake(log, make_document, "W", 3)
    await log.mark_published(ids)
    view = await log.get_document((await log.get_delivery(ids[0])).document)  # type: ignore[union-attr]
    assert view is not None
    sha = view.document.package_sha256
    stored, fetched = await log.check_batch(ids, dict.fromkeys(ids, sha))
    assert set(stored) == set(ids)
    assert set(fetched) == {sha}
    stale = AttemptReport(ids[4], DeliveryState.RETRYING, "503", "e", "x", attempts_seen=7)
    results = await log.record_attempts(
        [
            AttemptReport(ids[0], DeliveryState.RETRYING, "503", "e", "delivery.http_status"),
            AttemptReport(ids[1], DeliveryState.DELIVERED, "stored in the mailbox"),
            AttemptReport(ids[2], DeliveryState.DEAD_LETTERED, "gone", "e", "x", attempts_seen=0),
            stale,
        ]
    )
    assert results[3] is AttemptResult.STALE
    late = AttemptReport(ids[1], DeliveryState.RETRYING, "late", "e")
    assert await log.record_attempts([late]) == [AttemptResult.ALREADY_DELIVERED]
    await log.mark_delivered(ids[0], detail="HTTP 200")
    await log.record_attempt(
        ids[4], outcome="retry", detail="503", next_state=DeliveryState.RETRYING
    )
    assert (await log.delivery_states(ids))[ids[2]] is DeliveryState.DEAD_LETTERED


async def _outbox_and_sweep(log: DeliveryLog, make_document: Make) -> None:
    """The outbox relay (stale ``accepted``, republished marks), the sweep (overdue queued and
    retrying, claims, its trail), dead letters and their replay."""
    ids = await _intake(log, make_document, "O", 4)
    pending = await log.pending_publication(0.0, limit=500)
    assert {i.delivery.id for i in pending} >= set(ids)
    await log.mark_published(ids[:6], republished=True)
    await log.record_attempts(
        [AttemptReport(i, DeliveryState.RETRYING, "503", "e", "x", 1.0) for i in ids[:2]]
        + [AttemptReport(ids[2], DeliveryState.DEAD_LETTERED, "gone", "e", "x")]
        + [AttemptReport(ids[3], DeliveryState.DEAD_LETTERED, "gone", "e", "x")]
    )
    sweep = SweepLog(log.engines)
    later = datetime.now(UTC) + timedelta(hours=1)
    overdue = await sweep.overdue(
        methods={"push", "mailbox"}, grace_s=60, delays_s=(1.0, 5.0), now=later
    )
    assert {o.item.delivery.id for o in overdue} >= {*ids[:2], ids[4], ids[5]}
    claimed = await sweep.claim([o.item.delivery for o in overdue])
    await sweep.record_swept([o for o in overdue if o.item.delivery in claimed])
    assert {i.delivery.id for i in await log.dead_letters()} >= set(ids[2:4])
    assert ids[3] in {i.delivery.id for i in await log.dead_letters(recipient=BUSINESS)}
    await log.replay(ids[3], "console:admin")


async def _participant(log: DeliveryLog, make_document: Make) -> None:
    """What a business polls (its mailbox, an item, its acknowledgement) and the lookups of the
    API and the southbound protocol (a document, a DocumentId, a delivery, the sent list)."""
    ids = await _intake(log, make_document, "P", 3)
    await log.record_attempts(
        [AttemptReport(i, DeliveryState.DELIVERED, "stored") for i in ids[1::2]]
    )
    inbox = await log.inbox(BUSINESS, limit=100)
    assert [i.delivery.id for i in inbox][-3:] == ids[1::2]
    item = await log.get_delivery(ids[1])
    assert item is not None
    assert await log.is_delivered(ids[1])
    view = await log.get_document(item.document)
    assert view is not None
    await log.get_package(view.document.package_sha256)
    await log.ack_inbox(BUSINESS, ids[1])
    await log.ack_inbox(BUSINESS, ids[3], outcome="failed", reason="refused")
    assert await log.find_document("000.00.00.H56", "P-1") is not None
    assert await log.find_delivery(item.document, BUSINESS) is not None
    assert (await log.find_view("P-2")).document.document_id == "P-2"
    assert len(await sent_items(log, "000.00.00.H56", MessageType.EDOC)) >= 6


async def _national(log: DeliveryLog, make_document: Make) -> None:
    """The national poller's round: known docIds, intake with ``national=``, a refusal's row,
    acknowledgements; the docIds of a document (its console page)."""
    received = ReceivedLog(log.engines)
    assert await received.get_many(["n-1", "n-2", "n-3"]) == {}
    one, _ = await _intake(log, make_document, "N", 1, national=NationalDoc("n-1", "edoc"))
    refused = NewProcessedDoc("n-2", "edoc", AckStatus.FAIL, None, "edxml.bad: no")
    await received.record_many([refused])
    await received.record(
        "n-3", message_type="status", outcome=AckStatus.FAIL, document=None, detail=""
    )
    assert set(await received.get_many(["n-1", "n-2", "n-3"])) == {"n-1", "n-2", "n-3"}
    await received.mark_acked_many(["n-1", "n-2"])
    await received.mark_acked("n-3")
    delivery = await log.get_delivery(one)
    assert delivery is not None
    assert await received.doc_ids_of(delivery.document) == ["n-1"]


PATHS = {
    "intake, status, marks, check, attempts": _hot_path,
    "worker: claim checks, failures, single attempts": _worker,
    "outbox relay, sweep, dead letters": _outbox_and_sweep,
    "participant: mailbox, ack, lookups": _participant,
    "national poller": _national,
}


async def test_no_statement_of_a_path_at_a_rate_scans_a_growing_table(
    store_url: str, make_document: Make
) -> None:
    log = await DeliveryLog.open(store_url)
    try:
        statements = await statements_of(log, store_url, PATHS, make_document)
        hot = statements["intake, status, marks, check, attempts"]
        assert any("AS id_1" in sql or "FROM documents" in sql for sql in hot)  # originals
        assert any(sql.startswith("UPDATE deliveries") for sql in hot)  # marks, attempts
        assert any("deliveries.attempts" in sql and "SELECT" in sql for sql in hot)  # check
        found = {name: await scans(log, store_url, s) for name, s in statements.items()}
        assert {name: s for name, s in found.items() if s} == {}
        # A mailbox's listing reads its unacknowledged items only, in order: not the whole of
        # the recipient's delivered history (an index of (recipient, state) reads that, sorted).
        mailbox = {
            sql: params
            for sql, params in statements["participant: mailbox, ack, lookups"].items()
            if "acked_at IS NULL" in sql and "ORDER BY deliveries.delivered_at" in sql
        }
        [inbox_plan] = (await plans(log, store_url, mailbox)).values()
        assert any("ix_deliveries_inbox" in line for line in inbox_plan), inbox_plan
        assert not any("TEMP B-TREE" in line or "Sort" in line for line in inbox_plan)
    finally:
        await log.aclose()
