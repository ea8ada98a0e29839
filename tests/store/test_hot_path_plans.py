"""The hot path's statements are served by indexes, on both stores (query plans, not timing).

Every statement that intake batches (documents, status packages answering them, published marks)
and a worker's batch (its check, its attempts) send to the store is captured as it is sent, then
EXPLAINed on the same store with its own parameters: none may scan a table that grows with the
store. A scan there costs CPU in proportion to the store's size, on every batch: the status
packages' read scanned ``documents`` on SQLite (its planner seeks no index with a row-value IN
of a VALUES list), 3 ms a batch at 20,000 documents, until a plain IN was added beside it.
PostgreSQL's EXPLAIN runs with sequential scans disabled (at this size a scan is legitimately the
cheapest plan), so a "Seq Scan" there means that no index can serve the statement.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import event, text

from gateway.edxml.model import PackageKind, StatusCode
from gateway.store import DeliveryLog, DeliveryState, NewDocument, sqlite_driver
from gateway.store.attempts import AttemptReport
from gateway.store.records import IntakeResult, StatusAnswer

ROUTES = [("000.00.01.H56", "push"), ("0101234567", "mailbox")]
ANSWERING = "000.00.01.H56"
T0 = datetime(2026, 5, 2, 8, 0, tzinfo=UTC)
# A plan line that reads a whole table (SQLite) or a sequential scan (PostgreSQL). SQLite's
# "SCAN 3 CONSTANT ROWS" (an IN list's VALUES) and a one-row table's scan are not tables.
_SQLITE_SCAN = re.compile(r"\bSCAN (?!\d+ CONSTANT ROW|CONSTANT ROW|chain_head\b)(\w+)")
_PG_SCAN = re.compile(r"Seq Scan on (\w+)")
_NOT_PLANNED = ("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "SAVEPOINT", "RELEASE", "SET", "SHOW")

Sent = list[tuple[str, Any]]


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


def _capture_sqlalchemy(log: DeliveryLog, sent: Sent) -> None:
    """Record each statement SQLAlchemy sends (PostgreSQL: the Core path, every statement)."""
    for engine in {log.engines.writer, log.engines.reader}:

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def listen(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
            rows = many and params and isinstance(params[0], (tuple, list, dict))
            sent.append((sql, params[0] if rows else params))


async def _hot_path(log: DeliveryLog, make_document: Callable[..., NewDocument]) -> None:
    """Intake (documents, then statuses answering them, with published marks), then a worker's
    check and attempts: each through the log's own API, so each batch's real statements."""
    originals = []
    for i in range(3):
        new = make_document(dedup_key=f"doc-{i}", document_id=f"DOC-{i}", received_at=T0)
        originals.append(await log.record_intake(new, f"<d{i}/>".encode(), ROUTES))
    log.note_published([d.id for o in originals for d in o.deliveries])

    def answering(i: int) -> Awaitable[IntakeResult]:
        status = make_document(
            dedup_key=f"status-{i}",
            kind=PackageKind.STATUS,
            sender=ANSWERING,
            document_id=f"S-{i}",
            status_code=StatusCode.ACCEPTANCE,
            subject=None,
            received_at=T0 + timedelta(minutes=i + 1),
        )
        answer = StatusAnswer(
            organ_id="000.00.00.H56", document_id=f"DOC-{i}", code=StatusCode.ACCEPTANCE
        )
        return log.record_intake(
            status, f"<s{i}/>".encode(), [("000.00.00.H56", "push")], answers=answer
        )

    # One status alone, then three at once: one batch (a single reference is an equality to
    # SQLite, several are the IN list that was scanned).
    log.writer.max_wait_s = 0.2
    answered = [await answering(0), *await asyncio.gather(*(answering(i) for i in (1, 2, 0)))]
    assert [r.document.in_reply_to for r in answered] == [o.document.id for o in originals] + [
        originals[0].document.id
    ]
    ids = [d.id for o in originals for d in o.deliveries]
    found, _ = await log.check_batch(ids, {})
    assert set(found) == set(ids)
    await log.record_attempts(
        [AttemptReport(ids[0], DeliveryState.DELIVERED, "HTTP 200")]
        + [
            AttemptReport(i, DeliveryState.RETRYING, "HTTP 503", "delivery.http_status: 503")
            for i in ids[1:3]
        ]
    )
    delivered = await log.find_delivery(originals[0].document.id, ANSWERING)
    assert delivered is not None
    assert delivered.business_status is StatusCode.ACCEPTANCE


def _planned(sent: Sent) -> dict[str, Any]:
    """Each distinct statement worth a plan, with the parameters it was first sent with."""
    statements: dict[str, Any] = {}
    for sql, params in sent:
        if not sql.lstrip().upper().startswith(_NOT_PLANNED):
            statements.setdefault(sql, params)
    return statements


async def test_no_hot_path_statement_scans_a_growing_table(
    store_url: str,
    monkeypatch: pytest.MonkeyPatch,
    make_document: Callable[..., NewDocument],
) -> None:
    log = await DeliveryLog.open(store_url)
    sent: Sent = []
    sqlite = store_url.startswith("sqlite")
    try:
        if sqlite:
            _capture_sqlite(monkeypatch, sent)
        else:
            _capture_sqlalchemy(log, sent)
        await _hot_path(log, make_document)
        monkeypatch.undo()
        statements = _planned(sent)
        assert any("AS id_1" in sql or "FROM documents" in sql for sql in statements)  # originals
        assert any(sql.startswith("UPDATE deliveries") for sql in statements)  # marks, attempts
        assert any("deliveries.attempts" in sql and "SELECT" in sql for sql in statements)  # check
        scans: dict[str, list[str]] = {}
        if sqlite:
            path = store_url.split("///", 1)[1]
            with sqlite3.connect(path) as plain:
                for sql, params in statements.items():
                    plan = plain.execute(f"EXPLAIN QUERY PLAN {sql}", params or ()).fetchall()
                    found = [m.group(1) for row in plan if (m := _SQLITE_SCAN.search(row[3]))]
                    if found:
                        scans[sql] = found
        else:
            async with log.engines.writer.connect() as conn:
                await conn.execute(text("SET enable_seqscan = off"))
                for sql, params in statements.items():
                    lines = (await conn.exec_driver_sql(f"EXPLAIN {sql}", params)).scalars()
                    found = [m.group(1) for line in lines if (m := _PG_SCAN.search(line))]
                    if found:
                        scans[sql] = found
                await conn.rollback()
        assert scans == {}
    finally:
        await log.aclose()
