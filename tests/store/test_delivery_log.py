"""The delivery log against real SQLite and PostgreSQL stores: intake, transitions, queries."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from records_kit import new_status
from service_sites import PG_ADMIN_URL
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.core.errors import (
    ConfigError,
    ConflictError,
    InputError,
    NotFoundError,
    UnavailableError,
)
from gateway.core.methods import DeliveryMethod
from gateway.edxml.model import PackageKind, StatusCode
from gateway.store import (
    DeliveryLog,
    DeliveryState,
    DocumentFilter,
    EventKind,
    IntakeResult,
    NewDocument,
)
from gateway.store.engine import SQLITE_PAGE_SIZE_BYTES, transaction

PACKAGE = b"<edXML:edXMLEnvelope>package one</edXML:edXMLEnvelope>"
OTHER_PACKAGE = b"<edXML:edXMLEnvelope>package two</edXML:edXMLEnvelope>"
ROUTES = [("000.00.01.H56", "push"), ("0101234567", "mailbox")]

MakeDocument = Callable[..., NewDocument]


async def _intake(log: DeliveryLog, make_document: MakeDocument, **fields: object) -> IntakeResult:
    return await log.record_intake(make_document(**fields), PACKAGE, ROUTES)


# -- intake and deduplication ------------------------------------------------------------------


async def test_intake_records_document_package_deliveries_and_event(
    log: DeliveryLog, make_document: MakeDocument
) -> None:
    new = make_document(business_doc_type=None, subject="Công văn số 123")
    result = await log.record_intake(new, PACKAGE, [*ROUTES, ("000.00.01.H56", "soap")])

    assert result.created
    doc = result.document
    assert (doc.sender, doc.document_id, doc.subject) == (new.sender, new.document_id, new.subject)
    assert doc.size_bytes == len(PACKAGE)
    assert doc.received_at == new.received_at
    assert doc.received_at.tzinfo is not None
    # the repeated recipient is delivered once, by its first method
    assert [(d.recipient, d.method, d.state, d.attempts) for d in result.deliveries] == [
        ("000.00.01.H56", DeliveryMethod.PUSH, DeliveryState.ACCEPTED, 0),
        ("0101234567", DeliveryMethod.MAILBOX, DeliveryState.ACCEPTED, 0),
    ]
    assert await log.get_package(doc.package_sha256) == PACKAGE

    view = await log.get_document(doc.id)
    assert view is not None
    assert view.document == doc
    assert view.deliveries == result.deliveries
    [received] = view.events
    assert (received.kind, received.delivery, received.actor) == (
        EventKind.RECEIVED,
        None,
        new.caller,
    )
    assert received.detail["sha256"] == doc.package_sha256


async def test_same_key_same_bytes_returns_the_original(
    log: DeliveryLog, make_document: MakeDocument
) -> None:
    first = await _intake(log, make_document, dedup_key="k1")
    again = await log.record_intake(make_document(dedup_key="k1"), PACKAGE, ROUTES[:1])

    assert not again.created
    assert again.document == first.document
    assert again.deliveries == first.deliveries
    assert await log.count_documents(DocumentFilter()) == 1
    view = await log.get_document(first.document.id)
    assert view is not None
    assert [e.kind for e in view.events] == [EventKind.RECEIVED]


async def test_same_key_other_bytes_is_a_conflict(
    log: DeliveryLog, make_document: MakeDocument
) -> None:
    await _intake(log, make_document, dedup_key="k1")
    with pytest.raises(ConflictError) as caught:
        await log.record_intake(make_document(dedup_key="k1"), OTHER_PACKAGE, ROUTES)
    assert caught.value.code == "conflict.duplicate_document"
    assert await log.count_documents(DocumentFilter()) == 1


async def test_one_package_under_two_keys_is_stored_once(
    log: DeliveryLog, make_document: MakeDocument
) -> None:
    a = await _intake(log, make_document, dedup_key="a")
    b = await _intake(log, make_document, dedup_key="b")
    assert a.created
    assert b.created
    assert a.document.id != b.document.id
    assert a.document.package_sha256 == b.document.package_sha256
    assert await log.get_package(a.document.package_sha256) == PACKAGE


async def test_concurrent_identical_intakes_create_one_document(
    store_url: str, make_document: MakeDocument
) -> None:
    """Two gateway processes (two pools) race on the same submission."""
    logs = [await DeliveryLog.open(store_url), await DeliveryLog.open(store_url)]
    try:
        new = make_document(dedup_key="race")
        results = await asyncio.gather(
            *(logs[i % 2].record_intake(new, PACKAGE, ROUTES) for i in range(8))
        )
        assert sum(r.created for r in results) == 1
        assert {r.document.id for r in results} == {results[0].document.id}
        assert {tuple(d.id for d in r.deliveries) for r in results} == {
            tuple(d.id for d in results[0].deliveries)
        }
        assert await logs[0].count_documents(DocumentFilter()) == 1
    finally:
        for opened in logs:
            await opened.aclose()


async def test_concurrent_conflicting_intakes_accept_one(
    store_url: str, make_document: MakeDocument
) -> None:
    logs = [await DeliveryLog.open(store_url), await DeliveryLog.open(store_url)]
    try:
        new = make_document(dedup_key="race")
        outcomes = await asyncio.gather(
            logs[0].record_intake(new, PACKAGE, ROUTES),
            logs[1].record_intake(new, OTHER_PACKAGE, ROUTES),
            return_exceptions=True,
        )
        created = [o for o in outcomes if isinstance(o, IntakeResult)]
        refused = [o for o in outcomes if isinstance(o, ConflictError)]
        assert len(created) == 1
        assert created[0].created
        assert [e.code for e in refused] == ["conflict.duplicate_document"]
    finally:
        for opened in logs:
            await opened.aclose()


async def test_unknown_delivery_method_is_a_config_error(
    log: DeliveryLog, make_document: MakeDocument
) -> None:
    with pytest.raises(ConfigError) as caught:
        await log.record_intake(make_document(), PACKAGE, [("X", "carrier-pigeon")])
    assert caught.value.code == "config.delivery_method"
    assert await log.count_documents(DocumentFilter()) == 0


# -- delivery state ------------------------------------------------------------------------------


async def test_transitions_and_event_order(log: DeliveryLog, make_document: MakeDocument) -> None:
    push, mailbox = (await _intake(log, make_document)).deliveries
    await log.mark_published([push.id, mailbox.id])
    assert (await log.get_delivery(push.id)).state is DeliveryState.QUEUED  # type: ignore[union-attr]

    retried = await log.record_attempt(
        push.id,
        outcome="http_503",
        detail="endpoint busy",
        next_state=DeliveryState.RETRYING,
        error="503 Service Unavailable",
    )
    assert (retried.state, retried.attempts, retried.last_error) == (
        DeliveryState.RETRYING,
        1,
        "503 Service Unavailable",
    )
    assert not await log.is_delivered(push.id)

    delivered = await log.mark_delivered(push.id, detail="202 from endpoint")
    assert (delivered.state, delivered.attempts) == (DeliveryState.DELIVERED, 2)
    assert delivered.delivered_at is not None
    assert delivered.last_error == "503 Service Unavailable"  # history kept
    assert await log.is_delivered(push.id)

    view = await log.get_document(push.document)
    assert view is not None
    trail = [(e.kind, e.delivery) for e in view.events]
    assert trail == [
        (EventKind.RECEIVED, None),
        (EventKind.PUBLISHED, push.id),
        (EventKind.PUBLISHED, mailbox.id),
        (EventKind.RETRY_SCHEDULED, push.id),
        (EventKind.DELIVERED, push.id),
    ]
    assert [e.id for e in view.events] == sorted(e.id for e in view.events)
    assert view.events[3].detail == {
        "message": "endpoint busy",
        "error": "503 Service Unavailable",
        "attempt": 1,
    }


async def test_delivered_stays_delivered(log: DeliveryLog, make_document: MakeDocument) -> None:
    push, _ = (await _intake(log, make_document)).deliveries
    delivered = await log.mark_delivered(push.id, detail="200")

    late = await log.record_attempt(
        push.id, outcome="timeout", detail="late report", next_state=DeliveryState.RETRYING
    )
    again = await log.mark_delivered(push.id, detail="redelivered message")
    assert late == delivered
    assert again == delivered
    view = await log.get_document(push.document)
    assert view is not None
    assert [e.kind for e in view.events][-2:] == [EventKind.ATTEMPT, EventKind.ATTEMPT]
    assert view.events[-1].detail["ignored"] == "already delivered"


async def test_publication_never_moves_a_delivery_back(
    log: DeliveryLog, make_document: MakeDocument
) -> None:
    """The worker may deliver before intake records the broker's confirmation."""
    push, mailbox = (await _intake(log, make_document)).deliveries
    await log.mark_delivered(push.id, detail="fast worker")
    await log.mark_published([push.id, mailbox.id])

    assert (await log.get_delivery(push.id)).state is DeliveryState.DELIVERED  # type: ignore[union-attr]
    assert (await log.get_delivery(mailbox.id)).state is DeliveryState.QUEUED  # type: ignore[union-attr]


