"""The statements of the store's timers and housekeeping are served by indexes, on both stores.

What runs on a timer, or prunes as it goes, whatever the store's size: the evidence chain's
checkpoint loop, the southbound's replay memory (and its expiry), console sessions (and their
expiry), the audit trail's appends, failed log-ins and rate counters (and their pruning), the
directory's watch, ``lgsp log tail``'s follow, the console's report cache refresh, and
``lgsp archive retain`` (monthly, from cron). Each is captured and EXPLAINed as
``test_hot_path_plans`` does (``plans_kit``); a scan is allowed only with its reason here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from plans_kit import scans, statements_of, unexplained

from adapters.national.protocol import Operation
from gateway.console.db import ConsoleDb
from gateway.console.report_cache import REFRESH_DAYS, ReportCache, Role, today
from gateway.core.errors import NotFoundError
from gateway.evidence import retention
from gateway.evidence.archive_files import Written
from gateway.evidence.checkpoints import Checkpoint, _head_and_latest
from gateway.national.replays import StoredReplayMemory
from gateway.store import DeliveryLog, DeliveryState, NewDocument
from gateway.store.attempts import AttemptReport
from gateway.store.counters import Counters
from gateway.store.engine import transaction
from gateway.store.login_failures import LoginFailures
from gateway.store.participants import StoredDirectory
from gateway.store.tables import chain_checkpoints

ROUTES = [("000.00.01.H56", "push"), ("0101234567", "mailbox")]
Make = Callable[..., NewDocument]

# Statements whose scan is by design (a text of the statement -> why).
ALLOWED = {
    # the latest checkpoint: SQLite walks the primary key's index from its end and stops at the
    # first entry (LIMIT 1), one row however many checkpoints there are
    "FROM chain_checkpoints ORDER BY chain_checkpoints.seq DESC": "one row, from the index's end",
    # ``lgsp log tail``'s first page: the last entries, walked from the primary key's end (LIMIT)
    "FROM events ORDER BY events.id DESC": "the last LIMIT rows, from the index's end",
    # retention's months already archived: one row per month, read once per run
    "SELECT archives.period \nFROM archives": "one row per archived month",
}


async def _filled(log: DeliveryLog, make_document: Make) -> None:
    """Documents over the last days, their deliveries moved: something for the timers to read."""
    now = datetime.now(UTC)
    for i in range(4):
        new = make_document(document_id=f"T-{i}", received_at=now - timedelta(days=i, hours=1))
        result = await log.record_intake(new, f"<t{i}/>".encode(), ROUTES)
        await log.mark_published([d.id for d in result.deliveries])
        await log.record_attempts(
            [AttemptReport(d.id, DeliveryState.DELIVERED, "HTTP 200") for d in result.deliveries]
        )


async def _checkpoints(log: DeliveryLog, _make: Make) -> None:
    """The checkpoint loop's store side (``Checkpointer.checkpoint`` without its signature and
    time-stamp): the head and the latest checkpoint, then the new checkpoint's row, twice."""
    for _ in range(2):
        async with transaction(log.engines.reader) as conn:
            head, _latest = await conn.run_sync(_head_and_latest)
        made = Checkpoint(head.last_id, head.hash, head.store_id, datetime.now(UTC), "jws", None)
        async with transaction(log.engines.writer) as conn:
            await conn.execute(chain_checkpoints.insert().values(**made.row()))
        await _filled(log, _make)


async def _replays(log: DeliveryLog, _make: Make) -> None:
    """The replay memory: a first use (with the expiry's delete), a reuse, an expired row used
    again, a forgotten one."""
    memory = StoredReplayMemory(lambda: log.engines, cleanup_interval_s=0.0)
    assert await memory.first_use("sys", "h1", Operation.GET_EDOC) is None
    assert await memory.first_use("sys", "h1", Operation.SEND_EDOC) is Operation.GET_EDOC
    expired = StoredReplayMemory(lambda: log.engines, retention_s=-1.0, cleanup_interval_s=1e9)
    await expired.first_use("sys", "h2", Operation.GET_EDOC)
    await expired.first_use("sys", "h2", Operation.GET_EDOC)
    await memory.forget("sys", "h1")


