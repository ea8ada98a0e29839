"""PostgreSQL's planner statistics: a growing table that has none is analyzed, once."""

from __future__ import annotations

import asyncio

from records_kit import new_document
from sqlalchemy import text
from structlog.testing import capture_logs

from gateway.store import DeliveryLog
from gateway.store.engine import transaction
from gateway.store.statistics import (
    GROWING_TABLES,
    analyze_unanalyzed,
    autovacuum_on,
    keep_statistics,
)

PACKAGE = b"<edXML>" + b"x" * 1500 + b"</edXML>"
ROUTES = [("000.00.01.H56", "push"), ("000.00.02.H56", "mailbox")]
SMALL_BYTES = 16 * 1024  # two pages: the 150 packages below make every growing table larger


async def _fill(log: DeliveryLog, count: int = 150) -> None:
    await asyncio.gather(
        *(log.record_intake(new_document(), PACKAGE + b"%d" % i, ROUTES) for i in range(count))
    )


async def _never_analyzed(log: DeliveryLog) -> set[str]:
    """The growing tables PostgreSQL has no statistics of (neither analyzed nor vacuumed)."""
    async with transaction(log.engines.reader) as conn:
        rows = await conn.execute(
            text(
                "SELECT relname FROM pg_class"
                " WHERE relname = ANY(CAST(:names AS text[])) AND reltuples < 0"
            ),
            {"names": list(GROWING_TABLES)},
        )
        return {str(name) for name in rows.scalars()}


async def test_a_growing_table_without_statistics_is_analyzed_once(log: DeliveryLog) -> None:
    await _fill(log)
    if log.engines.dialect != "postgresql":
        assert await analyze_unanalyzed(log.engines, min_bytes=SMALL_BYTES) == ()
        assert await autovacuum_on(log.engines)
        return
    without = await _never_analyzed(log)
    if not await autovacuum_on(log.engines):  # as on CI: nothing else analyzes the new tables
        assert without == set(GROWING_TABLES)

    assert await analyze_unanalyzed(log.engines, min_bytes=10**12) == ()  # none large enough
    assert await _never_analyzed(log) == without

    analyzed = await analyze_unanalyzed(log.engines, min_bytes=SMALL_BYTES)

    assert set(analyzed) == without
    assert await _never_analyzed(log) == set()
    assert await analyze_unanalyzed(log.engines, min_bytes=SMALL_BYTES) == ()  # once only


async def test_the_gateway_loop_analyzes_and_says_when_autovacuum_is_off(
    log: DeliveryLog,
) -> None:
    await _fill(log)
    postgresql = log.engines.dialect == "postgresql"
    vacuuming = await autovacuum_on(log.engines)
    without = await _never_analyzed(log) if postgresql else set()
    with capture_logs() as logs:
        task = asyncio.create_task(
            keep_statistics(log.engines, interval_s=0.05, min_bytes=SMALL_BYTES)
        )
        try:
            for _ in range(100):
                if task.done() or any(e["event"] == "store.analyzed" for e in logs):
                    break
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    events = [e["event"] for e in logs]

    if not postgresql:  # SQLite: the loop does not run
        assert task.done()
        assert events == []
        return
    assert ("store.autovacuum_off" in events) is not vacuuming
    if without:
        analyzed = next(e for e in logs if e["event"] == "store.analyzed")
        assert set(analyzed["tables"]) == without
