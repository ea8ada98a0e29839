"""The store's engines and transactions, and the one place SQLAlchemy errors become ours.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL``: the gateway tells a
sender "accepted" only after the intake transaction commits, so a commit must survive a power cut
(``NORMAL`` in WAL mode may lose the last commits on power loss; the cost of FULL is one fsync of
the WAL per commit). Writers wait up to ``busy_timeout`` for each other, and write transactions
start with ``BEGIN IMMEDIATE`` so that a read-then-write transaction never fails half-way on a
stale snapshot; they take turns first (``sqlite_turns``), in the process and across processes.
PostgreSQL gets a small pool per process (several gateway processes share it).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolResetState
from sqlalchemy.util import await_, greenlet_spawn

from gateway.core.errors import ConfigError, ConflictError, ServiceError, UnavailableError
from gateway.store import sqlite_driver, sqlite_turns
from gateway.store.kept_connection import KeptConnection

SQLITE_BUSY_TIMEOUT_MS = 10_000
# A new SQLite file gets 16 KiB pages instead of 4 KiB: a package's bytes (hundreds of KB) are
# a chain of overflow pages, each a WAL frame with its own header and checksum, so 4 KiB pages cost
# about three times the CPU per stored byte (docs/performance.md, "SQLite page size"). 32 KiB made
# small packages dearer (every B-tree page a commit touches is one whole frame). An existing file
# keeps its page size (WAL mode fixes it; operations.md says how to convert one).
SQLITE_PAGE_SIZE_BYTES = 16_384
PG_POOL_SIZE = 5
PG_MAX_OVERFLOW = 5
CONNECT_TIMEOUT_S = 5.0
_BEGIN_OPTION = "lgsp_sqlite_begin"
_PIPELINED = {sqlite_driver.PIPELINED: True}
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Engines:
    """One pool, two ways in: ``reader`` for reads, ``writer`` for transactions that write."""

    reader: AsyncEngine
    writer: AsyncEngine

    @property
    def dialect(self) -> str:
        return self.reader.dialect.name


def create_engines(url: str) -> Engines:
    """Engines for a ``sqlite+aiosqlite://`` or ``postgresql+asyncpg://`` URL."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError as error:
        raise ConfigError(f"not a database URL: {error}", code="config.store_url") from error
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        _check_sqlite_dir(parsed.database)
        one_hop = sqlite_driver.dbapi()  # one thread hop per statement, pipelined writes
        engine = create_async_engine(
            parsed.set(drivername=sqlite_driver.DRIVERNAME) if one_hop is not None else parsed,
            **({"module": one_hop} if one_hop is not None else {}),
            pool_reset_on_return=None,  # see ``_on_reset``
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        _configure_sqlite(engine)
        return Engines(engine, engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"}))
    if backend == "postgresql":
        engine = create_async_engine(
            parsed,
            pool_size=PG_POOL_SIZE,
            max_overflow=PG_MAX_OVERFLOW,
            pool_pre_ping=True,
            pool_timeout=CONNECT_TIMEOUT_S,
            connect_args={"timeout": CONNECT_TIMEOUT_S},
        )
        return Engines(engine, engine)
    raise ConfigError(f"unsupported store backend {backend!r}", code="config.store_url")


def _check_sqlite_dir(database: str | None) -> None:
    """A file database needs its directory: SQLite creates the file, this the directories.

    A new database file is created here, readable by the owner only (0600), whatever the umask:
    it holds every package. SQLite gives its ``-wal`` and ``-shm`` files the database's mode.
    """
    path = sqlite_turns.file_database(database)
    if path is None:
        return
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"the directory of the SQLite store {path} cannot be created: {err.strerror}",
            code="config.store_url",
        ) from err
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _configure_sqlite(engine: AsyncEngine) -> None:
    """Pragmas on every new connection; BEGIN emitted by us (the driver's own BEGIN is off)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # no implicit BEGIN/COMMIT from the driver
        cursor = dbapi_connection.cursor()
        for pragma in (
            f"page_size={SQLITE_PAGE_SIZE_BYTES}",  # before WAL: takes effect only on a new file
            "journal_mode=WAL",
            "synchronous=FULL",
            "foreign_keys=ON",
            f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_connection: Any, _record: Any, reset_state: PoolResetState) -> None:
        """A connection back in the pool: roll back only a transaction still open (after a
        commit or rollback, the pool's own unconditional rollback is a wasted thread hop)."""
        sqlite_driver.drop_unsent(dbapi_connection)
        if reset_state.asyncio_safe and sqlite_driver.in_transaction(dbapi_connection):
            dbapi_connection.rollback()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        begin = f"BEGIN {conn.get_execution_options().get(_BEGIN_OPTION, 'DEFERRED')}"
        if not sqlite_driver.queue(conn.connection.dbapi_connection, begin, ()):  # one-hop: queued
            conn.exec_driver_sql(begin, execution_options=_PIPELINED)  # sent with the next


def _write_turns(engine: AsyncEngine) -> sqlite_turns.WriteTurns | None:
    """The turns a SQLite write transaction waits for (``sqlite_turns``); none on PostgreSQL."""
    if engine.get_execution_options().get(_BEGIN_OPTION) != "IMMEDIATE":
        return None
    return sqlite_turns.turns_of(engine.sync_engine)


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction, committed on success; the store's SQLAlchemy errors are translated here."""
    turns = _write_turns(engine)
    if turns is None:
        async with _translated(engine) as conn:
            yield conn
        return
    async with turns.turn(), _translated(engine) as conn:
        yield conn


async def run_transaction(
    engine: AsyncEngine, work: Callable[[Connection], T], kept: KeptConnection | None = None
) -> T:
    """``work(conn)`` in a transaction, committed on success: ``transaction``'s turns, errors and
    outcome, for a transaction whose work is written against SQLAlchemy's synchronous API.

    The whole transaction (checkout, BEGIN, ``work``, COMMIT, return to the pool) runs in ONE
    greenlet, as SQLAlchemy runs each awaited call of ``transaction`` in one of its own (six or
    more per transaction, each with its asyncio wrappers): about 0.2 ms of CPU less per
    transaction (docs/performance.md, "Issue 8, round 6"). With ``kept`` (``kept_connection``,
    for this engine), the transaction runs on that connection, without a checkout and return."""
    turns = _write_turns(engine)
    async with turns.turn() if turns is not None else contextlib.nullcontext():
        with _store_errors():
            if kept is not None and not kept.closed:
                assert kept.engine is engine.sync_engine, "a kept connection of another engine"
                return await greenlet_spawn(kept.run, work)
            return await greenlet_spawn(_in_transaction, engine.sync_engine, work)


def kept_connection(engine: AsyncEngine) -> KeptConnection | None:
    """A connection to keep for ``engine``'s write transactions (``kept_connection``): on a
    SQLite writer (which has write turns); ``None`` on PostgreSQL, whose pool checks each
    connection it hands out (``pool_pre_ping``)."""
    turns = _write_turns(engine)
    return None if turns is None else KeptConnection(engine.sync_engine, turns)


def _in_transaction(sync_engine: Engine, work: Callable[[Connection], T]) -> T:
    with sync_engine.begin() as conn:
        return work(conn)


@asynccontextmanager
async def _translated(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    with _store_errors():
        async with engine.begin() as conn:
            yield conn


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """The store's SQLAlchemy errors as ours."""
    try:
        yield
    except exc.IntegrityError as error:
        raise ConflictError(
            f"the store refused a write: {error.orig}", code="conflict.constraint"
        ) from error
    except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError, OSError) as error:
        raise UnavailableError(
            f"the store is unavailable: {error}", code="unavailable.store"
        ) from error
    except exc.DBAPIError as error:
        if error.connection_invalidated or _transient(error):
            raise UnavailableError(
                f"the store cannot take this now, try again: {error}", code="unavailable.store"
            ) from error
        raise ServiceError(f"store error: {error}", code="store.error") from error
    except exc.SQLAlchemyError as error:
        raise ServiceError(f"store error: {error}", code="store.error") from error


async def sqlite_autocommit_rows(
    engine: AsyncEngine, sql: str, parameters: Sequence[Any]
) -> list[Any]:
    """The rows of ONE SQLite read statement run outside any transaction, in one thread hop.

    ``transaction`` costs three hops for one read (BEGIN, the statement, COMMIT), each a wake-up of
    aiosqlite's thread and of the event loop, which cost more CPU than the read. SQLite runs a
    statement outside a transaction in an implicit one of its own, so ONE statement reads one
    consistent snapshot either way; two or more statements that must agree still need
    ``transaction``. ``sql`` is the dialect's compiled text (``?`` parameters, e.g. from a
    statement compiled once by SQLAlchemy); rows are the driver's tuples, without SQLAlchemy's
    result processing (plain strings and integers only). The connection is the pool's; errors
    become ours as in ``transaction`` (a failed read: ``UnavailableError``)."""
    try:
        with _store_errors():  # the pool's checkout
            return await greenlet_spawn(_autocommit_rows, engine.sync_engine, sql, parameters)
    except (sqlite3.OperationalError, sqlite3.InterfaceError, OSError) as error:  # the driver's
        raise UnavailableError(
            f"the store is unavailable: {error}", code="unavailable.store"
        ) from error
    except ValueError as error:  # aiosqlite: "no active connection", "Connection closed"
        if str(error).lower() not in ("no active connection", "connection closed"):
            raise
        raise UnavailableError(
            f"the store is unavailable: {error}", code="unavailable.store"
        ) from error
    except sqlite3.Error as error:
        raise ServiceError(f"store error: {error}", code="store.error") from error


def _autocommit_rows(sync_engine: Engine, sql: str, parameters: Sequence[Any]) -> list[Any]:
    """In one greenlet (as ``run_transaction``): check out, one hop to aiosqlite, check in."""
    with sync_engine.connect() as conn:  # no statement through SQLAlchemy: no BEGIN
        driver = conn.connection.driver_connection
        assert driver is not None
        return list(await_(driver.execute_fetchall(sql, parameters)))


# SQLSTATEs that say "try again", not "you erred": a server that is away for a while (connection
# exceptions, class 08; shutting down or starting up, 57P01 admin_shutdown, 57P02 crash_shutdown,
# 57P03 cannot_connect_now: "the database system is starting up"; 53300 too many connections), and
# a transaction that lost a race with another and was rolled back whole (40001
# serialization_failure, 40P01 deadlock_detected): the same work, tried again, succeeds.
_TRANSIENT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300", "40001", "40P01")


def _transient(error: exc.DBAPIError) -> bool:
    """Whether the driver's error says to try again later (nothing was written)."""
    sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATES)
