"""SQLite through aiosqlite with one thread hop per statement instead of four.

aiosqlite runs every call on its connection's own thread; each call is a hop (a queue put, a
thread wake-up, a callback through the event loop's self-pipe), and on this workload a hop costs
more CPU than the SQL. SQLAlchemy's aiosqlite adapter spends four per statement: open a cursor,
execute, fetch, close. ``OneHopCursor`` does the four in one function on aiosqlite's thread
(through the queue SQLAlchemy's adapter already uses) and keeps the description, row count and
rows it returns; errors are the same ``sqlite3`` errors, handled as the adapter does. Passed to
SQLAlchemy as the dialect's DBAPI module (``create_async_engine(..., module=dbapi())``).

``in_transaction`` lets the pool skip its rollback of a connection given back after a commit (one
hop per transaction): ``engine.py`` rolls back on return only a connection SQLite says is still
in a transaction.

**Pipelined statements.** A statement marked ``pipelined(statement)`` (a write whose result the
caller never reads: no rows, no row count) does not hop on its own: it is sent with the next
statement of the transaction, or with the COMMIT, in that statement's hop, in order. ``BEGIN`` is
sent so too. A read marked ``prefetched(statement)`` goes the same way and its rows are kept: the
same statement with the same parameters, executed later in the transaction, is answered from
them without a hop (for a read nothing in between can change: the chain head, read with the
transaction's first hop, appended to last). The intake batch's transaction is 4 hops instead of
12 (a document's 2 instead of 7). An error of a pipelined statement is raised by the statement
it was sent with (the transaction fails as a whole, as it would have); a rollback, a COMMIT or
the connection's return to the pool drops what was not sent and every kept row. Both are for
synchronous work (``run_sync``, ``run_transaction``): through ``AsyncConnection.execute``
SQLAlchemy requires every statement to hop, and says so.
"""

from __future__ import annotations

import collections
import contextlib
import sqlite3
from collections.abc import Sequence
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.sql.base import Executable

try:
    from sqlalchemy.util import await_
except ImportError:  # SQLAlchemy 2.0 (where ``dbapi()`` declines anyway)
    from sqlalchemy.util import await_only as await_

E = TypeVar("E", bound=Executable)
_Outcome = tuple[Any, list[Any], int, int | None]  # description, rows, rowcount, lastrowid
_Statement = tuple[str, Any, bool, bool]  # operation, parameters, executemany, keep its rows
_Kept = tuple[str, Any, Any, list[Any]]  # operation, parameters, description, rows
PIPELINED = "lgsp_pipelined"  # the execution option ``pipelined`` sets
PREFETCHED = "lgsp_prefetched"  # the execution option ``prefetched`` sets


def pipelined(statement: E) -> E:
    """``statement`` (a write whose result is never read) sent with the next hop on SQLite."""
    return statement.execution_options(**{PIPELINED: True})


def prefetched(statement: E) -> E:
    """``statement`` (a read) sent with the next hop on SQLite, its rows kept for its own
    execution later in the transaction (which then needs no hop)."""
    return statement.execution_options(**{PREFETCHED: True})


def _send(conn: sqlite3.Connection, pending: Sequence[_Statement]) -> list[_Kept]:
    """Runs on aiosqlite's thread: the queued statements, in order; the rows of the prefetched."""
    kept: list[_Kept] = []
    for operation, parameters, many, keep in pending:
        if many:
            conn.executemany(operation, parameters).close()
            continue
        cursor = (
            conn.execute(operation) if parameters is None else conn.execute(operation, parameters)
        )
        if keep:
            kept.append((operation, parameters, cursor.description, cursor.fetchall()))
        cursor.close()
    return kept


def _commit(conn: sqlite3.Connection, pending: Sequence[_Statement]) -> None:
    _send(conn, pending)
    conn.commit()


