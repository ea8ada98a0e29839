"""The intake batch's locks (``store.intake_answers``) on real SQLite and PostgreSQL: the lock of
published marks alone, built once, is the statement ``queries.lock_deliveries`` builds per call
(the same SQL, parameters and rows); on SQLite it is read with the transaction's next hop, so a
batch that carries marks costs no hop more than one that does not. The status packages' originals
and deliveries (``read_answers``: one read on SQLite) are those ``find_originals`` and
``locked`` find, and a batch of statuses costs one hop more than one of documents."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from records_kit import new_status
from sqlalchemy import Connection, event, text, tuple_

from gateway.edxml.model import StatusCode
from gateway.evidence.verify import verify_store
from gateway.store import DeliveryLog, DeliveryState, NewDocument
from gateway.store.engine import run_transaction
from gateway.store.intake_answers import (
    _LOCK_ANSWERED,
    _LOCK_PUBLISHED,
    _LOCKED_COLUMNS,
    Answered,
    find_originals,
    locked,
    read_answers,
)
from gateway.store.queries import lock_deliveries
from gateway.store.records import StatusAnswer
from gateway.store.tables import deliveries

ROUTES = [("000.00.01.H56", "push"), ("0101234567", "mailbox"), ("000.00.02.H56", "push")]
COLUMNS = (deliveries.c.id, deliveries.c.document, deliveries.c.state)


async def _recorded(log: DeliveryLog, make_document: Callable[..., NewDocument]) -> list[str]:
    recorded = await log.record_intake(make_document(), b"<marks/>", ROUTES)
    ids = [d.id for d in recorded.deliveries]
    return [ids[2], ids[0], "no-such-delivery", ids[0]]  # unordered, a repeat, an unknown


def _recorder(sent: list[tuple[str, Any]]) -> Callable[..., None]:
    """A ``before_cursor_execute`` listener that appends each statement's (SQL, parameters)."""

    def listen(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
        sent.append((sql, params))

    return listen


async def test_the_lock_of_published_marks_is_lock_deliveries_built_once(
    store_url: str, make_document: Callable[..., NewDocument]
) -> None:
    log = await DeliveryLog.open(store_url)
    try:
        published = await _recorded(log, make_document)
        sent: list[tuple[str, Any]] = []
        seen: list[Any] = []
        listen = _recorder(sent)

        def work(conn: Connection) -> None:
            event.listen(conn, "before_cursor_execute", listen)
            seen.append(conn.execute(lock_deliveries(published, *COLUMNS)).all())
            seen.append(conn.execute(_LOCK_PUBLISHED, {"lock_ids": sorted(set(published))}).all())

        await run_transaction(log.engines.writer, work)
        assert sent[0] == sent[1]
        assert [tuple(r) for r in seen[0]] == [tuple(r) for r in seen[1]]
        assert len(seen[0]) == 2
    finally:
        await log.aclose()


@pytest.mark.parametrize("hop_between", [True, False], ids=["with-a-hop", "alone"])
async def test_published_marks_alone_are_the_rows_lock_deliveries_reads(
    store_url: str, make_document: Callable[..., NewDocument], hop_between: bool
) -> None:
    """Read with the next hop (SQLite), or at once (PostgreSQL, which locks them), or, with
    no hop before they are needed (a transaction of marks alone), when needed."""
    log = await DeliveryLog.open(store_url)
    try:
        published = await _recorded(log, make_document)
        seen: list[Any] = []

        def work(conn: Connection) -> None:
            answered, marked = locked(conn, set(), published)
            if hop_between:
                conn.execute(text("SELECT 1"))
            seen.append(answered)
            seen.append([tuple(r) for r in marked.read(conn)])
            seen.append([tuple(r) for r in conn.execute(lock_deliveries(published, *COLUMNS))])

        await run_transaction(log.engines.writer, work)
        answered, read, reference = seen
        assert answered == {}
        assert read == reference
        assert [state for _, _, state in read] == [DeliveryState.ACCEPTED.value] * 2
    finally:
        await log.aclose()


async def test_a_batch_carrying_published_marks_is_two_hops_on_sqlite(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    count_hops: Callable[[], Any],
    make_document: Callable[..., NewDocument],
) -> None:
    log = await DeliveryLog.open(f"sqlite+aiosqlite:///{tmp_path}/log.db")
    try:
        first = await log.record_intake(make_document(), b"<first/>", ROUTES)
        log.writer.marks_delay_s = 3600.0  # only the next intake takes them along
        log.note_published([d.id for d in first.deliveries])
        hops = count_hops()
        await log.record_intake(make_document(), b"<second/>", ROUTES)
        monkeypatch.undo()
        assert hops.count == 2  # the documents (with BEGIN, the head and the marks), the COMMIT
        view = await log.get_document(first.document.id)
        assert view is not None
        assert {d.state for d in view.deliveries} == {DeliveryState.QUEUED}
        assert (await verify_store(log.engines)).intact
    finally:
        await log.aclose()


ANSWERING = "000.00.01.H56"
T0 = datetime(2026, 5, 2, 8, 0, 0, 250000, tzinfo=UTC)


async def _originals(
    log: DeliveryLog, make_document: Callable[..., NewDocument]
) -> tuple[list[str], list[str]]:
    """Originals: DOC-A twice (the later-recorded one received first: it is the original),
    DOC-B (whose delivery to ANSWERING has a business status), DOC-C (not to ANSWERING), a
    status with DocumentId DOC-A (not an original). Returns their ids and some deliveries."""
    ids: list[str] = []
    deliveries: list[str] = []
    for key, doc, at, routes in (
        ("a-late", "DOC-A", T0 + timedelta(seconds=5), ROUTES),
        ("a-first", "DOC-A", T0, ROUTES),
        ("b", "DOC-B", T0, ROUTES),
        ("c", "DOC-C", T0, [("000.00.02.H56", "push")]),
    ):
        new = make_document(dedup_key=key, document_id=doc, received_at=at)
        recorded = await log.record_intake(new, f"<{key}/>".encode(), routes)
        ids.append(recorded.document.id)
        deliveries += [d.id for d in recorded.deliveries]
    status = new_status(
        ANSWERING,
        dedup_key="s-b",
        document_id="DOC-A",  # a status's DocumentId: never taken for an original
        received_at=T0 + timedelta(minutes=1),
    )
    answer = StatusAnswer(organ_id="000.00.00.H56", document_id="DOC-B", code=StatusCode.ACCEPTANCE)
    await log.record_intake(status, b"<s-b/>", [("000.00.00.H56", "push")], answers=answer)
    return ids, deliveries


async def test_read_answers_finds_what_find_originals_and_locked_find(
    store_url: str, make_document: Callable[..., NewDocument]
) -> None:
    log = await DeliveryLog.open(store_url)
    try:
        ids, recorded = await _originals(log, make_document)
        sender = "000.00.00.H56"
        statuses = [
            ((sender, "DOC-A"), ANSWERING),
            ((sender, "DOC-A"), "0101234567"),
            ((sender, "DOC-B"), ANSWERING),
            ((sender, "DOC-C"), ANSWERING),  # not a recipient of DOC-C
            ((sender, "DOC-X"), ANSWERING),  # no such original
            ((ANSWERING, "DOC-A"), sender),  # a status, not an original
        ]
        published = [recorded[3], recorded[2], recorded[5], "no-such-delivery"]
        seen: list[Any] = []

        def work(conn: Connection) -> None:
            found = read_answers(conn, statuses, published)
            originals = find_originals(conn, {ref for ref, _ in statuses})
            pairs = {(originals[r], s) for r, s in statuses if r in originals}
            answered, marked = locked(conn, pairs, published)
            seen.append((found.originals, originals))
            seen.append((found.answered, {k: tuple(r) for k, r in answered.items()}))
            seen.append(([tuple(r) for r in found.marked.read(conn)], marked.read(conn)))

        await run_transaction(log.engines.writer, work)
        (fast, originals), (fast_answered, answered), (fast_marked, marked) = seen
        assert fast == originals
        assert originals == {
            (sender, "DOC-A"): ids[1],
            (sender, "DOC-B"): ids[2],
            (sender, "DOC-C"): ids[3],
        }
        assert fast_answered == answered
        assert all(type(r) is Answered for r in fast_answered.values())
        assert set(answered) == {
            (ids[1], ANSWERING),
            (ids[1], "0101234567"),
            (ids[2], ANSWERING),
        }
        status_at = answered[(ids[2], ANSWERING)][-1]
        assert status_at == T0 + timedelta(minutes=1)
        assert status_at.tzinfo is not None
        assert answered[(ids[1], ANSWERING)][-1] is None
        assert fast_marked == [tuple(r) for r in marked]
        assert [r[0] for r in fast_marked] == sorted(recorded[i] for i in (2, 3, 5))
    finally:
        await log.aclose()


async def test_a_batch_of_statuses_with_published_marks_is_two_hops_on_sqlite(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    count_hops: Callable[[], Any],
    make_document: Callable[..., NewDocument],
) -> None:
    """The originals and their deliveries (with BEGIN, the head, the marks and the keys already
    recorded), then the COMMIT (with the packages, the documents, the business status, the
    marks' UPDATE and the events). Three before the keys were read ahead."""
    log = await DeliveryLog.open(f"sqlite+aiosqlite:///{tmp_path}/log.db")
    try:
        original = await log.record_intake(make_document(document_id="DOC-1"), b"<o/>", ROUTES)
        log.writer.marks_delay_s = 3600.0  # only the next intake takes them along
        log.note_published([d.id for d in original.deliveries])
        status = new_status(
            ANSWERING,
            document_id="S-1",
        )
        answer = StatusAnswer(
            organ_id="000.00.00.H56", document_id="DOC-1", code=StatusCode.ACCEPTANCE
        )
        hops = count_hops()
        result = await log.record_intake(
            status, b"<s/>", [("000.00.00.H56", "push")], answers=answer
        )
        monkeypatch.undo()
        assert hops.count == 2
        assert result.document.in_reply_to == original.document.id
        view = await log.get_document(original.document.id)
        assert view is not None
        assert {d.state for d in view.deliveries} == {DeliveryState.QUEUED}
        answered = await log.find_delivery(original.document.id, ANSWERING)
        assert answered is not None
        assert answered.business_status is StatusCode.ACCEPTANCE
        assert (await verify_store(log.engines)).intact
    finally:
        await log.aclose()


@pytest.mark.parametrize("with_published", [True, False], ids=["and-published", "alone"])
async def test_the_lock_of_answered_deliveries_is_lock_deliveries_built_once(
    store_url: str, make_document: Callable[..., NewDocument], with_published: bool
) -> None:
    """What ``locked`` sends for status pairs (PostgreSQL's path): the SQL, parameters and rows
    of the statement ``lock_deliveries`` builds per call, with and without published ids."""
    log = await DeliveryLog.open(store_url)
    try:
        recorded = await log.record_intake(make_document(), b"<answered/>", ROUTES)
        doc = recorded.document.id
        to = {d.recipient: d.id for d in recorded.deliveries}
        answer, mark = to[ROUTES[1][0]], to[ROUTES[2][0]]
        pairs = {(doc, ROUTES[1][0]), (doc, "000.00.09.H56"), ("no-such-document", ROUTES[0][0])}
        published = [mark, "no-such-delivery"] if with_published else []
        sent: list[tuple[str, Any]] = []
        seen: list[Any] = []
        listen = _recorder(sent)

        def work(conn: Connection) -> None:
            event.listen(conn, "before_cursor_execute", listen)
            answering = tuple_(deliveries.c.document, deliveries.c.recipient).in_(sorted(pairs))
            per_call = lock_deliveries(published, *_LOCKED_COLUMNS, also=answering)
            seen.append(conn.execute(per_call).all())
            values = {"lock_ids": sorted(set(published)), "lock_pairs": sorted(pairs)}
            seen.append(conn.execute(_LOCK_ANSWERED, values).all())
            answered, marked = locked(conn, pairs, published)
            seen.append(([tuple(r) for r in answered.values()], marked.read(conn)))

        await run_transaction(log.engines.writer, work)
        assert sent[0] == sent[1] == sent[2]
        reference = [tuple(r) for r in seen[0]]
        assert [tuple(r) for r in seen[1]] == reference
        assert [r[0] for r in reference] == sorted([answer, mark] if with_published else [answer])
        answered, marked = seen[2]
        assert answered == [r for r in reference if r[0] == answer]
        assert [r.id for r in marked] == ([mark] if with_published else [])
    finally:
        await log.aclose()
