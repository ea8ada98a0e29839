"""``sqlite_autocommit_rows``: one SQLite read outside a transaction; errors as in one."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event, text

from gateway.core.errors import UnavailableError
from gateway.store.engine import create_engines, sqlite_autocommit_rows, transaction


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
