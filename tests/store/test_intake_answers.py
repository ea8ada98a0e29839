"""The intake batch's locks (``store.intake_answers``) on real SQLite and PostgreSQL: the lock of
published marks alone, built once, is the statement ``queries.lock_deliveries`` builds per call
(the same SQL, parameters and rows); on SQLite it is read with the transaction's next hop, so a
batch that carries marks costs no hop more than one that does not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import Connection, event, text

from gateway.evidence.verify import verify_store
from gateway.store import DeliveryLog, DeliveryState, NewDocument
from gateway.store.engine import run_transaction
from gateway.store.intake_answers import _LOCK_PUBLISHED, locked
from gateway.store.queries import lock_deliveries
from gateway.store.tables import deliveries

ROUTES = [("000.00.01.H56", "push"), ("0101234567", "mailbox"), ("000.00.02.H56", "push")]
COLUMNS = (deliveries.c.id, deliveries.c.document, deliveries.c.state)


async def _recorded(log: DeliveryLog, make_document: Callable[..., NewDocument]) -> list[str]:
    recorded = await log.record_intake(make_document(), b"<marks/>", ROUTES)
    ids = [d.id for d in recorded.deliveries]
    return [ids[2], ids[0], "no-such-delivery", ids[0]]  # unordered, a repeat, an unknown


async def test_the_lock_of_published_marks_is_lock_deliveries_built_once(
    store_url: str, make_document: Callable[..., NewDocument]
) -> None:
    log = await DeliveryLog.open(store_url)
    try:
        published = await _recorded(log, make_document)
        sent: list[tuple[str, Any]] = []
        seen: list[Any] = []

        def listen(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
            sent.append((sql, params))

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
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_document: Callable[..., NewDocument]
) -> None:
    log = await DeliveryLog.open(f"sqlite+aiosqlite:///{tmp_path}/log.db")
    try:
        first = await log.record_intake(make_document(), b"<first/>", ROUTES)
        log.writer.marks_delay_s = 3600.0  # only the next intake takes them along
        log.note_published([d.id for d in first.deliveries])
        hops: list[object] = []
        real = aiosqlite.Connection._execute

        async def counted(connection: aiosqlite.Connection, fn: Any, *args: Any) -> Any:
            hops.append(fn)
            return await real(connection, fn, *args)  # type: ignore[no-untyped-call]

        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
        await log.record_intake(make_document(), b"<second/>", ROUTES)
        monkeypatch.undo()
        assert len(hops) == 2  # the documents (with BEGIN, the head and the marks), the COMMIT
        view = await log.get_document(first.document.id)
        assert view is not None
        assert {d.state for d in view.deliveries} == {DeliveryState.QUEUED}
        assert (await verify_store(log.engines)).intact
    finally:
        await log.aclose()
