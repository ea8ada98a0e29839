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
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)

try:
    from sqlalchemy.util import await_
except ImportError:  # SQLAlchemy 2.0 (where ``dbapi()`` declines anyway)
    from sqlalchemy.util import await_only as await_

_Outcome = tuple[Any, list[Any], int, int | None]  # description, rows, rowcount, lastrowid


def _execute(
    conn: sqlite3.Connection, operation: str, parameters: Any, many: bool = False
) -> _Outcome:
    """Runs on aiosqlite's thread: one statement from cursor to close."""
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
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor whose statement runs in one hop; its results are kept here."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # no aiosqlite cursor (opening one is a hop): the statement opens its own
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

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
        try:
            return await_(self._run(operation, parameters, False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        try:
            return await_(self._run(operation, seq_of_parameters, True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _run(self, operation: Any, parameters: Any, many: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        async with self._adapt_connection._execute_mutex:
            outcome: _Outcome = await connection._execute(  # type: ignore[no-untyped-call]
                _execute, connection._conn, operation, parameters, many
            )
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)


class _Connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneHopCursor  # type: ignore[assignment]


def in_transaction(dbapi_connection: Any) -> bool:
    """Whether SQLite has a transaction open on this connection (read without a hop; a closed
    connection has none)."""
    try:
        return bool(dbapi_connection.driver_connection._conn.in_transaction)
    except ValueError:  # aiosqlite: "no active connection"
        return False


class _Dbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return _Connection(self, adapted._connection)


def dbapi() -> AsyncAdapt_aiosqlite_dbapi | None:
    """The DBAPI module for ``create_async_engine(sqlite+aiosqlite URL, module=dbapi())``; None
    where SQLAlchemy's adapter is not the one this was written against (SQLAlchemy 2.0: its
    connection picks no cursor class), so that the engine keeps SQLAlchemy's own."""
    if not hasattr(AsyncAdapt_aiosqlite_connection, "_cursor_cls"):
        return None
    if not hasattr(aiosqlite.Connection, "_execute"):  # aiosqlite's own hop, used by ``_run``
        return None
    return _Dbapi(aiosqlite, sqlite3)