async def test_unknown_deliveries_are_not_found(
    log: DeliveryLog, make_document: MakeDocument
) -> None:
    push, _ = (await _intake(log, make_document)).deliveries
    with pytest.raises(NotFoundError):
        await log.mark_published([push.id, "no-such-id"])
    assert (await log.get_delivery(push.id)).state is DeliveryState.ACCEPTED  # type: ignore[union-attr]
    with pytest.raises(NotFoundError) as caught:
        await log.record_attempt(
            "no-such-id", outcome="x", detail="", next_state=DeliveryState.FAILED
        )
    assert caught.value.code == "not_found.delivery"
    with pytest.raises(NotFoundError):
        await log.is_delivered("no-such-id")
    assert await log.get_delivery("no-such-id") is None
    assert await log.get_document("no-such-id") is None
    with pytest.raises(NotFoundError):
        await log.get_package("0" * 64)


async def test_attempt_cannot_return_to_accepted(
    log: DeliveryLog, make_document: MakeDocument
) -> None:
    push, _ = (await _intake(log, make_document)).deliveries
    with pytest.raises(InputError) as caught:
        await log.record_attempt(push.id, outcome="x", detail="", next_state=DeliveryState.ACCEPTED)
    assert caught.value.code == "input.invalid_transition"


# -- business status and status routing --------------------------------------------------------


