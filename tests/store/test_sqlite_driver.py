"""The one-hop SQLite cursor (``gateway.store.sqlite_driver``) against SQLAlchemy's own aiosqlite
adapter, the reference it must agree with: the same script of statements gives the same rows,
column names, row counts, last row ids, errors and transaction outcomes on both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.store import sqlite_driver
from gateway.store.engine import create_engines, transaction

BLOB = bytes(range(256)) * 1600  # 400 KB, every byte value: a real package's size


def test_this_sqlalchemy_gets_the_one_hop_cursor() -> None:
    """pyproject pins the SQLAlchemy line this was written against; on it the fast path is on
    (were it off, the engine would silently fall back to the slower reference adapter)."""
    assert sqlalchemy.__version__.startswith("2.1."), sqlalchemy.__version__
    assert sqlite_driver.dbapi() is not None


async def _script(engine: AsyncEngine) -> list[Any]:
    """Every kind of call the store makes, and what each returned or raised."""
    seen: list[Any] = []
    async with engine.connect() as conn:
        await conn.exec_driver_sql(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE NOT NULL, v BLOB)"
        )
        one = await conn.execute(
            text("INSERT INTO t (k, v) VALUES (:k, :v)"), {"k": "a", "v": b"1"}
        )
        seen.append(("insert", one.rowcount, one.lastrowid))
        many = await conn.execute(
            text("INSERT INTO t (k, v) VALUES (:k, :v)"),
            [{"k": "b", "v": b"2"}, {"k": "c", "v": BLOB}, {"k": "d", "v": None}],
        )
        seen.append(("executemany", many.rowcount))
        back = await conn.execute(
            text("INSERT INTO t (k, v) VALUES (:k, :v) RETURNING id, k"), {"k": "e", "v": b""}
        )
        seen.append(("returning", list(back.keys()), [tuple(r) for r in back.all()]))
        rows = await conn.execute(text("SELECT id, k, v FROM t ORDER BY id"))
        seen.append(("select", list(rows.keys()), [tuple(r) for r in rows.all()]))
        none = await conn.execute(text("SELECT k FROM t WHERE k = 'zz'"))
        seen.append(("empty", list(none.keys()), none.all()))
        changed = await conn.execute(text("UPDATE t SET v = :v WHERE k IN ('a', 'b')"), {"v": b"x"})
        seen.append(("update", changed.rowcount))
        scalar = await conn.scalar(text("SELECT count(*) FROM t"))
        seen.append(("scalar", scalar))
        for bad in (
            "INSERT INTO t (k) VALUES ('a')",
            "SELEC nothing",
            "INSERT INTO t (v) VALUES (1)",
        ):
            try:
                await conn.exec_driver_sql(bad)
            except exc.DBAPIError as error:
                seen.append(("error", type(error).__name__, type(error.orig).__name__))
        await conn.commit()
        async with conn.begin():
            await conn.exec_driver_sql("INSERT INTO t (k) VALUES ('rolled back')")
            await conn.rollback()
        async with conn.begin():
            await conn.exec_driver_sql("INSERT INTO t (k) VALUES ('committed')")
        keys = await conn.execute(text("SELECT k FROM t ORDER BY id"))
        seen.append(("after transactions", keys.scalars().all()))
    return seen


@pytest.fixture
async def engines(tmp_path: Path) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    reference = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/reference.db")
    one_hop = create_async_engine(
        f"sqlite+aiosqlite:///{tmp_path}/one_hop.db", module=sqlite_driver.dbapi()
    )
    try:
        yield reference, one_hop
    finally:
        await reference.dispose()
        await one_hop.dispose()


async def test_the_one_hop_cursor_agrees_with_sqlalchemys_adapter(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    reference, one_hop = engines
    expected = await _script(reference)
    assert [step[0] for step in expected].count("error") == 3  # the script reached its errors
    assert await _script(one_hop) == expected


async def test_the_store_engine_uses_it_and_rolls_back_what_a_failed_transaction_wrote(
    tmp_path: Path,
) -> None:
    engines = create_engines(f"sqlite+aiosqlite:///{tmp_path}/store.db")
    assert isinstance(engines.writer.dialect.loaded_dbapi, type(sqlite_driver.dbapi()))
    try:
        async with transaction(engines.writer) as conn:
            await conn.exec_driver_sql("CREATE TABLE t (k TEXT PRIMARY KEY)")

        async def fails_mid_transaction() -> None:
            async with transaction(engines.writer) as conn:
                await conn.exec_driver_sql("INSERT INTO t VALUES ('lost')")
                raise RuntimeError("the caller failed mid-transaction")

        with pytest.raises(RuntimeError):
            await fails_mid_transaction()
        async with transaction(engines.writer) as conn:
            await conn.exec_driver_sql("INSERT INTO t VALUES ('kept')")
        async with engines.reader.connect() as conn:
            assert (await conn.execute(text("SELECT k FROM t"))).scalars().all() == ["kept"]
    finally:
        await engines.writer.dispose()
