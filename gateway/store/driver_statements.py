"""The intake's SQLite statements compiled once by SQLAlchemy and sent straight to the one-hop
driver.

A ``pipelined`` write (or a ``prefetched`` read) through ``Connection.execute`` only appends to
the one-hop connection's queue (``sqlite_driver``), yet costs SQLAlchemy's whole execution: the
compiled cache's key, the parameters, an execution context, a cursor, a result. On the intake's
small batches that was a third of the transaction's CPU. A ``DriverStatement`` asks SQLAlchemy
to compile the statement once per dialect and set of keys (the ``compile`` its execute makes:
the keys sorted, ``for_executemany`` for more than one row), then makes each row's driver
parameters as SQLAlchemy does (its positional order, each bind's own type processor, fixed
values for the binds the rows do not give) and queues them (``sqlite_driver.queue``). The text
and parameters are held to SQLAlchemy's own by tests/store/test_driver_statements.py.

``fetch`` runs an INSERT … RETURNING (or a read) in its own hop through the driver's cursor, all
rows in one statement as SQLAlchemy's "insertmanyvalues" sends them (where SQLAlchemy would split
them, it goes through SQLAlchemy); each column's result processor (a ``UtcDateTime``'s) is run as
SQLAlchemy's result runs it. ``IN`` lists, of values or of tuples (``VALUES (?, ?), …`` on
SQLite), are rendered per execution as SQLAlchemy renders them.

Errors are as before: a queued statement raises nothing when queued; its error comes from the
statement or COMMIT it is sent with, through SQLAlchemy. An error of ``fetch``'s statement goes
through SQLAlchemy's own handler (its exception, the connection invalidated where SQLAlchemy
would). Where the connection is not a one-hop one (PostgreSQL, SQLAlchemy's own aiosqlite
adapter) the statement runs through ``Connection.execute`` as it did. Not seen by SQLAlchemy,
these statements are not in its echo log nor its cursor events.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, CursorResult, Dialect
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ClauseElement

from gateway.store import sqlite_driver
from gateway.store.tables import UtcDateTime

Row = Mapping[str, Any]
_Processor = Callable[[Any], Any]
_NO_ROW: Row = {}
_CACHE_LIMIT = 32  # compiled forms kept per statement (one per dialect instance and key set)
_MEMO_LIMIT = 256  # datetimes remembered per dialect (a batch's time and its documents')
# SQLAlchemy's handler of an error raised in its execute (pinned SQLAlchemy 2.1: tests hold it);
# without it ``fetch`` runs through ``Connection.execute``.
_HANDLE_ERROR: Callable[..., Any] | None = getattr(Connection, "_handle_dbapi_exception", None)


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement's text for one dialect and key set, and how a row becomes its parameters."""

    sql: str
    names: tuple[str, ...]  # the row key of each positional parameter
    values: str  # the INSERT's one ``VALUES (?, …)`` clause ("": none, or not only once)
    fixed: Mapping[str, Any]  # the binds the rows do not give: their values, processed
    processors: tuple[tuple[int, _Processor], ...]  # (position, the bind type's processor)
    # each ``IN`` list: its position, its placeholder, its items' width (0: not tuples)
    expanding: tuple[tuple[int, str, int], ...] = ()
    results: tuple[tuple[int, _Processor], ...] = ()  # (column, its type's result processor)

    def parameters(self, row: Row) -> tuple[Any, ...]:
        """The driver's parameters for ``row``, as SQLAlchemy makes them (each ``IN`` list's
        items, a tuple's values one by one, in its place; an empty list, or a tuple of another
        width, is refused: SQLAlchemy writes another form for it)."""
        source = {**self.fixed, **row} if self.fixed else row
        values = [source[name] for name in self.names]
        for position, process in self.processors:
            values[position] = process(values[position])
        for position, _, width in reversed(self.expanding):  # the last first: positions hold
            items = values[position]
            if not isinstance(items, list | tuple) or not items:
                raise ValueError("an IN list must be a non-empty list here")
            if width:
                if any(not isinstance(i, list | tuple) or len(i) != width for i in items):
                    raise ValueError("an IN list of tuples of its width only")
                items = list(itertools.chain.from_iterable(items))
            values[position : position + 1] = items
        return tuple(values)

    def text(self, row: Row) -> str:
        """The text for ``row``: an ``IN`` list rendered with one ``?`` per item (a tuple's:
        ``VALUES (?, ?), …``), as SQLAlchemy renders an expanding parameter."""
        sql = self.sql
        for position, placeholder, width in self.expanding:
            items = len(row[self.names[position]])
            if width:
                group = "(" + ", ".join("?" * width) + ")"
                rendered = "(VALUES " + ", ".join([group] * items) + ")"
            else:
                rendered = "(" + ", ".join("?" * items) + ")"
            sql = sql.replace(placeholder, rendered)
        return sql

    def processed(self, rows: Sequence[Any]) -> Sequence[Any]:
        """The driver's ``rows`` with each column's result processor run, as SQLAlchemy's."""
        if not self.results:
            return rows
        done = []
        for row in rows:
            values = list(row)
            for column, process in self.results:
                values[column] = process(values[column])
            done.append(tuple(values))
        return done

    def rows_parameters(self, rows: Sequence[Row], *, flat: bool) -> Any:
        """The parameters of ``rows``: one row's tuple, a list of tuples (executemany), or,
        ``flat``, one tuple of them all (a multi-row VALUES). ``None`` where a value is refused
        (a naive datetime, a missing key): SQLAlchemy then raises its own error for it."""
        try:
            if flat:
                return tuple(itertools.chain.from_iterable(map(self.parameters, rows)))
            return [*map(self.parameters, rows)] if len(rows) > 1 else self.parameters(rows[0])
        except Exception:  # refused: the caller goes through SQLAlchemy, for its error
            return None

    def sql_for(self, rows: int) -> str:
        """The text for ``rows`` rows: one VALUES group per row, as SQLAlchemy's
        "insertmanyvalues" sends a multi-row INSERT … RETURNING in one statement."""
        if rows == 1:
            return self.sql
        return self.sql.replace(self.values, "VALUES " + ", ".join([self.values[7:]] * rows))


