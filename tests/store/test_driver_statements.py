"""Statements queued straight on the one-hop driver (``store.driver_statements``) against
SQLAlchemy's own execution, the reference they must agree with: the same SQL text, parameters
and executemany for every row shape the intake sends, and the same rows written by a whole
intake."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event, exc, text
from sqlalchemy.dialects import sqlite

from gateway.core.errors import ConflictError, ServiceError
from gateway.edxml.model import PackageKind, StatusCode
from gateway.store import NewDocument, intake_batch, intake_dedup, sqlite_driver, tables
from gateway.store import attempts as attempts_module
from gateway.store import chain as chain_module
from gateway.store.attempts import AttemptReport, AttemptResult
from gateway.store.delivery_log import DeliveryLog
from gateway.store.driver_statements import DriverStatement, compile_for
from gateway.store.engine import Engines, create_engines, run_transaction
from gateway.store.intake_answers import (
    _ANSWERS,
    _MARK_QUEUED,
    _ORIGINALS,
    _PREFETCH_PUBLISHED,
    _SET_STATUS,
)
from gateway.store.migrations import migrate
from gateway.store.records import DeliveryState, NationalDoc, StatusAnswer
from gateway.store.tables import UtcDateTime

NOW = datetime(2026, 5, 2, 8, 30, 15, 123456, tzinfo=UTC)
HANOI = timezone(timedelta(hours=7))


@pytest.fixture
async def engines(tmp_path: Path) -> AsyncIterator[Engines]:
    made = create_engines(f"sqlite+aiosqlite:///{tmp_path}/store.db")
    try:
        await migrate(made.writer)
        yield made
    finally:
        await made.writer.dispose()


def _packages(n: int) -> list[dict[str, Any]]:
    return [
        {
            "sha256": f"{i:064x}",
            "size_bytes": 3 + i,
            "data": b"\x00<x/>" + bytes([i]),
            "created_at": NOW if i % 2 else NOW.astimezone(HANOI),
        }
        for i in range(n)
    ]


def _deliveries(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"d{i}",
            "document": "doc",
            "recipient": f"000.00.0{i}.H01",
            "method": "push",
            "state": "accepted",
            "attempts": 0,
            "created_at": NOW,
            "updated_at": NOW,
            "received_at": NOW - timedelta(seconds=i),
            "sender": "000.00.00.H56",
        }
        for i in range(n)
    ]


def _events(n: int) -> list[dict[str, Any]]:
    return [
        {
            "document": "doc",
            "delivery": None if i == 0 else f"d{i}",
            "at": NOW,
            "kind": "received",
            "outcome": "accepted",
            "detail": '{"size_bytes": 3, "note": "Công văn"}',
            "actor": "client:000.00.00.H56",
            "id": 10 + i,
            "chain_hash": f"{i:064x}",
        }
        for i in range(n)
    ]


def _national(n: int) -> list[dict[str, Any]]:
    return [
        {
            "doc_id": f"nat-{i}",
            "message_type": "edoc",
            "outcome": "done",
            "document": "doc",
            "detail": "recorded",
            "processed_at": NOW,
        }
        for i in range(n)
    ]


def _statuses(n: int) -> list[dict[str, Any]]:
    return [
        {"b_id": f"d{i}", "b_status": "03", "b_at": NOW.astimezone(HANOI), "b_now": NOW}
        for i in range(n)
    ]


def _documents(keys: list[str], package: str = "0" * 64) -> list[dict[str, Any]]:
    return [
        {
            "id": f"doc-{key}",
            "package_sha256": package,
            "dedup_key": key,
            "kind": "document",
            "sender": "000.00.00.H56",
            "document_id": None if i else "000.00.00.H56,2024/05/02,1/UBND",
            "business_doc_type": None,
            "status_code": None,
            "subject": "Công văn" if i else None,
            "subject_folded": "cong van" if i else None,
            "format": "xml",
            "signer_fingerprint": "ab" * 32,
            "signer_subject": "CN=bench",
            "algorithm": "rsa-sha256",
            "caller": "client:000.00.00.H56",
            "received_at": NOW.astimezone(HANOI) if i % 2 else NOW,
            "in_reply_to": None,
        }
        for i, key in enumerate(keys)
    ]


_MANY = [
    ("packages", intake_batch._INSERT_PACKAGES["sqlite"], _packages),
    ("deliveries", intake_batch._INSERT_DELIVERIES, _deliveries),
    ("national", intake_batch._INSERT_NATIONAL["sqlite"], _national),
    ("events", chain_module._INSERT_EVENTS, _events),
]
CASES: list[tuple[str, DriverStatement, list[dict[str, Any]]]] = [
    *((f"{name} x{n}", statement, make(n)) for name, statement, make in _MANY for n in (1, 3)),
    ("head move", chain_module._MOVE_HEAD, [{"new_last_id": 7, "new_hash": "ab" * 32}]),
    ("head read", chain_module._HEAD_PREFETCHED, [{}]),
    ("marks x1", _MARK_QUEUED, [{"m_ids": ["d1"], "m_now": NOW}]),
    ("marks x3", _MARK_QUEUED, [{"m_ids": ["d1", "d3", "d2"], "m_now": NOW.astimezone(HANOI)}]),
    ("marked read", _PREFETCH_PUBLISHED, [{"lock_ids": ["d1", "d2"]}]),
    *(
        (f"business status x{n}", _SET_STATUS, _statuses(n))
        for n in (1, 3)  # one UPDATE, an executemany
    ),
    (
        "originals read",
        DriverStatement(_ORIGINALS),
        [{"ids": ["d1", "d2"], "refs": [("s", "d1"), ("t", "d2")]}],
    ),
    ("keys present read", intake_dedup._PRESENT, [{"keys": ["k2", "k1"]}]),
    *(
        (f"new documents x{n}", intake_dedup._INSERT_NEW_DOCUMENTS, _documents(keys))
        for n, keys in ((1, ["k1"]), (3, ["k1", "k2", "k3"]))
    ),
]


class _RollbackError(Exception):
    """Ends a test transaction without writing (what it queued is dropped, never sent)."""


async def _in_rolled_back(engines: Engines, work: Callable[[Connection], None]) -> None:
    def run(conn: Connection) -> None:
        work(conn)
        raise _RollbackError

    with pytest.raises(_RollbackError):
        await run_transaction(engines.writer, run)


@pytest.mark.parametrize(("statement", "values"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_the_driver_gets_what_sqlalchemy_would_have_sent(
    engines: Engines, statement: DriverStatement, values: list[dict[str, Any]]
) -> None:
    rows = len(values)
    sent: list[tuple[str, Any, bool]] = []
    queued: list[tuple[str, Any, bool, bool]] = []

    def listen(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
        sent.append((sql, params, many))

    def through_sqlalchemy(conn: Connection) -> None:
        event.listen(conn, "before_cursor_execute", listen)
        conn.execute(statement.statement, values if rows > 1 else values[0])
        event.remove(conn, "before_cursor_execute", listen)

    def through_the_driver(conn: Connection) -> None:
        pending = conn.connection.dbapi_connection.pending  # type: ignore[union-attr]
        before = len(pending)
        event.listen(conn, "before_cursor_execute", listen)
        statement.execute(conn, values)
        event.remove(conn, "before_cursor_execute", listen)
        queued.extend(pending[before:])

    await _in_rolled_back(engines, through_sqlalchemy)
    await _in_rolled_back(engines, through_the_driver)
    assert len(sent) == 1, "SQLAlchemy sends it once; the driver path must not go through it"
    assert len(queued) == 1
    sql, params, many = sent[0]
    assert queued[0] == (sql, params, many, statement.keep)
    assert [type(v) for v in _flat(queued[0][1])] == [type(v) for v in _flat(params)]


def _flat(params: Any) -> list[Any]:
    return list(itertools.chain.from_iterable(params)) if isinstance(params, list) else [*params]


async def test_a_kept_read_answers_once_with_the_rows_sqlalchemy_reads(engines: Engines) -> None:
    seen: list[Any] = []

    def work(conn: Connection) -> None:
        chain_module._HEAD_PREFETCHED.execute(conn)
        conn.execute(text("SELECT 1"))  # the hop the prefetched read goes with
        seen.append(chain_module._HEAD_PREFETCHED.kept_rows(conn))
        seen.append(chain_module._HEAD_PREFETCHED.kept_rows(conn))  # taken: none left
        seen.append([tuple(r) for r in conn.execute(chain_module._HEAD_LOCKED).all()])

    await run_transaction(engines.writer, work)
    kept, again, read = seen
    assert kept == read
    assert [row[:2] for row in read] == [(0, chain_module.GENESIS)]
    assert again is None


def test_forms_it_cannot_reproduce_are_left_to_sqlalchemy() -> None:
    engines = create_engines("sqlite+aiosqlite:///:memory:")
    dialect = engines.writer.dialect
    marks = _MARK_QUEUED.statement
    assert compile_for(marks, dialect, ["m_ids", "m_now"], True) is None  # IN, executemany
    assert compile_for(_ORIGINALS, dialect, ["ids", "refs"], True) is None  # IN, executemany
    plain = sqlite.dialect()
    plain.tuple_in_values = False  # an IN of tuples written ((?, ?), …): not reproduced
    assert compile_for(_ORIGINALS, plain, ["ids", "refs"], False) is None
    form = compile_for(_ORIGINALS, dialect, ["ids", "refs"], False)
    assert form is not None
    with pytest.raises(ValueError, match="width"):  # SQLAlchemy renders (?, ?, ?) for it
        form.parameters({"ids": ["d"], "refs": [("s", "d"), ("s", "d", "x")]})
    move = chain_module._MOVE_HEAD.statement
    form = compile_for(move, dialect, ["new_hash", "new_last_id"], False)
    assert form is not None
    assert form.parameters({"new_last_id": 3, "new_hash": "h"}) == (3, "h", 1)


async def test_an_empty_in_list_goes_through_sqlalchemy(engines: Engines) -> None:
    """SQLAlchemy writes an empty ``IN`` otherwise than ``IN (?, …)``: it sends that one."""
    sent: list[str] = []

    def work(conn: Connection) -> None:
        event.listen(conn, "before_cursor_execute", lambda *a: sent.append(a[2]))
        _MARK_QUEUED.execute(conn, [{"m_ids": [], "m_now": NOW}])
        assert _PREFETCH_PUBLISHED.queue(conn, [{"lock_ids": []}]) is False

    await run_transaction(engines.writer, work)
    assert len(sent) == 1
    assert sent[0].startswith("UPDATE deliveries")
    assert "?)" not in sent[0].split(" IN ")[1]  # not a list of parameters


async def _table_rows(engines: Engines) -> dict[str, list[tuple[Any, ...]]]:
    dumped: dict[str, list[tuple[Any, ...]]] = {}
    async with engines.reader.connect() as conn:
        for table in ("packages", "documents", "deliveries", "events", "national_inbox"):
            result = await conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY 1")
            dumped[table] = [tuple(r) for r in result.all()]
        head = await conn.exec_driver_sql("SELECT last_id, hash FROM chain_head")
        dumped["chain_head"] = [tuple(r) for r in head.all()]
    return dumped


async def _intakes(url: str, make_document: Callable[..., NewDocument]) -> DeliveryLog:
    log = await DeliveryLog.open(url, batch_wait_s=0.05)
    ids = itertools.count()
    log.writer._new_id = lambda: f"id-{next(ids):04d}"
    first = await log.record_intake(
        make_document(dedup_key="k0"), b"<one/>", [("000.00.01.H01", "push")]
    )
    log.writer.marks_delay_s = 3600.0  # the marks ride on the next batch
    log.note_published([d.id for d in first.deliveries])
    await asyncio.gather(
        log.record_intake(
            make_document(dedup_key="k1", received_at=NOW.astimezone(HANOI)),
            b"<two/>",
            [("000.00.02.H01", "push"), ("000.00.01.H01", "mailbox")],
            national=NationalDoc("nat-1", "edoc"),
        ),
        log.record_intake(make_document(dedup_key="k2"), b"<three/>", [("000.00.03.H01", "push")]),
        log.record_intake(make_document(dedup_key="k1"), b"<two/>", [("000.00.02.H01", "push")]),
    )
    statuses = await asyncio.gather(  # k0 is the original (all received at NOW: the first id)
        *(
            log.record_intake(
                make_document(
                    dedup_key=f"s{i}",
                    kind=PackageKind.STATUS,
                    sender=sender,
                    status_code=code,
                    received_at=NOW + timedelta(seconds=i),
                ),
                f"<s{i}/>".encode(),
                [(first.document.sender, "push")],
                answers=StatusAnswer(
                    organ_id=first.document.sender,
                    document_id=str(first.document.document_id),
                    code=code,
                ),
            )
            for i, sender, code in (
                (2, "000.00.01.H01", StatusCode.ASSIGNMENT),  # the latest: it wins
                (1, "000.00.01.H01", StatusCode.ACCEPTANCE),
                (3, "000.00.03.H01", StatusCode.ACCEPTANCE),  # not a recipient of k0
            )
        ),
        return_exceptions=True,
    )
    assert [getattr(s, "code", None) for s in statuses] == [None, None, "acl.not_a_recipient"]
    return log


async def test_an_intake_writes_the_same_rows_as_through_sqlalchemy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_document: Callable[..., NewDocument]
) -> None:
    """The same batches on the one-hop driver and on SQLAlchemy's own aiosqlite adapter (where
    every statement goes through ``Connection.execute``): the same rows, chain hashes included;
    the second batch carries the first's published marks, the third is of status packages."""
    monkeypatch.setattr(intake_batch, "utc_now", lambda: NOW)

    def make(**fields: Any) -> NewDocument:
        return make_document(**{"received_at": NOW, "subject": "Công văn", **fields})

    fast = await _intakes(f"sqlite+aiosqlite:///{tmp_path}/fast.db", make)
    try:
        assert fast.writer.batches == 3
        assert isinstance(fast._engines.writer.dialect, sqlite_driver.OneHopDialect)
        fast_rows = await _table_rows(fast._engines)
    finally:
        await fast.aclose()
    with monkeypatch.context() as patched:
        patched.setattr(sqlite_driver, "dbapi", lambda: None)  # SQLAlchemy's adapter
        reference = await _intakes(f"sqlite+aiosqlite:///{tmp_path}/reference.db", make)
    try:
        assert reference.writer.batches == 3
        assert not isinstance(reference._engines.writer.dialect, sqlite_driver.OneHopDialect)
        reference_rows = await _table_rows(reference._engines)
    finally:
        await reference.aclose()
    assert fast_rows == reference_rows
    assert len(fast_rows["events"]) == 8  # 5 received, 1 published, 2 business statuses
    assert [r[4] for r in fast_rows["deliveries"]].count("queued") == 1  # the state
    assert len(fast_rows["deliveries"]) == 6
    assert [r[8:10] for r in fast_rows["deliveries"] if r[8]] == [
        (StatusCode.ASSIGNMENT.value, "2026-05-02 08:30:17.123456")
    ]