async def test_business_status_keeps_the_latest(
    log: DeliveryLog, make_document: MakeDocument
) -> None:
    push, _ = (await _intake(log, make_document)).deliveries
    t0 = datetime(2024, 5, 2, 8, 0, tzinfo=UTC)

    processing = await log.set_business_status(push.id, "05", t0 + timedelta(hours=2), "status-5")
    late_inbox = await log.set_business_status(push.id, "01", t0, "status-1")
    assert processing.business_status is StatusCode.PROCESSING
    assert late_inbox == processing
    assert late_inbox.business_status_at == t0 + timedelta(hours=2)

    view = await log.get_document(push.document)
    assert view is not None
    statuses = [e for e in view.events if e.kind is EventKind.BUSINESS_STATUS]
    assert [(e.outcome, e.detail["superseded"]) for e in statuses] == [("05", False), ("01", True)]
    assert statuses[0].detail["status_document"] == "status-5"

    with pytest.raises(InputError) as caught:
        await log.set_business_status(push.id, "99", t0, "status-x")
    assert caught.value.code == "edxml.bad_status_code"


async def test_status_routing_finds_the_original(
    log: DeliveryLog, make_document: MakeDocument
) -> None:
    original = await _intake(log, make_document, dedup_key="orig")
    await _intake(log, make_document, dedup_key="update", received_at=datetime.now(UTC))
    status = await log.record_intake(
        new_status(
            "000.00.01.H56",
            dedup_key="status",
            in_reply_to=original.document.id,
        ),
        b"<status/>",
        [("000.00.00.H56", "push")],
    )

    found = await log.find_document("000.00.00.H56", original.document.document_id or "")
    assert found == original.document
    assert await log.find_document("000.00.00.H56", "unknown") is None
    assert await log.find_document("000.00.00.H56", "x", PackageKind.STATUS) is None
    delivery = await log.find_delivery(original.document.id, "000.00.01.H56")
    assert delivery == original.deliveries[0]
    assert await log.find_delivery(original.document.id, "nobody") is None
    assert status.document.in_reply_to == original.document.id
    assert status.document.status_code is StatusCode.ACCEPTANCE


