"""The engine's cheaper ways in, held to ``transaction``: ``sqlite_autocommit_rows`` (one SQLite
read outside a transaction) and ``run_transaction`` (a whole transaction in one greenlet)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Connection

from gateway.core.errors import ConflictError, UnavailableError
from gateway.store.engine import (
    create_engines,
    run_transaction,
    sqlite_autocommit_rows,
    transaction,
)


async def test_one_read_outside_a_transaction_returns_what_a_transaction_reads(
    tmp_path: Path,
) -> None:
    engines = create_engines(f"sqlite+aiosqlite:///{tmp_path}/store.db")
    begun: list[object] = []
    event.listen(engines.reader.sync_engine, "begin", begun.append)
    try:
        async with transaction(engines.writer) as conn:
            await conn.exec_driver_sql("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER)")
            await conn.exec_driver_sql("INSERT INTO t VALUES ('a', 1), ('b', 2), ('c', 3)")
        query = "SELECT k, n FROM t WHERE k IN (?, ?) ORDER BY k"
        async with transaction(engines.reader) as conn:
            expected = [tuple(r) for r in await conn.exec_driver_sql(query, ("c", "a"))]
        begun.clear()

        assert await sqlite_autocommit_rows(engines.reader, query, ("c", "a")) == expected
        assert await sqlite_autocommit_rows(engines.reader, query, ("x", "y")) == []
        assert begun == []  # no BEGIN, so no COMMIT either: one statement, one hop

        async with engines.reader.connect() as conn:  # the connection went back to the pool
            raw = await conn.get_raw_connection()
            assert raw.driver_connection is not None
            assert not raw.driver_connection.in_transaction
    finally:
        await engines.writer.dispose()


async def test_a_failed_read_is_unavailable_as_in_a_transaction(tmp_path: Path) -> None:
    engines = create_engines(f"sqlite+aiosqlite:///{tmp_path}/store.db")
    try:
        with pytest.raises(UnavailableError) as in_transaction:
            async with transaction(engines.reader) as conn:
                await conn.execute(text("SELECT k FROM no_such_table"))
        with pytest.raises(UnavailableError) as outside:
            await sqlite_autocommit_rows(engines.reader, "SELECT k FROM no_such_table", ())
        assert outside.value.code == in_transaction.value.code == "unavailable.store"
        assert "no such table" in str(outside.value)
        async with transaction(engines.reader) as conn:  # the pool is still good
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engines.writer.dispose()


async def test_a_transaction_in_one_greenlet_commits_rolls_back_and_translates_as_one(
    store_url: str,
) -> None:
    engines = create_engines(store_url)
    try:
        async with transaction(engines.writer) as conn:
            await conn.exec_driver_sql("DROP TABLE IF EXISTS t_one_greenlet")
            await conn.exec_driver_sql("CREATE TABLE t_one_greenlet (k VARCHAR(8) PRIMARY KEY)")

        def insert(key: str, *, then_fail: bool = False) -> Callable[[Connection], str]:
            def work(conn: Connection) -> str:
                conn.execute(text("INSERT INTO t_one_greenlet VALUES (:k)"), {"k": key})
                if then_fail:
                    raise RuntimeError("the work failed mid-transaction")
                return f"wrote {key}"

            return work

        assert await run_transaction(engines.writer, insert("kept")) == "wrote kept"
        with pytest.raises(RuntimeError):
            await run_transaction(engines.writer, insert("lost", then_fail=True))
        with pytest.raises(ConflictError) as in_one_greenlet:
            await run_transaction(engines.writer, insert("kept"))
        with pytest.raises(ConflictError) as in_transaction:
            async with transaction(engines.writer) as conn:
                await conn.execute(text("INSERT INTO t_one_greenlet VALUES ('kept')"))
        assert in_one_greenlet.value.code == in_transaction.value.code == "conflict.constraint"

        def keys(conn: Connection) -> list[str]:
            rows = conn.execute(text("SELECT k FROM t_one_greenlet ORDER BY k"))
            return [str(k) for k in rows.scalars()]

        assert await run_transaction(engines.reader, keys) == ["kept"]
        async with transaction(engines.writer) as conn:
            await conn.exec_driver_sql("DROP TABLE t_one_greenlet")
    finally:
        await engines.writer.dispose()
        await engines.reader.dispose()


async def test_a_transaction_in_one_greenlet_takes_the_sqlite_write_turn(tmp_path: Path) -> None:
    engines = create_engines(f"sqlite+aiosqlite:///{tmp_path}/store.db")
    order: list[str] = []
    try:
        async with transaction(engines.writer) as conn:
            await conn.exec_driver_sql("CREATE TABLE t (k TEXT PRIMARY KEY)")
        holding = asyncio.Event()

        async def first() -> None:
            async with transaction(engines.writer) as conn:
                holding.set()
                await asyncio.sleep(0.2)
                await conn.exec_driver_sql("INSERT INTO t VALUES ('first')")
                order.append("first")

        def second(conn: Connection) -> None:
            conn.exec_driver_sql("INSERT INTO t VALUES ('second')")
            order.append("second")

        task = asyncio.create_task(first())
        await holding.wait()
        await run_transaction(engines.writer, second)
        await task
        assert order == ["first", "second"]
    finally:
        await engines.writer.dispose()


@pytest.mark.parametrize(("engine", "locks"), [("writer", True), ("reader", False)])
async def test_the_writers_transaction_begins_immediate_the_readers_deferred(
    tmp_path: Path, engine: str, locks: bool
) -> None:
    """BEGIN goes with the transaction's first statement: a writer's ``BEGIN IMMEDIATE`` holds
    SQLite's write lock from there, even for a transaction that has only read; a reader's
    ``BEGIN DEFERRED`` takes none."""
    engines = create_engines(f"sqlite+aiosqlite:///{tmp_path}/store.db")
    other = sqlite3.connect(tmp_path / "store.db", timeout=0, isolation_level=None)
    seen: list[str] = []

    def work(conn: Connection) -> None:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            seen.append("free")
        except sqlite3.OperationalError as error:
            seen.append(str(error))

    try:
        await run_transaction(getattr(engines, engine), work)
        assert seen == (["database is locked"] if locks else ["free"])
    finally:
        other.close()
        await engines.writer.dispose()
