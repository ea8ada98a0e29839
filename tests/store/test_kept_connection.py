"""The SQLite writer's kept connection (``kept_connection``): its transactions are those of the
pool's connections (committed, or rolled back leaving nothing), it survives a failed one, is
replaced when lost, and is given back at close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, Table, Text, event, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.util import await_

from gateway.core.errors import ConflictError, UnavailableError
from gateway.store import DeliveryLog, DeliveryState, NewDocument
from gateway.store.attempts import AttemptReport
from gateway.store.engine import (
    Engines,
    create_engines,
    kept_connection,
    run_transaction,
    transaction,
)
from gateway.store.kept_connection import KeptConnection
from gateway.store.sqlite_driver import pipelined

_T = Table("t", MetaData(), Column("k", Text, primary_key=True))


@pytest.fixture
async def engines(sqlite_store: Callable[[Table], Awaitable[Engines]]) -> Engines:
    return await sqlite_store(_T)


def _put(*keys: str, then: Callable[[Connection], None] | None = None) -> Callable[..., Any]:
    """Work that queues one pipelined insert per key (sent with the COMMIT), then ``then``; it
    returns the DBAPI connection it ran on (held, so that another's cannot take its id)."""

    def work(conn: Connection) -> Any:
        for key in keys:
            conn.execute(pipelined(insert(_T)), {"k": key})
        if then is not None:
            then(conn)
        return conn.connection.dbapi_connection

    return work


async def _keys(engines: Engines) -> list[str]:
    async with transaction(engines.reader) as conn:
        return list((await conn.execute(select(_T.c.k).order_by(_T.c.k))).scalars())


@pytest.fixture
async def kept(engines: Engines) -> AsyncIterator[KeptConnection]:
    """The writer's kept connection, given back (before the engine's disposal) whatever the
    test's outcome."""
    made = kept_connection(engines.writer)
    assert made is not None
    try:
        yield made
    finally:
        await made.aclose()


def _checkouts(engines: Engines) -> list[object]:
    taken: list[object] = []
    event.listen(engines.writer.sync_engine, "checkout", lambda *_: taken.append(1))
    return taken


async def test_transactions_run_on_one_connection_and_commit(
    engines: Engines, kept: KeptConnection
) -> None:
    taken = _checkouts(engines)
    first = await run_transaction(engines.writer, _put("a"), kept)
    second = await run_transaction(engines.writer, _put("b", "c"), kept)
    assert first is second  # the same DBAPI connection
    assert len(taken) == kept.checkouts == 1  # checked out once, not per transaction
    assert engines.writer.sync_engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    assert await _keys(engines) == ["a", "b", "c"]


async def test_an_error_in_the_work_rolls_back_and_keeps_the_connection(
    engines: Engines, kept: KeptConnection
) -> None:
    used = await run_transaction(engines.writer, _put("a"), kept)

    def fail(_conn: Connection) -> None:
        raise RuntimeError("the work failed mid-transaction")

    with pytest.raises(RuntimeError):
        await run_transaction(engines.writer, _put("lost", then=fail), kept)
    assert await _keys(engines) == ["a"]  # nothing of the failed transaction
    assert await run_transaction(engines.writer, _put("b"), kept) is used
    assert kept.checkouts == 1
    assert await _keys(engines) == ["a", "b"]


async def test_an_error_of_a_statement_rolls_back_and_keeps_the_connection(
    engines: Engines, kept: KeptConnection
) -> None:
    used = await run_transaction(engines.writer, _put("a"), kept)

    def duplicate(conn: Connection) -> None:
        conn.execute(text("INSERT INTO t VALUES ('a')"))  # hops, and fails there

    with pytest.raises(ConflictError) as refused:
        await run_transaction(engines.writer, _put("lost", then=duplicate), kept)
    assert refused.value.code == "conflict.constraint"
    assert await _keys(engines) == ["a"]
    assert await run_transaction(engines.writer, _put("b"), kept) is used
    assert kept.checkouts == 1
    assert await _keys(engines) == ["a", "b"]


async def test_an_error_at_commit_leaves_nothing_and_the_pool_resets_the_connection(
    engines: Engines, kept: KeptConnection
) -> None:
    """A pipelined duplicate fails with the COMMIT it went with: SQLAlchemy does not roll back
    after a failed COMMIT (its pool's reset does), so the connection, still in SQLite's
    transaction, goes back to the pool, whose reset rolls it back; the transaction's other row
    is not written, the error is ``_store_errors``', and the next transaction checks out."""
    pool: Any = engines.writer.sync_engine.pool
    await run_transaction(engines.writer, _put("a"), kept)
    with pytest.raises(ConflictError) as refused:
        await run_transaction(engines.writer, _put("b", "a"), kept)
    assert refused.value.code == "conflict.constraint"
    assert pool.checkedout() == 0  # given back, and rolled back by the pool's reset
    assert await _keys(engines) == ["a"]
    await run_transaction(engines.writer, _put("c"), kept)
    assert kept.checkouts == 2
    assert await _keys(engines) == ["a", "c"]


async def test_an_invalidated_connection_is_replaced(
    engines: Engines, kept: KeptConnection
) -> None:
    used = await run_transaction(engines.writer, _put("a"), kept)

    def lose(conn: Connection) -> None:
        conn.invalidate()  # as SQLAlchemy does on a disconnect
        raise RuntimeError("lost")

    with pytest.raises(RuntimeError):
        await run_transaction(engines.writer, _put("lost", then=lose), kept)
    assert engines.writer.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await run_transaction(engines.writer, _put("b"), kept) is not used
    assert kept.checkouts == 2
    assert await _keys(engines) == ["a", "b"]


async def test_a_closed_driver_connection_fails_one_transaction_then_is_replaced(
    engines: Engines, kept: KeptConnection
) -> None:
    """The kept connection's SQLite connection closed under it (as a lost database would): that
    transaction is unavailable, and the next one runs on a new connection."""
    driver: list[Any] = []
    await run_transaction(
        engines.writer,
        _put("a", then=lambda c: driver.append(c.connection.driver_connection)),
        kept,
    )
    await driver[0].close()
    with pytest.raises(UnavailableError):
        await run_transaction(engines.writer, _put("lost"), kept)
    await run_transaction(engines.writer, _put("b"), kept)
    assert kept.checkouts == 2
    assert await _keys(engines) == ["a", "b"]


async def test_a_transaction_cancelled_in_a_hop_leaves_nothing_and_is_replaced(
    engines: Engines, kept: KeptConnection
) -> None:
    """Cancelled while SQLite runs its statement: SQLAlchemy invalidates the connection, the
    transaction leaves nothing, the next one runs on another connection."""
    used = await run_transaction(engines.writer, _put("a"), kept)
    slow = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000)"
        " SELECT count(*) FROM n"
    )
    started = asyncio.Event()

    def long_read(conn: Connection) -> None:
        started.set()
        conn.exec_driver_sql(slow)

    task = asyncio.create_task(run_transaction(engines.writer, _put("lost", then=long_read), kept))
    await started.wait()
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await run_transaction(engines.writer, _put("b"), kept) is not used
    assert kept.checkouts == 2
    assert await _keys(engines) == ["a", "b"]