# -- mailbox -----------------------------------------------------------------------------------


async def test_inbox_lists_unacked_mailbox_deliveries(
    log: DeliveryLog, make_document: MakeDocument
) -> None:
    business = "0101234567"
    push, mailbox = (await _intake(log, make_document)).deliveries
    _, pending = (await _intake(log, make_document)).deliveries
    assert await log.inbox(business) == []  # not yet stored in the mailbox

    await log.mark_delivered(push.id, detail="pushed")
    await log.mark_delivered(mailbox.id, detail="stored in mailbox")
    [item] = await log.inbox(business)
    assert item.delivery.id == mailbox.id
    assert item.document.id == mailbox.document
    assert await log.inbox("000.00.01.H56") == []  # push deliveries have no inbox

    with pytest.raises(NotFoundError) as caught:
        await log.ack_inbox("000.00.01.H56", mailbox.id)  # someone else's item
    assert caught.value.code == "not_found.inbox_item"
    with pytest.raises(NotFoundError):
        await log.ack_inbox(business, pending.id)  # not in the mailbox yet

    acked = await log.ack_inbox(business, mailbox.id)
    assert acked.acked_at is not None
    assert await log.ack_inbox(business, mailbox.id) == acked
    assert await log.inbox(business) == []
    view = await log.get_document(mailbox.document)
    assert view is not None
    acks = [e for e in view.events if e.kind is EventKind.INBOX_ACKED]
    assert [(e.delivery, e.actor) for e in acks] == [(mailbox.id, business)]


# -- outbox, dead letters, replay --------------------------------------------------------------


async def test_outbox_lists_unpublished_deliveries(
    log: DeliveryLog, make_document: MakeDocument
) -> None:
    push, mailbox = (await _intake(log, make_document)).deliveries
    assert await log.pending_publication(older_than_s=3600, limit=10) == []  # still fresh

    pending = await log.pending_publication(older_than_s=0, limit=10)
    assert {item.delivery.id for item in pending} == {push.id, mailbox.id}
    assert {item.document.id for item in pending} == {push.document}
    assert len(await log.pending_publication(older_than_s=0, limit=1)) == 1

    await log.mark_published([push.id], republished=True, actor="outbox-relay")
    [left] = await log.pending_publication(older_than_s=0, limit=10)
    assert left.delivery.id == mailbox.id
    view = await log.get_document(push.document)
    assert view is not None
    assert (view.events[-1].kind, view.events[-1].actor) == (
        EventKind.REPUBLISHED,
        "outbox-relay",
    )


async def test_replay_keeps_the_delivery_id(log: DeliveryLog, make_document: MakeDocument) -> None:
    push, mailbox = (await _intake(log, make_document)).deliveries
    await log.mark_published([push.id, mailbox.id])
    await log.record_attempt(
        push.id,
        outcome="gave_up",
        detail="10 attempts",
        next_state=DeliveryState.DEAD_LETTERED,
        error="connection refused",
    )
    [dead] = await log.dead_letters()
    assert dead.delivery.id == push.id
    assert dead.document.id == push.document
    assert await log.dead_letters(recipient="someone-else") == []

    with pytest.raises(ConflictError) as caught:
        await log.replay(mailbox.id, actor="admin")
    assert caught.value.code == "conflict.not_replayable"

    replayed = await log.replay(push.id, actor="admin")
    assert replayed.id == push.id
    assert replayed.state is DeliveryState.ACCEPTED
    assert replayed.attempts == 1
    assert await log.dead_letters() == []
    [outbox] = await log.pending_publication(older_than_s=0, limit=10)
    assert outbox.delivery.id == push.id
    view = await log.get_document(push.document)
    assert view is not None
    assert [(e.kind, e.actor) for e in view.events][-2:] == [
        (EventKind.DEAD_LETTERED, "worker"),
        (EventKind.REPLAYED, "admin"),
    ]


