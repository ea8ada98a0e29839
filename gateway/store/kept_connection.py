"""The SQLite writer's one connection, checked out once and kept for its write transactions.

Every write transaction on SQLite runs under the write turn (``sqlite_turns``): one at a time in
the process. A checkout from the pool and a return to it per transaction (the pool's events,
its reset, a new ``_ConnectionFairy`` and SQLAlchemy ``Connection``) cost as much CPU as a
small intake batch's own statements, for a connection that is the same one each time. So the
delivery log's writers (the group committer, the worker's ``record_attempts``) run their
transactions, through ``engine.run_transaction``, on one ``Connection`` kept here.

Each transaction is SQLAlchemy's own (``Connection.begin``: our ``BEGIN IMMEDIATE`` hook, the
same COMMIT, a rollback on error), so nothing of a failed one is left. After an error the
connection is kept only if SQLAlchemy did not invalidate it and neither SQLAlchemy nor SQLite
holds a transaction open on it; otherwise it is closed (given back to the pool, whose reset rolls
back what is open, or discarded when invalid) and the next transaction checks out another.
``aclose`` gives it back, in its turn; after it transactions check out from the pool again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.util import greenlet_spawn

from gateway.store import sqlite_driver
from gateway.store.sqlite_turns import WriteTurns

T = TypeVar("T")


class KeptConnection:
    """One write connection of a SQLite engine, used under its write turns only."""

    def __init__(self, engine: Engine, turns: WriteTurns) -> None:
        self.engine = engine
        self.turns = turns
        self.closed = False
        self._conn: Connection | None = None
        self.checkouts = 0  # connections taken from the pool (for tests)

    def run(self, work: Callable[[Connection], T]) -> T:
        """``work(conn)`` in a transaction on the kept connection, committed on success (called
        in a greenlet, under the write turn)."""
        conn = self._conn
        if conn is None:
            conn = self._conn = self.engine.connect()
            self.checkouts += 1
        try:
            with conn.begin():
                return work(conn)
        except BaseException:
            if not _reusable(conn):
                self._discard()
            raise

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # the pool invalidates what it cannot reset
                conn.close()

    async def aclose(self) -> None:
        """Give the connection back to the pool (after the transaction in progress, if any)."""
        async with self.turns.local:
            self.closed = True
            if self._conn is not None:
                await greenlet_spawn(self._discard)


def _reusable(conn: Connection) -> bool:
    """Whether a connection whose transaction failed is clean: valid, and in no transaction."""
    if conn.closed or conn.invalidated or conn.in_transaction():
        return False
    return not sqlite_driver.in_transaction(conn.connection.dbapi_connection)
