"""Queued SQLite statements compiled once by SQLAlchemy and put straight on the one-hop driver.

A ``pipelined`` write (or a ``prefetched`` read) through ``Connection.execute`` only appends to
the one-hop connection's queue (``sqlite_driver``), yet costs SQLAlchemy's whole execution: the
compiled cache's key, the parameters, an execution context, a cursor, a result. On the intake's
small batches that was a third of the transaction's CPU. A ``DriverStatement`` asks SQLAlchemy
to compile the statement once per dialect and set of keys (the ``compile`` its execute makes:
the keys sorted, ``for_executemany`` for more than one row), then makes each row's driver
parameters as SQLAlchemy does (its positional order, each bind's own type processor, fixed
values for the binds the rows do not give) and queues them (``sqlite_driver.queue``). The text
and parameters are held to SQLAlchemy's own by tests/store/test_driver_statements.py.

Errors are as before: a queued statement raises nothing when queued; its error comes from the
statement or COMMIT it is sent with, through SQLAlchemy. Where the connection is not a one-hop
one (PostgreSQL, SQLAlchemy's own aiosqlite adapter) the statement runs through
``Connection.execute`` as it did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ClauseElement

from gateway.store import sqlite_driver

Row = Mapping[str, Any]
_Processor = Callable[[Any], Any]
_NO_ROW: Row = {}
_CACHE_LIMIT = 32  # compiled forms kept per statement (one per dialect instance and key set)


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement's text for one dialect and key set, and how a row becomes its parameters."""

    sql: str
    names: tuple[str, ...]  # the row key of each positional parameter
    fixed: Mapping[str, Any]  # the binds the rows do not give: their values, processed
    processors: tuple[tuple[int, _Processor], ...]  # (position, the bind type's processor)

    def parameters(self, row: Row) -> tuple[Any, ...]:
        """The driver's parameters for ``row``, as SQLAlchemy makes them."""
        source = {**self.fixed, **row} if self.fixed else row
        values = [source[name] for name in self.names]
        for position, process in self.processors:
            values[position] = process(values[position])
        return tuple(values)


def compile_for(
    statement: Executable, dialect: Dialect, keys: Sequence[str], many: bool
) -> Compiled | None:
    """``statement`` compiled as ``Connection.execute`` compiles it for rows with ``keys``;
    ``None`` for a form this does not reproduce (named parameters, expanding or literal binds)."""
    assert isinstance(statement, ClauseElement)
    compiled: Any = statement.compile(
        dialect=dialect, column_keys=sorted(keys), for_executemany=many
    )
    names = tuple(compiled.positiontup or ())
    if not compiled.positional or len(names) != compiled.string.count("?"):
        return None
    binds = compiled.binds
    if any(binds[n].expanding or binds[n].literal_execute for n in names):
        return None
    given = set(keys)
    fixed: dict[str, Any] = {}
    processors: list[tuple[int, _Processor]] = []
    for position, name in enumerate(names):
        bind = binds[name]
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if name not in given:
            if bind.required or bind.callable is not None:
                return None
            fixed[name] = process(bind.value) if process else bind.value
        elif process is not None:
            processors.append((position, process))
    if fixed:  # a fixed bind's value is processed once here: not again per row
        unfixed = {p for p, n in enumerate(names) if n in fixed}
        processors = [(p, f) for p, f in processors if p not in unfixed]
    return Compiled(compiled.string, names, fixed, tuple(processors))


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """A ``pipelined`` write or ``prefetched`` read queued straight on the one-hop driver."""

    statement: Executable
    keep: bool = False  # a prefetched read: its rows are kept for ``kept_rows``
    _compiled: dict[tuple[int, tuple[str, ...], bool], tuple[Dialect, Compiled | None]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def _form(self, dialect: Dialect, keys: tuple[str, ...], many: bool) -> Compiled | None:
        key = (id(dialect), keys, many)
        found = self._compiled.get(key)
        if found is not None and found[0] is dialect:
            return found[1]
        if len(self._compiled) >= _CACHE_LIMIT:
            self._compiled.clear()
        compiled = compile_for(self.statement, dialect, keys, many)
        self._compiled[key] = (dialect, compiled)
        return compiled

    def execute(self, conn: Connection, rows: Sequence[Row] = (_NO_ROW,)) -> None:
        """Queue the statement for ``rows`` (all with the keys of the first) on a one-hop
        connection, else execute it (``Connection.execute(statement, rows)``)."""
        if not rows:
            return
        dbapi_connection = conn.connection.dbapi_connection
        many = len(rows) > 1
        form = None
        if sqlite_driver.is_one_hop(dbapi_connection):
            form = self._form(conn.dialect, tuple(rows[0]), many)
        if form is None:
            conn.execute(self.statement, list(rows) if many else rows[0])
            return
        parameters: Any = (
            [form.parameters(row) for row in rows] if many else form.parameters(rows[0])
        )
        sqlite_driver.queue(dbapi_connection, form.sql, parameters, many=many, keep=self.keep)

    def kept_rows(self, conn: Connection, row: Row = _NO_ROW) -> list[Any] | None:
        """The driver rows this ``keep`` read left on a one-hop connection, once (``None``:
        none kept, execute it)."""
        dbapi_connection = conn.connection.dbapi_connection
        if not sqlite_driver.is_one_hop(dbapi_connection):
            return None
        form = self._form(conn.dialect, tuple(row), False)
        if form is None:
            return None
        return sqlite_driver.take_kept(dbapi_connection, form.sql, form.parameters(row))