# -- admin queries -------------------------------------------------------------------------------


async def test_filters_and_pagination(log: DeliveryLog, make_document: MakeDocument) -> None:
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    docs = []
    for i, (sender, subject) in enumerate(
        [
            ("000.00.00.H56", "Công văn về việc Đôn đốc"),
            ("000.00.00.H56", "Báo cáo tháng 5"),
            ("000.00.00.G22", "Quyết định 100%_ban hành"),
            ("000.00.00.G22", None),
        ]
    ):
        result = await log.record_intake(
            make_document(
                dedup_key=f"d{i}",
                sender=sender,
                document_id=f"{sender},2024/05/0{i + 1},{i}/VP",
                subject=subject,
                received_at=t0 + timedelta(days=i),
            ),
            f"<package {i}/>".encode(),
            [(f"org-{i}", "push"), ("shared", "mailbox")],
        )
        docs.append(result)
    await log.mark_delivered(docs[1].deliveries[0].id, detail="ok")
    await log.set_business_status(docs[1].deliveries[0].id, "03", t0, "s")

    async def ids(**criteria: object) -> list[str]:
        f = DocumentFilter(**criteria)  # type: ignore[arg-type]
        found = await log.list_documents(f)
        assert await log.count_documents(DocumentFilter(**criteria)) >= len(found)  # type: ignore[arg-type]
        return [d.id for d in found]

    d = [r.document.id for r in docs]
    assert await ids() == d[::-1]  # newest first
    assert await ids(limit=2) == [d[3], d[2]]
    assert await ids(limit=2, offset=2) == [d[1], d[0]]
    assert await log.count_documents(DocumentFilter(limit=1)) == 4
    assert await ids(sender="000.00.00.G22") == [d[3], d[2]]
    assert await ids(recipient="org-1") == [d[1]]
    assert await ids(recipient="shared") == d[::-1]
    assert await ids(document_id=docs[2].document.document_id) == [d[2]]
    assert await ids(state=DeliveryState.DELIVERED) == [d[1]]
    assert await ids(state=DeliveryState.DELIVERED, recipient="shared") == []  # same delivery
    assert await ids(business_status=StatusCode.ACCEPTANCE) == [d[1]]
    assert await ids(since=t0 + timedelta(days=1), until=t0 + timedelta(days=3)) == [d[2], d[1]]
    assert await ids(text="cong van") == [d[0]]  # no diacritics, any case
    assert await ids(text="ĐÔN ĐỐC") == [d[0]]
    assert await ids(text="100%_") == [d[2]]  # LIKE wildcards are literal
    assert await ids(text="%") == [d[2]]
    assert await ids(kind=PackageKind.STATUS) == []
    assert await log.count_documents(DocumentFilter(sender="000.00.00.H56")) == 2

    with pytest.raises(InputError):
        await log.list_documents(DocumentFilter(limit=0))
    with pytest.raises(InputError):
        await log.list_documents(DocumentFilter(offset=-1))


async def test_tail_follows_events_in_order(log: DeliveryLog, make_document: MakeDocument) -> None:
    assert await log.tail(0, 10) == []
    push, mailbox = (await _intake(log, make_document)).deliveries
    await log.mark_published([push.id, mailbox.id])

    first = await log.tail(0, 2)
    assert [e.kind for e in first] == [EventKind.RECEIVED, EventKind.PUBLISHED]
    rest = await log.tail(first[-1].id, 10)
    assert [(e.kind, e.delivery) for e in rest] == [(EventKind.PUBLISHED, mailbox.id)]
    await log.mark_delivered(mailbox.id, detail="ok")
    [latest] = await log.tail(rest[-1].id, 10)
    assert latest.kind is EventKind.DELIVERED


# -- availability ------------------------------------------------------------------------------


async def test_ping(log: DeliveryLog) -> None:
    await log.ping()