def _cursor_statements(monkeypatch: pytest.MonkeyPatch, prefix: str) -> list[tuple[str, Any]]:
    """(SQL, parameters) of every statement starting with ``prefix`` that a one-hop cursor
    executes from now on in this test (SQLAlchemy's execute and ``fetch`` both go through it)."""
    sent: list[tuple[str, Any]] = []
    real = sqlite_driver.OneHopCursor.execute

    def recorded(cursor: sqlite_driver.OneHopCursor, sql: str, params: Any = None) -> Any:
        if sql.startswith(prefix):
            sent.append((sql, params))
        return real(cursor, sql, params)

    monkeypatch.setattr(sqlite_driver.OneHopCursor, "execute", recorded)
    return sent


_PACKAGE = {"sha256": "0" * 64, "size_bytes": 1, "data": b"x", "created_at": NOW}


@pytest.mark.parametrize("keys", [["k1"], ["k3", "k1", "k2"]], ids=["one", "three"])
async def test_a_returning_insert_sends_and_returns_what_sqlalchemy_does(
    engines: Engines, monkeypatch: pytest.MonkeyPatch, keys: list[str]
) -> None:
    """One document already there (k1): SQLAlchemy's statement (its "insertmanyvalues" form
    for several rows) and the driver's are the same text and parameters, and return the same
    keys."""
    documents = intake_dedup._INSERT_DOCUMENTS["sqlite"]
    sent = _cursor_statements(monkeypatch, "INSERT INTO documents")
    returned: list[set[str]] = []

    def setup(conn: Connection) -> None:
        conn.execute(tables.packages.insert(), _PACKAGE)
        conn.execute(documents.statement, _documents(["k1"])[0])

    def through_sqlalchemy(conn: Connection) -> None:
        rows = _documents(keys)
        returned.append(set(conn.execute(documents.statement, rows).scalars()))

    def through_the_driver(conn: Connection) -> None:
        returned.append({row[0] for row in documents.fetch(conn, _documents(keys))})

    await run_transaction(engines.writer, setup)
    sent.clear()
    await _in_rolled_back(engines, through_sqlalchemy)
    await _in_rolled_back(engines, through_the_driver)
    assert len(sent) == 2
    assert sent[0] == sent[1]
    assert sent[1][0].count("(?, ") == len(keys)
    assert returned[0] == returned[1] == set(keys) - {"k1"}


