"""The intake batch's locks (``store.intake_answers``) on real SQLite and PostgreSQL: the lock of
published marks alone, built once, is the statement ``queries.lock_deliveries`` builds per call
(the same SQL, parameters and rows), and ``locked`` answers with those rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, event

from gateway.store import DeliveryLog, NewDocument
from gateway.store.engine import run_transaction
from gateway.store.intake_answers import _LOCK_PUBLISHED, _LOCKED_COLUMNS, locked
from gateway.store.queries import lock_deliveries

ROUTES = [("000.00.01.H56", "push"), ("0101234567", "mailbox"), ("000.00.02.H56", "push")]


async def test_the_lock_of_published_marks_is_lock_deliveries_built_once(
    store_url: str, make_document: Callable[..., NewDocument]
) -> None:
    log = await DeliveryLog.open(store_url)
    try:
        recorded = await log.record_intake(make_document(), b"<marks/>", ROUTES)
        ids = [d.id for d in recorded.deliveries]
        published = [ids[2], ids[0], "no-such-delivery", ids[0]]  # unordered, a repeat
        sent: list[tuple[str, Any]] = []
        seen: list[Any] = []

        def listen(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
            sent.append((sql, params))

        def work(conn: Connection) -> None:
            event.listen(conn, "before_cursor_execute", listen)
            built = conn.execute(lock_deliveries(published, *_LOCKED_COLUMNS)).all()
            once = conn.execute(_LOCK_PUBLISHED, {"lock_ids": sorted(set(published))}).all()
            seen.extend([built, once, locked(conn, set(), published)])

        await run_transaction(log.engines.writer, work)
        built, once, (answered, marked) = seen
        assert sent[0] == sent[1] == sent[2]
        assert [tuple(r) for r in built] == [tuple(r) for r in once] == [tuple(r) for r in marked]
        assert [r.id for r in marked] == sorted([ids[0], ids[2]])
        assert answered == {}
    finally:
        await log.aclose()
