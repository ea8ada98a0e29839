"""Query plans of the statements a path sends: captured as sent, EXPLAINed on the same store.

``test_hot_path_plans`` and ``test_timer_plans`` import from here. A statement is captured with
the parameters it was first sent with (SQLite: on aiosqlite's thread, where the one-hop driver
runs it; PostgreSQL: SQLAlchemy's ``before_cursor_execute``), then EXPLAINed: SQLite's
``EXPLAIN QUERY PLAN`` must not say ``SCAN <table>``, PostgreSQL's ``EXPLAIN`` (sequential scans
disabled: at a test's size a scan is legitimately the cheapest plan) must not say ``Seq Scan``.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import event, text

from gateway.store import DeliveryLog, sqlite_driver

# A plan line that reads a whole table (SQLite: its name, or its alias) or a sequential scan
# (PostgreSQL). SQLite's "SCAN 3 CONSTANT ROWS" (an IN list's VALUES), the scan of a subquery's
# rows as they come ("CO-ROUTINE anon_1" ... "SCAN anon_1") and of a one-row table are not tables.
_SQLITE_SCAN = re.compile(r"\bSCAN (?!\d+ CONSTANT ROW|CONSTANT ROW|chain_head\b)(\w+)")
_SQLITE_SUBQUERY = re.compile(r"^(?:CO-ROUTINE|MATERIALIZE) (\w+)")
_PG_SCAN = re.compile(r"Seq Scan on (\w+)")
_PG_INDEX_SCAN = re.compile(r"Index (?:Only )?Scan(?: Backward)? using \w+ on (\w+)")
_NOT_PLANNED = ("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "SAVEPOINT", "RELEASE", "SET", "SHOW")

Sent = list[tuple[str, Any]]
Scans = dict[str, list[str]]  # statement -> the tables its plan scans
Plans = dict[str, list[str]]  # statement -> its plan's lines


def _capture_sqlite(monkeypatch: pytest.MonkeyPatch, sent: Sent) -> None:
    """Record each statement the one-hop driver runs on aiosqlite's thread (with a row of an
    executemany's parameters): ``_send`` runs the queued ones, ``_execute`` the rest, aiosqlite's
    ``execute_fetchall`` a read outside a transaction."""
    real_send, real_execute = sqlite_driver._send, sqlite_driver._execute

    def send(conn: sqlite3.Connection, pending: Any) -> Any:
        sent.extend((op, params[0] if many else params) for op, params, many, _ in pending)
        return real_send(conn, pending)

    def execute(conn: sqlite3.Connection, op: str, params: Any, many: bool = False, *a: Any) -> Any:
        sent.append((op, params[0] if many and params else params))
        return real_execute(conn, op, params, many, *a)

    monkeypatch.setattr(sqlite_driver, "_send", send)
    monkeypatch.setattr(sqlite_driver, "_execute", execute)
    real_fetchall = aiosqlite.Connection.execute_fetchall

    async def fetchall(conn: aiosqlite.Connection, sql: str, params: Any = None) -> Any:
        sent.append((sql, params))  # the worker's check, outside a transaction (engine.py)
        return await real_fetchall(conn, sql, params)

    monkeypatch.setattr(aiosqlite.Connection, "execute_fetchall", fetchall)


@contextlib.contextmanager
def captured(log: DeliveryLog, store_url: str) -> Iterator[Sent]:
    """Every statement sent to the log's store (by the log or by anything on its engines)
    while the block runs."""
    sent: Sent = []
    if store_url.startswith("sqlite"):
        with pytest.MonkeyPatch.context() as monkeypatch:
            _capture_sqlite(monkeypatch, sent)
            yield sent
        return

    def listen(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
        rows = many and params and isinstance(params[0], (tuple, list, dict))
        sent.append((sql, params[0] if rows else params))

    engines = [e.sync_engine for e in {log.engines.writer, log.engines.reader}]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", listen)
    try:
        yield sent
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", listen)


def planned(sent: Sent) -> dict[str, Any]:
    """Each distinct statement worth a plan, with the parameters it was first sent with."""
    statements: dict[str, Any] = {}
    for sql, params in sent:
        if not sql.lstrip().upper().startswith(_NOT_PLANNED):
            statements.setdefault(sql, params)
    return statements


async def statements_of(
    log: DeliveryLog,
    store_url: str,
    paths: Mapping[str, Callable[[DeliveryLog, Any], Awaitable[None]]],
    make_document: Any,
) -> dict[str, dict[str, Any]]:
    """Run each path (name -> ``path(log, make_document)``) and return, by name, the statements
    it sent (``planned``)."""
    found: dict[str, dict[str, Any]] = {}
    for name, path in paths.items():
        with captured(log, store_url) as sent:
            await path(log, make_document)
        found[name] = planned(sent)
    return found


async def plans(log: DeliveryLog, store_url: str, statements: Mapping[str, Any]) -> Plans:
    """Each statement's plan, as lines of text (PostgreSQL: sequential scans disabled)."""
    found: Plans = {}
    if store_url.startswith("sqlite"):
        with sqlite3.connect(store_url.split("///", 1)[1]) as plain:
            for sql, params in statements.items():
                rows = plain.execute(f"EXPLAIN QUERY PLAN {sql}", params or ()).fetchall()
                found[sql] = [row[3] for row in rows]
        return found
    async with log.engines.writer.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))
        for sql, params in statements.items():
            found[sql] = list((await conn.exec_driver_sql(f"EXPLAIN {sql}", params)).scalars())
        await conn.rollback()
    return found


def _pg_whole_index_scans(plan: list[str]) -> list[str]:
    """PostgreSQL's index scans without an index condition: a walk of the whole index, which
    the planner chooses over a sequential scan once those are disabled (as SQLite says "SCAN t
    USING INDEX")."""
    found: list[str] = []
    node: str | None = None  # the table of the index scan being read, until its node ends
    for line in [*plan, "->"]:
        if "->" in line or (m := _PG_INDEX_SCAN.search(line)) is not None:
            if node is not None:
                found.append(node)
            m = _PG_INDEX_SCAN.search(line)
            node = m.group(1) if m is not None else None
        elif node is not None and "Index Cond:" in line:
            node = None
    return found


def _scanned(plan: list[str]) -> list[str]:
    """The tables a plan scans whole (SQLite's or PostgreSQL's)."""
    subqueries = {m.group(1) for line in plan if (m := _SQLITE_SUBQUERY.match(line))}
    sqlite = [m.group(1) for line in plan if (m := _SQLITE_SCAN.search(line))]
    pg = [m.group(1) for line in plan if (m := _PG_SCAN.search(line))]
    return [t for t in sqlite if t not in subqueries] + pg + _pg_whole_index_scans(plan)


async def scans(log: DeliveryLog, store_url: str, statements: Mapping[str, Any]) -> Scans:
    """The statements whose plan scans a table, with the tables it scans."""
    found = await plans(log, store_url, statements)
    return {sql: tables for sql, plan in found.items() if (tables := _scanned(plan))}


def unexplained(found: Scans, allowed: Mapping[str, str]) -> Scans:
    """The scans not allowed: ``allowed`` maps a text the statement contains to the reason its
    scan is by design (a table bounded by design, an operator's report over a period)."""
    return {sql: tables for sql, tables in found.items() if not any(a in sql for a in allowed)}
