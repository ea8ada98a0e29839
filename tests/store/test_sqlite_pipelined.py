"""Pipelined SQLite statements (``sqlite_driver.pipelined``): a write whose result is not read goes
with the next statement's thread hop or with the COMMIT, in order, and a transaction keeps its
all-or-nothing outcome: what a failed or rolled-back transaction queued is never written, and
never sent later by the next user of the pooled connection."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Text, func, insert, select, text
from sqlalchemy.engine import Connection

from gateway.core.errors import ConflictError, ServiceError
from gateway.evidence.verify import verify_store
from gateway.store import NewDocument
from gateway.store.attempts import AttemptReport, AttemptResult
from gateway.store.delivery_log import DeliveryLog
from gateway.store.engine import Engines, transaction
from gateway.store.records import DeliveryState
from gateway.store.sqlite_driver import pipelined, prefetched

_T = Table("t", MetaData(), Column("k", Text, primary_key=True), Column("n", Integer))
_PUT = pipelined(insert(_T))
_COUNT = select(func.count()).select_from(_T)


@pytest.fixture
async def engines(sqlite_store: Callable[[Table], Awaitable[Engines]]) -> Engines:
    return await sqlite_store(_T)


async def _keys(engines: Engines) -> list[str]:
    async with engines.reader.connect() as conn:
        return list((await conn.execute(select(_T.c.k).order_by(_T.c.k))).scalars())


def _put(conn: Connection, *rows: dict[str, object]) -> None:
    """Synchronous work, as the store runs it (``run_sync``): the pipelined write is not sent."""
    conn.execute(_PUT, list(rows) if len(rows) > 1 else rows[0])


async def test_pipelined_writes_go_with_the_next_statement_and_the_commit(
    engines: Engines, count_hops: Callable[[], Any]
) -> None:
    hops = count_hops()
    async with transaction(engines.writer) as conn:
        await conn.run_sync(_put, {"k": "a", "n": 1})
        await conn.run_sync(_put, {"k": "b", "n": 2}, {"k": "c", "n": 3})
        assert hops.count == 0  # BEGIN and both writes wait
        assert await conn.scalar(_COUNT) == 3  # sent first, in the same hop: the read sees them
        assert hops.count == 1
        await conn.run_sync(_put, {"k": "d", "n": 4})
    assert hops.count == 2  # the last write went with the COMMIT
    assert await _keys(engines) == ["a", "b", "c", "d"]


async def _twice(engines: Engines) -> None:
    async with transaction(engines.writer) as conn:
        await conn.run_sync(_put, {"k": "a", "n": 1})
        await conn.run_sync(_put, {"k": "a", "n": 2})  # the primary key again


async def test_a_failing_pipelined_write_fails_its_transaction_and_nothing_is_written(
    engines: Engines,
) -> None:
    with pytest.raises(ConflictError) as raised:
        await _twice(engines)
    assert raised.value.code == "conflict.constraint"
    assert "UNIQUE" in str(raised.value)
    assert await _keys(engines) == []


async def _fails_before_sending(engines: Engines) -> None:
    async with transaction(engines.writer) as conn:
        await conn.run_sync(_put, {"k": "lost", "n": 1})
        raise RuntimeError("the caller failed before anything was sent")


async def test_what_a_rolled_back_transaction_queued_is_never_sent(engines: Engines) -> None:
    with pytest.raises(RuntimeError):
        await _fails_before_sending(engines)
    for _ in range(3):  # the pooled connection's next transactions
        async with transaction(engines.writer) as conn:
            key = f"kept{await conn.scalar(_COUNT)}"
            await conn.run_sync(_put, {"k": key, "n": 1})
    assert await _keys(engines) == ["kept0", "kept1", "kept2"]


async def _awaited_alone(engines: Engines) -> None:
    async with transaction(engines.writer) as conn:
        await conn.execute(_PUT, {"k": "alone", "n": 1})


async def test_a_pipelined_statement_awaited_on_its_own_is_refused_not_lost(
    engines: Engines,
) -> None:
    """Through ``AsyncConnection.execute`` SQLAlchemy requires a hop: the store's errors say so
    (a loud failure, never a write silently dropped)."""
    with pytest.raises(ServiceError, match="async execution"):
        await _awaited_alone(engines)
    assert await _keys(engines) == []


async def test_a_reader_transaction_reads_in_one_hop_with_its_begin(
    engines: Engines, count_hops: Callable[[], Any]
) -> None:
    hops = count_hops()
    async with transaction(engines.reader) as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 0
    assert hops.count == 2  # BEGIN with the read, then the COMMIT


async def test_the_intake_batch_is_five_hops_whatever_its_size(
    tmp_path: Path, count_hops: Callable[[], Any], make_document: Callable[..., NewDocument]
) -> None:
    """A document's batch: the documents (with BEGIN, the prefetched chain head and the packages)
    and the COMMIT (with the deliveries, the events and the head's move). A status package's adds
    two reads (the originals, the locked deliveries): 4 hops, where each statement's own hop made
    12. The chain the batches appended to verifies."""
    log = await DeliveryLog.open(f"sqlite+aiosqlite:///{tmp_path}/log.db")
    try:
        await log.record_intake(make_document(), b"<warm-up/>", [("000.00.01.H01", "push")])
        hops = count_hops()
        await log.record_intake(make_document(), b"<one/>", [("000.00.01.H01", "push")])
        one = hops.count
        hops.count = 0
        await asyncio.gather(
            *(
                log.record_intake(make_document(), f"<p{i}/>".encode(), [("000.00.01.H01", "push")])
                for i in range(8)
            )
        )
        assert one == 2  # 7 when each write hops on its own
        assert hops.count in (2, 4)  # one or two batches of the same two hops
        assert (await verify_store(log.engines)).intact
    finally:
        await log.aclose()


async def test_the_workers_batch_commit_is_two_hops(
    tmp_path: Path, count_hops: Callable[[], Any], make_document: Callable[..., NewDocument]
) -> None:
    """The delivered deliveries' update (with BEGIN and the prefetched head), then the COMMIT
    (with the events and the head's move)."""
    log = await DeliveryLog.open(f"sqlite+aiosqlite:///{tmp_path}/log.db")
    try:
        intake = await log.record_intake(
            make_document(), b"<p/>", [("000.00.01.H01", "push"), ("000.00.02.H01", "push")]
        )
        hops = count_hops()
        results = await log.record_attempts(
            [AttemptReport(d.id, DeliveryState.DELIVERED, "HTTP 200") for d in intake.deliveries]
        )
        assert results == [AttemptResult.APPLIED, AttemptResult.APPLIED]
        assert hops.count == 2
        assert (await verify_store(log.engines)).intact
    finally:
        await log.aclose()


_COUNT_PREFETCHED = prefetched(_COUNT)


def _count(conn: Connection) -> int | None:
    """Synchronous, as the store's transactions read (an awaited read must hop: SQLAlchemy)."""
    return conn.execute(_COUNT).scalar()


def _prefetch_put_count(conn: Connection) -> int | None:
    conn.execute(_COUNT_PREFETCHED)  # queued, its rows to be kept
    conn.execute(_PUT, {"k": "x", "n": 1})  # queued after it
    return conn.execute(_COUNT).scalar()  # nothing kept yet: its hop sends both, then counts


async def test_a_prefetched_read_is_answered_from_the_next_hop_and_never_outlives_its_transaction(
    engines: Engines, count_hops: Callable[[], Any]
) -> None:
    hops = count_hops()
    async with transaction(engines.writer) as conn:
        await conn.run_sync(_put, {"k": "a", "n": 1})
        assert await conn.scalar(text("SELECT 1")) == 1  # the hop that sends what was queued
        before = hops.count
        await conn.run_sync(lambda c: c.execute(_COUNT_PREFETCHED))
        assert await conn.scalar(text("SELECT 2")) == 2  # sends the prefetched read
        assert await conn.run_sync(_count) == 1  # its kept rows, without a hop
        assert hops.count == before + 1
        assert await conn.run_sync(_count) == 1  # kept rows answer once: this one hopped
        assert hops.count == before + 2
    async with transaction(engines.writer) as conn:
        assert await conn.run_sync(_prefetch_put_count) == 2  # kept: the count of 1, unused
    hops.count = 0
    async with transaction(engines.writer) as conn:
        assert await conn.scalar(_COUNT) == 2  # a new transaction reads afresh, not the kept 1
    assert hops.count == 2