def compile_for(
    statement: Executable, dialect: Dialect, keys: Sequence[str], many: bool
) -> Compiled | None:
    """``statement`` compiled as ``Connection.execute`` compiles it for rows with ``keys``;
    ``None`` for a form this does not reproduce (named parameters, literal binds, an ``IN``
    list in an executemany or used twice, one of a type that processes its items, an ``IN`` of
    tuples where the dialect does not write them ``VALUES (…), …``)."""
    assert isinstance(statement, ClauseElement)
    compiled: Any = statement.compile(
        dialect=dialect, column_keys=sorted(keys), for_executemany=many
    )
    names = tuple(compiled.positiontup or ())
    binds = compiled.binds
    lists = [p for p, n in enumerate(names) if binds[n].expanding]
    if (
        not compiled.positional
        or len(names) - len(lists) != compiled.string.count("?")
        or any(binds[n].literal_execute for n in names)
        or (lists and many)
    ):
        return None
    given = set(keys)
    expanding: list[tuple[int, str, int]] = []
    for position in lists:  # rendered per execution (``Compiled.text``)
        name = names[position]
        placeholder = f"(__[POSTCOMPILE_{name}])"
        width = _tuple_width(binds[name].type, dialect)
        if compiled.string.count(placeholder) != 1 or name not in given or width is None:
            return None
        expanding.append((position, placeholder, width))
    fixed: dict[str, Any] = {}
    processors: list[tuple[int, _Processor]] = []
    for position, name in enumerate(names):
        bind = binds[name]
        if position in lists:
            if not bind.type._is_tuple_type and bind.type._cached_bind_processor(dialect):
                return None  # an IN list of a type with a processor: not reproduced here
            continue
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None and isinstance(bind.type, UtcDateTime):
            process = _once_per_value(process, _datetime_memo(dialect))
        if name not in given:
            if bind.required or bind.callable is not None:
                return None
            fixed[name] = process(bind.value) if process else bind.value
        elif process is not None:
            processors.append((position, process))
    if fixed:  # a fixed bind's value is processed once here: not again per row
        unfixed = {p for p, n in enumerate(names) if n in fixed}
        processors = [(p, f) for p, f in processors if p not in unfixed]
    results = tuple(
        (column, process)
        for column, entry in enumerate(compiled._result_columns or ())
        if (process := entry.type._cached_result_processor(dialect, None)) is not None
    )
    values = "VALUES (" + ", ".join("?" * len(names)) + ")"
    once = values if compiled.string.count(values) == 1 else ""
    return Compiled(
        compiled.string, names, once, fixed, tuple(processors), tuple(expanding), results
    )


def _tuple_width(type_: Any, dialect: Dialect) -> int | None:
    """An ``IN`` list's items' width: 0 for plain values, a tuple's (rendered ``VALUES``, its
    types processing nothing), else ``None``: not reproduced here."""
    if not type_._is_tuple_type:
        return 0
    if not dialect.tuple_in_values or any(t._cached_bind_processor(dialect) for t in type_.types):
        return None
    return len(type_.types)


_Memo = dict[int, tuple[Any, Any]]  # id(value) -> (value, processed)
_DATETIME_MEMOS: dict[int, tuple[Dialect, _Memo]] = {}