def _execute(
    conn: sqlite3.Connection,
    operation: str,
    parameters: Any,
    many: bool = False,
    pending: Sequence[_Statement] = (),
) -> tuple[_Outcome, list[_Kept]]:
    """Runs on aiosqlite's thread: the queued statements, then one from cursor to close."""
    kept = _send(conn, pending) if pending else []
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return (description, rows, cursor.rowcount, cursor.lastrowid), kept
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor whose statement runs in one hop; its results are kept here."""

    __slots__ = ("_description", "_lastrowid", "_rowcount", "pipelined", "prefetched")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # no aiosqlite cursor (opening one is a hop): the statement opens its own
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self.pipelined = False  # set for one statement by ``OneHopDialect``
        self.prefetched = False  # likewise

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    async def _async_soft_close(self) -> None:
        return None  # nothing open on the thread

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        if self.pipelined or self.prefetched:
            return self._queue(operation, parameters, False)
        adapt: _Connection = self._adapt_connection  # type: ignore[assignment]
        if adapt.kept and (kept := adapt.take_kept(operation, parameters)) is not None:
            self._description, rows = kept
            self._rowcount, self._lastrowid = -1, None
            self._rows = collections.deque(rows)
            return None
        try:
            return await_(self._run(operation, parameters, False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        if self.pipelined:
            return self._queue(operation, list(seq_of_parameters), True)
        try:
            return await_(self._run(operation, seq_of_parameters, True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def _queue(self, operation: str, parameters: Any, many: bool) -> None:
        keep, self.pipelined, self.prefetched = self.prefetched, False, False
        self._adapt_connection.pending.append((operation, parameters, many, keep))  # type: ignore[attr-defined]
        self._description, self._rowcount, self._lastrowid = None, -1, None
        self._rows.clear()

    async def _run(self, operation: Any, parameters: Any, many: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        adapt: _Connection = self._adapt_connection  # type: ignore[assignment]
        async with adapt._execute_mutex:
            pending, adapt.pending = adapt.pending, []
            outcome, kept = await connection._execute(  # type: ignore[no-untyped-call]
                _execute, connection._conn, operation, parameters, many, pending
            )
        adapt.keep(kept)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)


class _Connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("kept", "pending")
    _cursor_cls = OneHopCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.pending: list[_Statement] = []  # pipelined statements not sent yet
        self.kept: dict[tuple[str, Any], tuple[Any, list[Any]]] = {}  # prefetched rows

    def keep(self, kept: Sequence[_Kept]) -> None:
        for operation, parameters, description, rows in kept:
            with contextlib.suppress(TypeError):  # parameters that cannot be a key: not kept
                self.kept[(operation, parameters)] = (description, rows)

    def take_kept(self, operation: str, parameters: Any) -> tuple[Any, list[Any]] | None:
        """The rows a prefetched read of this statement left, once (``None``: run it)."""
        try:
            return self.kept.pop((operation, parameters), None)
        except TypeError:  # parameters that cannot be a key
            return None

    def drop_unsent(self) -> None:
        """Forget what was queued and not sent, and every kept row (the transaction's end)."""
        self.pending.clear()
        self.kept.clear()

    def commit(self) -> None:
        self.kept.clear()
        if not self.pending:
            return super().commit()
        try:
            await_(self._commit_pending())
        except Exception as error:
            self._handle_exception(error)

    async def _commit_pending(self) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        async with self._execute_mutex:
            pending, self.pending = self.pending, []
            await connection._execute(_commit, connection._conn, pending)  # type: ignore[no-untyped-call]

    def rollback(self) -> None:
        self.drop_unsent()
        super().rollback()


def in_transaction(dbapi_connection: Any) -> bool:
    """Whether SQLite has a transaction open on this connection (read without a hop; a closed
    connection has none)."""
    try:
        return bool(dbapi_connection.driver_connection._conn.in_transaction)
    except ValueError:  # aiosqlite: "no active connection"
        return False


def is_one_hop(dbapi_connection: Any) -> bool:
    """Whether a pooled connection's DBAPI connection is a one-hop one (``queue`` takes it)."""
    return isinstance(dbapi_connection, _Connection)


def queue(
    dbapi_connection: Any,
    operation: str,
    parameters: Any,
    *,
    many: bool = False,
    keep: bool = False,
) -> bool:
    """Queue a statement on a one-hop connection as ``pipelined`` does (``keep``: as
    ``prefetched``), without a cursor: ``operation`` is the dialect's compiled text, ``parameters``
    the driver's (a tuple; a list of tuples for ``many``). False where the connection is not a
    one-hop one: nothing is queued, the caller executes the statement itself."""
    if not isinstance(dbapi_connection, _Connection):
        return False
    dbapi_connection.pending.append((operation, parameters, many, keep))
    return True


def take_kept(dbapi_connection: Any, operation: str, parameters: Any) -> list[Any] | None:
    """The rows (driver tuples) a queued ``keep`` read of this statement left, once; ``None``
    where there are none (or the connection is not a one-hop one): run it."""
    if not isinstance(dbapi_connection, _Connection) or not dbapi_connection.kept:
        return None
    kept = dbapi_connection.take_kept(operation, parameters)
    return None if kept is None else kept[1]


def drop_unsent(dbapi_connection: Any) -> None:
    """Drop the queued statements and kept rows of a connection given back to the pool (never
    sent: its transaction, if any, is rolled back)."""
    if isinstance(dbapi_connection, _Connection):
        dbapi_connection.drop_unsent()


class _Dbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return _Connection(self, adapted._connection)


class OneHopDialect(SQLiteDialect_aiosqlite):
    """SQLAlchemy's aiosqlite dialect that tells the cursor which statements are ``pipelined`` or
    ``prefetched`` (read from the statement's execution options, where SQLAlchemy hands them to
    the driver)."""

    supports_statement_cache = True

    def do_execute(self, cursor: Any, statement: Any, parameters: Any, context: Any = None) -> None:
        _mark(cursor, context)
        cursor.execute(statement, parameters)

    def do_executemany(
        self, cursor: Any, statement: Any, parameters: Any, context: Any = None
    ) -> None:
        _mark(cursor, context)
        cursor.executemany(statement, parameters)

    def do_execute_no_params(self, cursor: Any, statement: Any, context: Any = None) -> None:
        _mark(cursor, context)
        cursor.execute(statement)


def _mark(cursor: Any, context: Any) -> None:
    if context is None:
        return
    options = context.execution_options
    if options.get(PIPELINED):
        cursor.pipelined = True
    elif options.get(PREFETCHED):
        cursor.prefetched = True


DRIVERNAME = "sqlite+lgsp_onehop"  # the URL's driver for ``OneHopDialect`` (with ``dbapi()``)
registry.register("sqlite.lgsp_onehop", __name__, "OneHopDialect")


def dbapi() -> AsyncAdapt_aiosqlite_dbapi | None:
    """The DBAPI module for ``create_async_engine(sqlite+aiosqlite URL, module=dbapi())``; None
    where SQLAlchemy's adapter is not the one this was written against (SQLAlchemy 2.0: its
    connection picks no cursor class), so that the engine keeps SQLAlchemy's own."""
    if not hasattr(AsyncAdapt_aiosqlite_connection, "_cursor_cls"):
        return None
    if not hasattr(aiosqlite.Connection, "_execute"):  # aiosqlite's own hop, used by ``_run``
        return None
    return _Dbapi(aiosqlite, sqlite3)
