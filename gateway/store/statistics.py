"""PostgreSQL: the store's growing tables get planner statistics once, whoever else does not.

Without statistics (``autovacuum`` off, or a young store before autovacuum's first pass),
PostgreSQL plans even the store's primary-key lookups as sequential scans, and a connection
keeps such a plan while the table grows: every batch then reads whole tables, and the store's
CPU per package grows with its size (``docs/performance.md``, "Issue 8, round 15": 2.35 ms a
small package over 40,000 packages, 0.44 ms with statistics). So the gateway checks every
``STATISTICS_INTERVAL_S`` for a growing table that has never been analyzed nor vacuumed
(``pg_class.reltuples < 0``, PostgreSQL 14 and later) and holds ``ANALYZE_AT_BYTES``, and runs
``ANALYZE`` on it: the cached plans are then made again, and PostgreSQL scales the row
estimates with the table's size from then on. Each table is analyzed at most once this way.

Routine ``ANALYZE`` and ``VACUUM`` stay the server's (autovacuum) or the operator's; with
autovacuum off the gateway says so once, at its first round. SQLite needs none of this (its
planner assumes an index is selective without statistics).
"""

from __future__ import annotations

import structlog
from sqlalchemy import text

from gateway.core.loops import Loops, supervise
from gateway.store.engine import Engines, transaction

log = structlog.get_logger(__name__)

GROWING_TABLES = ("deliveries", "documents", "events", "packages")
"""The tables every package adds rows to."""

ANALYZE_AT_BYTES = 1024 * 1024
"""A table never analyzed is analyzed once it holds this much (about 3,000 deliveries)."""

STATISTICS_INTERVAL_S = 10.0

_UNANALYZED = text(
    "SELECT t.name FROM unnest(CAST(:names AS text[])) AS t(name)"
    " JOIN pg_class c ON c.oid = to_regclass(t.name)"
    " WHERE c.reltuples < 0 AND pg_relation_size(c.oid) >= :min_bytes"
    " ORDER BY t.name"
)
_AUTOVACUUM_ON = text("SELECT current_setting('autovacuum') = 'on'")


async def analyze_unanalyzed(
    engines: Engines, *, min_bytes: int = ANALYZE_AT_BYTES
) -> tuple[str, ...]:
    """``ANALYZE`` each of ``GROWING_TABLES`` that has no statistics and holds ``min_bytes``; the
    names analyzed (none on SQLite)."""
    if engines.dialect != "postgresql":
        return ()
    async with transaction(engines.writer) as conn:
        result = await conn.execute(
            _UNANALYZED, {"names": list(GROWING_TABLES), "min_bytes": min_bytes}
        )
        names = tuple(str(name) for name in result.scalars())
        quote = conn.dialect.identifier_preparer.quote
        for name in names:
            await conn.exec_driver_sql(f"ANALYZE {quote(name)}")
    return names


async def autovacuum_on(engines: Engines) -> bool:
    """Whether the PostgreSQL server runs autovacuum (always true of SQLite, which has none)."""
    if engines.dialect != "postgresql":
        return True
    async with transaction(engines.reader) as conn:
        return bool((await conn.execute(_AUTOVACUUM_ON)).scalar_one())


async def keep_statistics(
    engines: Engines,
    *,
    interval_s: float = STATISTICS_INTERVAL_S,
    min_bytes: int = ANALYZE_AT_BYTES,
    loops: Loops | None = None,
) -> None:
    """The gateway's loop: ``analyze_unanalyzed`` every ``interval_s`` (PostgreSQL only)."""
    if engines.dialect != "postgresql":
        return
    checked = False

    async def round_() -> None:
        nonlocal checked
        if not checked:
            if not await autovacuum_on(engines):
                log.warning(
                    "store.autovacuum_off",
                    detail="PostgreSQL's autovacuum is off: the gateway analyzes each growing"
                    " table once; routine ANALYZE and VACUUM are then the operator's",
                )
            checked = True
        analyzed = await analyze_unanalyzed(engines, min_bytes=min_bytes)
        if analyzed:
            log.info("store.analyzed", tables=list(analyzed))

    await supervise("store-statistics", round_, interval_s=interval_s, loops=loops)
