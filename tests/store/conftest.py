"""Fixtures of the delivery-log tests: every test runs against SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiosqlite
import pytest
from records_kit import new_document
from sqlalchemy import Table

from gateway.store import NewDocument
from gateway.store.engine import Engines, create_engines, transaction

SqliteStore = Callable[[Table], Awaitable[Engines]]


@pytest.fixture
def make_document() -> Callable[..., NewDocument]:
    return new_document


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """``await sqlite_store(table)``: engines on a new SQLite file holding ``table`` only (for
    the driver's tests), disposed after the test."""
    made: list[Engines] = []

    async def open_with(table: Table) -> Engines:
        engines = create_engines(f"sqlite+aiosqlite:///{tmp_path}/store.db")
        made.append(engines)
        async with transaction(engines.writer) as conn:
            await conn.run_sync(table.metadata.create_all)
        return engines

    try:
        yield open_with
    finally:
        for engines in made:
            await engines.writer.dispose()


class Hops:
    """Counts the calls that cross to aiosqlite's threads (the real driver, only counted)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = aiosqlite.Connection._execute

        async def counted(  # type: ignore[no-untyped-def]
            connection: aiosqlite.Connection, fn: Callable[..., object], *a: object, **kw: object
        ):
            self.count += 1
            return await real(connection, fn, *a, **kw)  # type: ignore[no-untyped-call]

        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)


@pytest.fixture
def count_hops(monkeypatch: pytest.MonkeyPatch) -> Callable[[], Hops]:
    """Start counting the hops to aiosqlite's threads (until the test's ``monkeypatch`` undoes
    it): ``hops = count_hops()``, then ``hops.count``."""
    return lambda: Hops(monkeypatch)