async def test_postgresql_down_is_unavailable() -> None:
    with pytest.raises(UnavailableError) as caught:
        await DeliveryLog.open("postgresql+asyncpg://postgres@127.0.0.1:1/test")
    assert caught.value.code == "unavailable.store"
    assert caught.value.retryable


async def test_postgresql_refusing_connections_for_a_while_is_unavailable() -> None:
    """The server answering with a SQLSTATE of "away for now" (here 53300, too many connections;
    a restarting server answers 57P03) is a 503 to retry, not a 500 store error."""
    role = f"lgsp_test_{secrets.token_hex(4)}"
    admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0'))
    try:
        with pytest.raises(UnavailableError) as caught:
            await DeliveryLog.open(make_url(PG_ADMIN_URL).set(username=role).render_as_string())
        assert caught.value.code == "unavailable.store"
        assert "too many connections" in caught.value.message
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        await admin.dispose()


async def test_a_postgresql_deadlock_is_unavailable_not_a_store_error() -> None:
    """Two transactions locking two rows in opposite orders: PostgreSQL rolls one back (40P01).
    That one's work was not written and succeeds if tried again: 503, not a 500."""
    name = f"lgsp_test_{secrets.token_hex(6)}"
    admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_async_engine(make_url(PG_ADMIN_URL).set(database=name))
    try:
        async with transaction(engine) as conn:
            await conn.execute(text("CREATE TABLE pair (id int PRIMARY KEY, n int)"))
            await conn.execute(text("INSERT INTO pair VALUES (1, 0), (2, 0)"))
        both_hold_one = asyncio.Barrier(2)

        async def lock(first: int, second: int) -> None:
            async with transaction(engine) as conn:
                await conn.execute(text("UPDATE pair SET n = n + 1 WHERE id = :i"), {"i": first})
                await both_hold_one.wait()
                await conn.execute(text("UPDATE pair SET n = n + 1 WHERE id = :i"), {"i": second})

        outcomes = await asyncio.gather(lock(1, 2), lock(2, 1), return_exceptions=True)
        victims = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(victims) == 1, outcomes
        assert isinstance(victims[0], UnavailableError), victims
        assert victims[0].code == "unavailable.store"
        assert "deadlock" in victims[0].message
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def test_sqlite_store_runs_in_wal_mode(tmp_path: Path) -> None:
    log = await DeliveryLog.open(f"sqlite+aiosqlite:///{tmp_path}/log.db")
    await log.aclose()
    with closing(sqlite3.connect(tmp_path / "log.db")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA page_size").fetchone() == (SQLITE_PAGE_SIZE_BYTES,)


async def test_an_existing_sqlite_store_keeps_its_page_size(
    tmp_path: Path, make_document: MakeDocument
) -> None:
    """A file made with 4 KiB pages (before 16 KiB became the default) opens and works as it is."""
    with closing(sqlite3.connect(tmp_path / "log.db")) as db:
        db.execute("PRAGMA page_size=4096")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE kept (x INTEGER)")
    log = await DeliveryLog.open(f"sqlite+aiosqlite:///{tmp_path}/log.db")
    try:
        big = PACKAGE * 10_000  # overflow pages
        result = await log.record_intake(make_document(), big, ROUTES)
        assert await log.get_package(result.document.package_sha256) == big
    finally:
        await log.aclose()
    with closing(sqlite3.connect(tmp_path / "log.db")) as db:
        assert db.execute("PRAGMA page_size").fetchone() == (4096,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_sqlite_in_a_missing_directory_creates_it(tmp_path: Path) -> None:
    log = await DeliveryLog.open(f"sqlite+aiosqlite:///{tmp_path}/var/lgsp/log.db")
    await log.aclose()
    assert (tmp_path / "var" / "lgsp" / "log.db").is_file()


async def test_sqlite_in_a_directory_that_cannot_be_made_is_a_config_error(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("not a directory", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        await DeliveryLog.open(f"sqlite+aiosqlite:///{tmp_path}/a-file/var/log.db")
    assert caught.value.code == "config.store_url"


async def test_unsupported_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        await DeliveryLog.open("mysql+aiomysql://localhost/log")
    with pytest.raises(ConfigError):
        await DeliveryLog.open("not a url")