async def _console(log: DeliveryLog, _make: Make) -> None:
    """Console sessions (their expiry on each log-in), the audit trail's appends, failed log-ins
    and rate counters with their pruning, the directory's watch, ``lgsp log tail``'s polls."""
    db = ConsoleDb(lambda: log.engines)
    token, _row = await db.start_session("admin", 3600)
    assert await db.session(token) is not None
    await db.end_session(token)
    await db.audit("admin", "replay", "delivery-1", {"why": "test"})
    failures = LoginFailures(lambda: log.engines)
    assert await failures.failed("admin", 1000.0, 3600) == 1
    assert await failures.get("admin") == (1, 1000.0)
    await failures.prune(before=500.0)
    await failures.clear("admin")
    counters = Counters(lambda: log.engines)
    assert await counters.add("participant:x", 60, 2) == 2
    await counters.prune(before=0)
    await StoredDirectory(lambda: log.engines).refresh()
    last = (await log.latest_events(10))[-1].id  # ``lgsp log tail --follow``, then its polls
    assert await log.tail(after_event_id=last - 2, limit=100)


async def _reports(log: DeliveryLog, make_document: Make) -> None:
    """The console's report-cache loop: every closed day of the last ``REFRESH_DAYS`` computed
    (the first round), then only the days changed since (the next rounds)."""
    await _filled(log, make_document)
    cache = ReportCache(lambda: log.engines)
    assert await cache.refresh_recent() >= REFRESH_DAYS
    await _filled(log, make_document)
    assert 1 <= await cache.refresh_recent() < REFRESH_DAYS
    yesterday = today() - timedelta(days=1)
    await cache.totals(Role.SENDER, yesterday - timedelta(days=2), today())


async def _retention(log: DeliveryLog, make_document: Make) -> None:
    """``lgsp archive retain`` (monthly, from cron) without its file: the months to archive, a
    month's entries, rows and packages read, then moved out of the store. Of the month's two
    packages one is also another month's (the same bytes): it stays."""
    january, february = datetime(2025, 1, 10, tzinfo=UTC), datetime(2025, 2, 10, tzinfo=UTC)
    made = [("R-1", january, b"<r1/>"), ("R-2", january, b"<both-months/>")]
    for number, at, package in [*made, ("R-3", february, b"<both-months/>")]:
        await log.record_intake(make_document(document_id=number, received_at=at), package, ROUTES)
    family = retention._family(*retention.month_bounds("2025-01"))
    async with transaction(log.engines.reader) as conn:
        assert "2025-01" in await conn.run_sync(
            retention._periods, datetime(2025, 2, 1, tzinfo=UTC)
        )
        await conn.run_sync(retention._covered, family)
        entries = await conn.run_sync(lambda sync: list(retention._entries_of(sync, family)))
        rows = await conn.run_sync(lambda sync: list(retention._rows_of(sync, family)))
        kept = await conn.run_sync(lambda sync: dict(retention._packages_of(sync, family)))
    assert len(rows) == 2
    assert len(kept) == 2
    written = Written("0" * 64, len(entries), len(rows), entries[-1].id)
    async with transaction(log.engines.writer) as conn:
        await conn.run_sync(retention._move_out, "2025-01", family, "2025-01.zip", written)
    only, both = (hashlib.sha256(p).hexdigest() for p in (b"<r1/>", b"<both-months/>"))
    assert await log.get_package(both) == b"<both-months/>"
    with pytest.raises(NotFoundError):
        await log.get_package(only)


PATHS = {
    "checkpoint loop": _checkpoints,
    "replay memory": _replays,
    "console: sessions, audit, log-ins, rate counters, directory": _console,
    "report cache": _reports,
    "retention": _retention,
}


async def test_no_statement_on_a_timer_scans_a_growing_table(
    store_url: str, make_document: Make
) -> None:
    log = await DeliveryLog.open(store_url)
    try:
        statements = await statements_of(log, store_url, PATHS, make_document)
        found = {
            name: unexplained(await scans(log, store_url, s), ALLOWED)
            for name, s in statements.items()
        }
        assert {name: s for name, s in found.items() if s} == {}
    finally:
        await log.aclose()
