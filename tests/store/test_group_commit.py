"""Group commit on real SQLite and PostgreSQL: a concurrent burst lands exactly the right rows."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from records_kit import new_status
from sqlalchemy import func, select
from structlog.testing import capture_logs

from gateway.core.errors import ConflictError
from gateway.edxml.model import StatusCode
from gateway.evidence.verify import verify_store
from gateway.store import (
    DeliveryLog,
    DeliveryState,
    EventKind,
    IntakeResult,
    NewDocument,
    driver_statements,
    intake_dedup,
)
from gateway.store.engine import transaction
from gateway.store.records import StatusAnswer
from gateway.store.tables import deliveries, documents, events, packages

MakeDocument = Callable[..., NewDocument]
ORIGINAL_SENDER = "000.00.00.H56"
ANSWERING = "000.00.01.H56"  # a recipient of the originals, sending their status back
ROUTES = [(ANSWERING, "push"), ("0101234567", "mailbox")]


async def _count(log: DeliveryLog, table: object, *where: object) -> int:
    async with transaction(log.engines.reader) as conn:
        return int(await conn.scalar(select(func.count()).select_from(table).where(*where)))


def _package(n: int) -> bytes:
    return f"<edXML:edXMLEnvelope>package {n} {secrets.token_hex(4)}</edXML:edXMLEnvelope>".encode()


async def test_a_burst_of_news_duplicates_conflicts_and_statuses_lands_exactly(
    store_url: str, make_document: MakeDocument
) -> None:
    log = await DeliveryLog.open(store_url, batch_max=16, batch_wait_s=0.005)
    try:
        t0 = datetime.now(UTC)
        originals = [
            await log.record_intake(
                make_document(dedup_key=f"orig-{i}", document_id=f"DOC-{i}", received_at=t0),
                _package(1000 + i),
                ROUTES,
            )
            for i in range(3)
        ]
        earlier = await log.record_intake(make_document(dedup_key="earlier"), _package(-1), ROUTES)
        earlier_bytes = await log.get_package(earlier.document.package_sha256)
        batches_before = log.writer.batches

        news = {f"new-{i}": _package(i) for i in range(24)}
        calls: list[tuple[str, NewDocument, bytes, StatusAnswer | None]] = []
        for key, body in news.items():
            calls.append(("new", make_document(dedup_key=key), body, None))
        for key in ("new-0", "new-1", "new-2"):  # the same bytes again, in the same burst
            calls.append(("same", make_document(dedup_key=key), news[key], None))
        for key in ("new-3", "new-4"):  # other bytes under a key of the burst
            calls.append(("other", make_document(dedup_key=key), _package(99), None))
        calls.append(("same", make_document(dedup_key="earlier"), earlier_bytes, None))
        calls.append(("other", make_document(dedup_key="earlier"), _package(98), None))
        for i, at in ((0, 5), (1, 5), (0, 9), (2, 1)):  # two statuses answer original 0
            status = new_status(
                ANSWERING,
                dedup_key=f"status-{i}-{at}",
                document_id=f"DOC-{i}",
                received_at=t0 + timedelta(minutes=at),
            )
            answer = StatusAnswer(
                organ_id=ORIGINAL_SENDER,
                document_id=f"DOC-{i}",
                code=StatusCode.ACCEPTANCE if at < 9 else StatusCode.ASSIGNMENT,
            )
            calls.append(("status", status, _package(500 + i * 10 + at), answer))
        calls.append(
            (
                "status-unknown",
                new_status(
                    ANSWERING,
                    dedup_key="status-x",
                    document_id="NONE",
                ),
                _package(777),
                StatusAnswer(
                    organ_id=ORIGINAL_SENDER, document_id="NONE", code=StatusCode.ACCEPTANCE
                ),
            )
        )

        outcomes = await asyncio.gather(
            *(
                log.record_intake(
                    new, body, [(ORIGINAL_SENDER, "push")] if answer else ROUTES, answers=answer
                )
                for _, new, body, answer in calls
            ),
            return_exceptions=True,
        )

        assert log.writer.batches - batches_before < len(calls) / 2, "no batching happened"
        assert log.writer.largest_batch > 1
        by_key: dict[str, list[IntakeResult]] = {}
        for (kind, new, body, _), outcome in zip(calls, outcomes, strict=True):
            if kind == "other":
                assert isinstance(outcome, ConflictError), (new.dedup_key, outcome)
                assert outcome.code == "conflict.duplicate_document"
                continue
            assert isinstance(outcome, IntakeResult), (new.dedup_key, outcome)
            by_key.setdefault(new.dedup_key, []).append(outcome)
            view = await log.get_document(outcome.document.id)
            assert view is not None
            assert await log.get_package(outcome.document.package_sha256) == body
            if outcome.created:  # built from the values written: the same as read back
                assert outcome.document == view.document
                assert outcome.deliveries == view.deliveries
        for key in news:
            assert sorted(r.created for r in by_key[key]) == (
                [False, True] if key in ("new-0", "new-1", "new-2") else [True]
            )
            assert len({r.document.id for r in by_key[key]}) == 1
            assert len({tuple(d.id for d in r.deliveries) for r in by_key[key]}) == 1
        assert [r.created for r in by_key["earlier"]] == [False]
        assert by_key["earlier"][0].document == earlier.document

        # exactly the rows: no document, delivery or package for a refused (conflicting) request
        statuses = 5
        assert await _count(log, documents) == 3 + 1 + len(news) + statuses
        assert await _count(log, deliveries) == 2 * (3 + 1 + len(news)) + statuses
        assert await _count(log, packages) == 3 + 1 + len(news) + statuses
        assert await _count(log, events, events.c.kind == EventKind.RECEIVED.value) == (
            3 + 1 + len(news) + statuses
        )

        # the statuses: in_reply_to, and the latest status per answered delivery, in one go
        assert by_key["status-0-5"][0].document.in_reply_to == originals[0].document.id
        assert by_key["status-x"][0].document.in_reply_to is None
        answered = {
            o.document.id: await log.find_delivery(o.document.id, ANSWERING) for o in originals
        }
        first = answered[originals[0].document.id]
        assert first is not None
        assert (first.business_status, first.business_status_at) == (
            StatusCode.ASSIGNMENT,
            t0 + timedelta(minutes=9),
        )
        third = answered[originals[2].document.id]
        assert third is not None
        assert third.business_status is StatusCode.ACCEPTANCE
        assert await _count(log, events, events.c.kind == EventKind.BUSINESS_STATUS.value) == 4
    finally:
        await log.aclose()


async def test_published_marks_ride_on_a_later_transaction(
    store_url: str, make_document: MakeDocument
) -> None:
    log = await DeliveryLog.open(store_url)
    try:
        first = await log.record_intake(make_document(), _package(1), ROUTES)
        ids = [d.id for d in first.deliveries]
        log.writer.marks_delay_s = 3600.0  # only an intake can take them along now
        log.note_published(ids)
        assert {d.state for d in (await log.get_document(first.document.id)).deliveries} == {
            DeliveryState.ACCEPTED
        }  # type: ignore[union-attr]
        batches = log.writer.batches
        await log.record_intake(make_document(), _package(2), ROUTES)  # takes the marks along
        assert log.writer.batches == batches + 1
        view = await log.get_document(first.document.id)
        assert view is not None
        assert {d.state for d in view.deliveries} == {DeliveryState.QUEUED}
        assert [e.kind for e in view.events] == [EventKind.RECEIVED, *[EventKind.PUBLISHED] * 2]
        assert await log.pending_publication(older_than_s=0, limit=10) != []  # the second's

        alone = await log.record_intake(make_document(), _package(3), ROUTES)
        log.writer.marks_delay_s = 0.05
        log.note_published([d.id for d in alone.deliveries])  # no intake follows: on its own
        for _ in range(50):
            await asyncio.sleep(0.02)
            view = await log.get_document(alone.document.id)
            assert view is not None
            if {d.state for d in view.deliveries} == {DeliveryState.QUEUED}:
                break
        else:
            pytest.fail("the marks were not written without an intake to carry them")
    finally:
        await log.aclose()


async def test_marks_queued_at_close_are_written(
    store_url: str, make_document: MakeDocument
) -> None:
    log = await DeliveryLog.open(store_url)
    result = await log.record_intake(make_document(), _package(1), ROUTES)
    log.note_published([d.id for d in result.deliveries])
    await log.aclose()
    reopened = await DeliveryLog.open(store_url)
    try:
        assert await reopened.pending_publication(older_than_s=0, limit=10) == []
    finally:
        await reopened.aclose()


async def test_a_lone_request_waits_the_batch_wait_at_most(
    store_url: str, make_document: MakeDocument
) -> None:
    log = await DeliveryLog.open(store_url, batch_wait_s=0.5)
    try:
        await log.record_intake(make_document(), _package(0), ROUTES)  # warm the pool
        loop = asyncio.get_running_loop()
        started = loop.time()
        await log.record_intake(make_document(), _package(1), ROUTES)
        waited_s = loop.time() - started
        assert 0.5 <= waited_s < 0.5 + 3.0  # it waited for company, as configured, no more
        log.writer.max_wait_s = 0.0
        results = await asyncio.gather(
            *(log.record_intake(make_document(), _package(n), ROUTES) for n in range(2, 10))
        )
        assert all(r.created for r in results)
    finally:
        await log.aclose()


async def test_a_batch_that_fills_stops_waiting_and_one_that_does_not_waits_for_company(
    store_url: str, make_document: MakeDocument
) -> None:
    """The batch wait ends when the batch is full, not at its end; requests that come during
    the wait, one by one, join the same batch."""
    log = await DeliveryLog.open(store_url, batch_max=4, batch_wait_s=30.0)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        lone = asyncio.create_task(log.record_intake(make_document(), _package(0), ROUTES))
        await asyncio.sleep(0.1)  # the batch of one is waiting for company
        assert not lone.done()
        full = await asyncio.wait_for(
            asyncio.gather(
                lone, *(log.record_intake(make_document(), _package(n), ROUTES) for n in (1, 2, 3))
            ),
            10.0,
        )
        assert loop.time() - started < 10.0  # not the 30 s wait
        assert all(r.created for r in full)
        log.writer.max_wait_s = 0.5
        batches = log.writer.batches
        first = asyncio.create_task(log.record_intake(make_document(), _package(10), ROUTES))
        await asyncio.sleep(0.1)
        second = asyncio.create_task(log.record_intake(make_document(), _package(11), ROUTES))
        await asyncio.sleep(0.1)
        assert not first.done()  # still waiting for company
        assert all(r.created for r in await asyncio.gather(first, second))
        assert log.writer.batches == batches + 1  # both in one batch
        assert log.writer.largest_batch == 4
    finally:
        await log.aclose()


async def test_on_sqlite_a_key_the_read_ahead_missed_fails_the_insert_not_the_dedup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_document: MakeDocument
) -> None:
    """SQLite reads the keys already recorded with the batch's first hop and sends the new
    documents as a plain INSERT with the COMMIT. Were that read ever wrong, the unique key would
    still decide: here it misses everything once, the batch's INSERT fails, the batch is retried
    request by request, and each request still gets its own answer."""
    log = await DeliveryLog.open(f"sqlite+aiosqlite:///{tmp_path}/log.db", batch_wait_s=0.05)
    try:
        recorded = await log.record_intake(make_document(dedup_key="k"), _package(1), ROUTES)
        body = await log.get_package(recorded.document.package_sha256)
        real_read, misses = intake_dedup.Present.read, [1]

        def read_missing_once(self: Any, conn: Any) -> set[str]:
            found = real_read(self, conn)
            return set() if misses and misses.pop() else found

        monkeypatch.setattr(intake_dedup.Present, "read", read_missing_once)
        with capture_logs() as logs:
            again, other, new = await asyncio.gather(
                log.record_intake(make_document(dedup_key="k"), body, ROUTES),
                log.record_intake(make_document(dedup_key="k"), _package(2), ROUTES),
                log.record_intake(make_document(dedup_key="n"), _package(3), ROUTES),
                return_exceptions=True,
            )
        assert misses == []
        assert [e["event"] for e in logs if e["event"] == "group_commit_split"] != []
        assert isinstance(again, IntakeResult)
        assert (again.created, again.document.id) == (False, recorded.document.id)
        assert isinstance(other, ConflictError)
        assert other.code == "conflict.duplicate_document"
        assert isinstance(new, IntakeResult)
        assert new.created
        assert await _count(log, documents) == 2
        assert await _count(log, deliveries) == 2 * len(ROUTES)
        assert (await verify_store(log.engines)).intact
    finally:
        await log.aclose()


async def test_on_sqlite_dedup_holds_where_no_statement_goes_straight_to_the_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_document: MakeDocument
) -> None:
    """Where a statement's driver form cannot be made (``compile_for`` gives none), every
    statement goes through SQLAlchemy. The read of the keys already recorded must then still be
    read, not queued as a prefetch whose rows nobody takes: a resubmission is a duplicate (200),
    not a constraint failure (409)."""
    monkeypatch.setattr(driver_statements, "compile_for", lambda *_a, **_k: None)
    log = await DeliveryLog.open(f"sqlite+aiosqlite:///{tmp_path}/log.db")
    try:
        first = await log.record_intake(make_document(dedup_key="k"), _package(1), ROUTES)
        body = await log.get_package(first.document.package_sha256)
        again = await log.record_intake(make_document(dedup_key="k"), body, ROUTES)
        assert (again.created, again.document.id) == (False, first.document.id)
        with pytest.raises(ConflictError) as other:
            await log.record_intake(make_document(dedup_key="k"), _package(2), ROUTES)
        assert other.value.code == "conflict.duplicate_document"
        assert await _count(log, documents) == 1
    finally:
        await log.aclose()