async def test_a_transaction_cancelled_between_hops_rolls_back_and_keeps_it(
    engines: Engines, kept: KeptConnection
) -> None:
    used = await run_transaction(engines.writer, _put("a"), kept)
    started = asyncio.Event()

    def wait(_conn: Connection) -> None:
        started.set()
        await_(asyncio.sleep(10))

    task = asyncio.create_task(run_transaction(engines.writer, _put("lost", then=wait), kept))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await run_transaction(engines.writer, _put("b"), kept) is used
    assert kept.checkouts == 1
    assert await _keys(engines) == ["a", "b"]


async def test_close_gives_it_back_after_the_transaction_in_progress(
    engines: Engines, kept: KeptConnection
) -> None:
    pool: Any = engines.writer.sync_engine.pool
    await run_transaction(engines.writer, _put("a"), kept)
    started = asyncio.Event()

    def slowly(_conn: Connection) -> None:
        started.set()
        await_(asyncio.sleep(0.1))

    task = asyncio.create_task(run_transaction(engines.writer, _put("b", then=slowly), kept))
    await started.wait()
    await kept.aclose()  # waits for the turn: the transaction commits first
    assert task.done()
    await task
    assert pool.checkedout() == 0
    assert kept.closed
    await run_transaction(engines.writer, _put("c"), kept)  # through the pool now
    assert pool.checkedout() == 0
    assert kept.checkouts == 1
    assert await _keys(engines) == ["a", "b", "c"]


async def test_postgresql_keeps_none(store_url: str) -> None:
    engines = create_engines(store_url)
    try:
        assert (kept_connection(engines.writer) is None) == store_url.startswith("postgresql")
        assert kept_connection(engines.reader) is None
    finally:
        await engines.writer.dispose()


async def test_the_delivery_logs_writes_check_out_once_and_close_gives_it_back(
    store_url: str, make_document: Callable[..., NewDocument]
) -> None:
    """The group commit's batches and the worker's commit share the kept connection on SQLite
    (PostgreSQL checks out per transaction, as before); ``aclose`` gives it back."""
    log = await DeliveryLog.open(store_url)
    pool: Any = log.engines.writer.sync_engine.pool
    try:
        first = await log.record_intake(make_document(), b"<p/>", [("000.00.01.H01", "push")])
        taken = _checkouts(log.engines)
        results = await asyncio.gather(
            *(
                log.record_intake(make_document(), f"<p{i}/>".encode(), [("000.00.01.H01", "push")])
                for i in range(5)
            )
        )
        await log.record_attempts(
            [
                AttemptReport(r.deliveries[0].id, DeliveryState.DELIVERED, "HTTP 200")
                for r in (first, *results)
            ]
        )
        sqlite = store_url.startswith("sqlite")
        assert (len(taken) == 0) == sqlite
        assert pool.checkedout() == (1 if sqlite else 0)
        states = await log.delivery_states(r.deliveries[0].id for r in (first, *results))
        assert set(states.values()) == {DeliveryState.DELIVERED}
    finally:
        await log.aclose()
    assert pool.checkedout() == 0