def _datetime_memo(dialect: Dialect) -> _Memo:
    """The memo that every ``UtcDateTime`` bind of ``dialect``'s statements shares (one type,
    one dialect: one processing)."""
    found = _DATETIME_MEMOS.get(id(dialect))
    if found is None or found[0] is not dialect:
        if len(_DATETIME_MEMOS) >= _CACHE_LIMIT:
            _DATETIME_MEMOS.clear()
        found = _DATETIME_MEMOS[id(dialect)] = (dialect, {})
    return found[1]


def _once_per_value(process: _Processor, memo: _Memo) -> _Processor:
    """``process`` (of an immutable value: a datetime) run once per value object: a batch writes
    its one ``now`` into several columns of several statements. The memo holds each value, so its
    id is not reused while remembered."""

    def run(value: Any) -> Any:
        hit = memo.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        processed = process(value)
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[id(value)] = (value, processed)
        return processed

    return run


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
        if rows and not self.queue(conn, rows):
            self._through_sqlalchemy(conn, rows)

    def queue(self, conn: Connection, rows: Sequence[Row] = (_NO_ROW,)) -> bool:
        """Queue the statement for ``rows`` (at least one) on a one-hop connection; False where
        it cannot (nothing is done: the caller executes it)."""
        dbapi_connection = conn.connection.dbapi_connection
        if not sqlite_driver.is_one_hop(dbapi_connection):
            return False
        many = len(rows) > 1
        form = self._form(conn.dialect, tuple(rows[0]), many)
        parameters = None if form is None else form.rows_parameters(rows, flat=False)
        if form is None or parameters is None:
            return False
        sql = form.sql if many else form.text(rows[0])
        return sqlite_driver.queue(dbapi_connection, sql, parameters, many=many, keep=self.keep)

    def fetch(self, conn: Connection, rows: Sequence[Row]) -> Sequence[Any]:
        """The rows this INSERT … RETURNING (or this read, for one row of parameters) returns
        for ``rows`` (at least one), in one hop: straight on a one-hop driver, their columns
        processed as SQLAlchemy's result does, else through ``Connection.execute``. An error is
        handled by SQLAlchemy's own handler, as in its execute (wrapped as its exception; the
        connection invalidated on a disconnect or an exit such as a cancellation)."""
        dbapi_connection = conn.connection.dbapi_connection
        dialect, handle = conn.dialect, _HANDLE_ERROR
        form = None
        if handle is not None and sqlite_driver.is_one_hop(dbapi_connection):
            form = self._form(dialect, tuple(rows[0]), False)
        if (
            form is None
            or handle is None
            or dbapi_connection is None
            or not _one_statement(form, dialect, len(rows))
        ):
            return self._through_sqlalchemy(conn, rows).all()
        parameters = form.rows_parameters(rows, flat=True)
        if parameters is None:
            return self._through_sqlalchemy(conn, rows).all()
        sql = form.text(rows[0]) if len(rows) == 1 else form.sql_for(len(rows))
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(sql, parameters)
            return form.processed(cursor.fetchall())
        except BaseException as error:
            if isinstance(error, Exception) and not isinstance(error, dialect.loaded_dbapi.Error):
                raise  # not the driver's: SQLAlchemy's execute lets these through too
            handle(conn, error, sql, parameters, cursor, None)
            raise  # not reached: the handler raises
        finally:
            cursor.close()

    def _through_sqlalchemy(self, conn: Connection, rows: Sequence[Row]) -> CursorResult[Any]:
        return conn.execute(self.statement, list(rows) if len(rows) > 1 else rows[0])

    def kept_rows(self, conn: Connection, row: Row = _NO_ROW) -> list[Any] | None:
        """The driver rows this ``keep`` read left on a one-hop connection, once (``None``:
        none kept, execute it)."""
        dbapi_connection = conn.connection.dbapi_connection
        if not sqlite_driver.is_one_hop(dbapi_connection):
            return None
        form = self._form(conn.dialect, tuple(row), False)
        parameters = None if form is None else form.rows_parameters([row], flat=False)
        if form is None or parameters is None:
            return None
        kept = sqlite_driver.take_kept(dbapi_connection, form.text(row), parameters)
        return None if kept is None else list(form.processed(kept))


def _one_statement(form: Compiled, dialect: Dialect, rows: int) -> bool:
    """Whether SQLAlchemy sends ``rows`` rows of this INSERT … RETURNING as one statement."""
    if rows == 1:
        return True
    return bool(
        form.values
        and not form.fixed
        and not form.expanding
        and getattr(dialect, "use_insertmanyvalues", False)
        and rows <= dialect.insertmanyvalues_page_size
        and rows * len(form.names) <= dialect.insertmanyvalues_max_parameters
    )