async def test_a_read_sends_and_returns_what_sqlalchemy_does(
    engines: Engines, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The status packages' read (``_ANSWERS``): an IN of tuples (``VALUES``) and an IN list
    in a LEFT JOIN, a ``UtcDateTime`` column: the same text and parameters as SQLAlchemy's, the
    same rows (their datetimes made aware UTC, as its result makes them)."""
    sent = _cursor_statements(monkeypatch, "SELECT documents.id")
    docs = _documents(["k1", "k2", "k3"])
    for i, doc in enumerate(docs):
        doc["document_id"] = f"D{i % 2}"  # k1 and k3: one DocumentId, two documents
    rows = _deliveries(3)
    for i, row in enumerate(rows):
        row["document"] = f"doc-k{i + 1}"
    rows[0] = {**rows[0], "business_status": "03", "business_status_at": NOW.astimezone(HANOI)}
    values = {
        "a_ids": ["D0", "D1", "D9"],
        "a_refs": [("000.00.00.H56", "D0"), ("000.00.00.H56", "D1"), ("x", "D9")],
        "a_senders": ["000.00.00.H01", "000.00.02.H01"],
    }
    read: list[list[tuple[Any, ...]]] = []

    def setup(conn: Connection) -> None:
        conn.execute(tables.packages.insert(), _PACKAGE)
        conn.execute(tables.documents.insert(), docs)
        conn.execute(tables.deliveries.insert(), [rows[0]])
        conn.execute(tables.deliveries.insert(), rows[1:])

    def both(conn: Connection) -> None:
        read.append([tuple(r) for r in conn.execute(_ANSWERS.statement, values)])
        read.append(list(_ANSWERS.fetch(conn, [values])))

    await run_transaction(engines.writer, setup)
    await _in_rolled_back(engines, both)
    assert len(sent) == 2
    assert sent[0] == sent[1]
    assert "IN (VALUES (?, ?), (?, ?), (?, ?))" in sent[1][0]
    assert read[0] == read[1]
    assert len(read[1]) == 3  # k1, k3 with their deliveries, k2 with none (not to a sender)
    assert [r[-1] for r in read[1]].count(NOW) == 1


async def test_a_failed_returning_insert_fails_as_through_sqlalchemy(engines: Engines) -> None:
    """A document whose package is not there: SQLAlchemy's IntegrityError either way, the
    store's ``conflict.constraint``, and nothing of the transaction is written."""
    documents = intake_dedup._INSERT_DOCUMENTS["sqlite"]
    raised: list[BaseException] = []

    def attempt(conn: Connection, fetch: bool) -> None:
        intake_batch._INSERT_PACKAGES["sqlite"].execute(conn, [{**_PACKAGE, "sha256": "f" * 64}])
        rows = _documents(["k9"], package="e" * 64)
        try:
            if fetch:
                documents.fetch(conn, rows)
            else:
                conn.execute(documents.statement, rows[0]).all()
        except BaseException as error:
            raised.append(error)
            raise

    for fetch in (False, True):
        with pytest.raises(ConflictError) as refused:
            await run_transaction(engines.writer, lambda conn, f=fetch: attempt(conn, f))
        assert refused.value.code == "conflict.constraint"
    assert [type(e) for e in raised] == [exc.IntegrityError, exc.IntegrityError]
    assert str(raised[0].orig) == str(raised[1].orig)  # type: ignore[attr-defined]
    async with engines.reader.connect() as conn:
        assert (await conn.exec_driver_sql("SELECT count(*) FROM packages")).scalar() == 0


async def test_more_rows_than_sqlalchemy_sends_in_one_statement_go_through_it(
    engines: Engines,
) -> None:
    engines.writer.dialect.insertmanyvalues_page_size = 2
    documents = intake_dedup._INSERT_DOCUMENTS["sqlite"]
    statements: list[str] = []
    returned: list[set[str]] = []

    def work(conn: Connection) -> None:
        event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
        conn.execute(tables.packages.insert(), _PACKAGE)
        returned.append({row[0] for row in documents.fetch(conn, _documents(["a", "b", "c"]))})

    await run_transaction(engines.writer, work)
    assert returned == [{"a", "b", "c"}]
    assert [s.split(" (")[0] for s in statements] == ["INSERT INTO packages"] + [
        "INSERT INTO documents"
    ] * 2


@pytest.mark.parametrize("fetch", [False, True], ids=["queued", "returning"])
async def test_a_value_sqlalchemy_refuses_is_refused_with_its_error(
    engines: Engines, fetch: bool
) -> None:
    """A naive datetime (the delivery log's own rule): the same error as through SQLAlchemy."""
    naive = NOW.replace(tzinfo=None)
    raised: list[BaseException] = []

    def attempt(conn: Connection, driver: bool) -> None:
        statement = (
            intake_dedup._INSERT_DOCUMENTS["sqlite"] if fetch else chain_module._INSERT_EVENTS
        )
        rows = _documents(["k"]) if fetch else _events(2)
        rows[-1] = {**rows[-1], ("received_at" if fetch else "at"): naive}
        try:
            if not driver:
                conn.execute(statement.statement, rows if len(rows) > 1 else rows[0])
            elif fetch:
                statement.fetch(conn, rows)
            else:
                statement.execute(conn, rows)
        except BaseException as error:
            raised.append(error)
            raise

    for driver in (False, True):
        with pytest.raises(ServiceError):
            await run_transaction(engines.writer, lambda conn, d=driver: attempt(conn, d))
    assert [type(e) for e in raised] == [exc.StatementError] * 2
    assert str(raised[0]) == str(raised[1])
    assert "naive datetime" in str(raised[1])


async def test_a_batchs_datetimes_are_processed_once_each(
    engines: Engines, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's one ``now`` in packages, deliveries and events is formatted once (the other
    times, an equal instant in another object included, each once), and every column gets the
    text SQLAlchemy makes."""
    calls: list[datetime] = []
    real = UtcDateTime.process_bind_param

    def counted(self: UtcDateTime, value: datetime | None, dialect: Any) -> datetime | None:
        calls.append(value)  # type: ignore[arg-type]
        return real(self, value, dialect)

    monkeypatch.setattr(UtcDateTime, "process_bind_param", counted)
    queued: list[Any] = []

    def work(conn: Connection) -> None:
        intake_batch._INSERT_PACKAGES["sqlite"].execute(conn, _packages(4))  # NOW, Hanoi's NOW
        intake_batch._INSERT_DELIVERIES.execute(conn, _deliveries(3))  # NOW; NOW - 0, 1, 2 s
        chain_module._INSERT_EVENTS.execute(conn, _events(3))  # NOW
        queued.extend(conn.connection.dbapi_connection.pending)  # type: ignore[union-attr]
        raise _RollbackError

    with pytest.raises(_RollbackError):
        await run_transaction(engines.writer, work)
    # of 16 datetime binds: NOW, two Hanoi objects of it, the received_at NOW - 0, 1 and 2 s
    assert len(calls) == 6
    texts = {v for _, rows, _, _ in queued[1:] for row in rows for v in row if isinstance(v, str)}
    assert "2026-05-02 08:30:15.123456" in texts
    assert "2026-05-02 08:30:13.123456" in texts


async def _attempts(log: DeliveryLog) -> list[list[AttemptResult]]:
    """Two batches of attempts on ``_intakes``' deliveries: successes (one reported twice),
    a failure, then a success again for one delivered already and one not in the log."""
    rows = await _table_rows(log._engines)
    ids = sorted(r[0] for r in rows["deliveries"])  # the documents' first, then the statuses'
    first, second, third, fourth = ids[:4]
    delivered = DeliveryState.DELIVERED
    return [
        await log.record_attempts(
            [
                AttemptReport(first, delivered, "200"),
                AttemptReport(second, DeliveryState.RETRYING, "503", "busy", "push.busy", 5, 0),
                AttemptReport(third, delivered, "200"),
                AttemptReport(first, delivered, "200 again"),
            ]
        ),
        await log.record_attempts(
            [
                AttemptReport(third, delivered, "a copy"),
                AttemptReport(fourth, delivered, "200"),
                AttemptReport("no-such-delivery", delivered, "200"),
            ]
        ),
    ]


async def test_recorded_attempts_write_the_same_rows_as_through_sqlalchemy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_document: Callable[..., NewDocument]
) -> None:
    """The worker's batch commit (its UPDATE … RETURNING of the successes straight on the
    one-hop driver) against SQLAlchemy's own aiosqlite adapter: the same results and rows."""
    monkeypatch.setattr(intake_batch, "utc_now", lambda: NOW)
    monkeypatch.setattr(attempts_module, "utc_now", lambda: NOW + timedelta(seconds=1))

    def make(**fields: Any) -> NewDocument:
        return make_document(**{"received_at": NOW, "subject": "Công văn", **fields})

    fast = await _intakes(f"sqlite+aiosqlite:///{tmp_path}/fast.db", make)
    try:
        fast_results = await _attempts(fast)
        fast_rows = await _table_rows(fast._engines)
    finally:
        await fast.aclose()
    with monkeypatch.context() as patched:
        patched.setattr(sqlite_driver, "dbapi", lambda: None)  # SQLAlchemy's adapter
        reference = await _intakes(f"sqlite+aiosqlite:///{tmp_path}/reference.db", make)
        assert not isinstance(reference._engines.writer.dialect, sqlite_driver.OneHopDialect)
    try:
        reference_results = await _attempts(reference)
        reference_rows = await _table_rows(reference._engines)
    finally:
        await reference.aclose()
    applied, already = AttemptResult.APPLIED, AttemptResult.ALREADY_DELIVERED
    assert fast_results == reference_results
    assert fast_results == [
        [applied, applied, applied, already],
        [already, applied, AttemptResult.UNKNOWN],
    ]
    assert fast_rows == reference_rows
    assert [r[4] for r in fast_rows["deliveries"]].count("delivered") == 3
