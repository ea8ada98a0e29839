"""The admin search's statements can be served by indexes on PostgreSQL (EXPLAIN, not timing).

A few thousand documents are written in SQL, analysed, and each common filter's statement -- the
very ``document_page`` / ``document_count`` that ``DeliveryLog.list_documents`` and
``count_documents`` run -- is EXPLAINed with its values. Sequential scans are disabled for the
EXPLAIN: at this size a scan is legitimately the cheapest plan, so "still a Seq Scan" means no
index can serve the filter at all. What the planner picks at a million documents, and how fast,
is measured by ``scripts/bench_admin.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Select, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from gateway.edxml.model import PackageKind, StatusCode
from gateway.store import DeliveryLog, DeliveryState, DocumentFilter, NewDocument
from gateway.store.queries import (
    COUNT_CAP,
    document_conditions,
    document_count,
    document_page,
    newest_first,
)
from gateway.store.tables import documents

pg_only = pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
MakeDocument = Callable[..., NewDocument]

DOCUMENTS = 3000
NOW = datetime(2026, 6, 1, tzinfo=UTC)

FILL = (
    """INSERT INTO packages (sha256, size_bytes, data, created_at)
       SELECT md5('p' || i) || md5('q' || i), 100, '\\x00', :now FROM generate_series(1, :n) i""",
    """INSERT INTO documents (id, dedup_key, kind, sender, document_id, subject, subject_folded,
           package_sha256, format, signer_fingerprint, signer_subject, algorithm, caller,
           received_at)
       SELECT md5('d' || i)::uuid::text, 'k' || i, 'document', 'S' || (i % 40),
              'S' || (i % 40) || ',2026,' || i || '/UBND',
              CASE WHEN i % 200 = 0 THEN 'Phòng chống lụt bão ' || i
                   ELSE 'Công văn triển khai ' || i END,
              CASE WHEN i % 200 = 0 THEN 'phong chong lut bao ' || i
                   ELSE 'cong van trien khai ' || i END,
              md5('p' || i) || md5('q' || i), 'xml', 'ab', 'CN=x', 'rsa-sha256', 'c',
              CAST(:now AS timestamptz) - i * interval '1 hour'
       FROM generate_series(1, :n) i""",
    # one delivery per document, a second one to the next recipient for every fourth
    """INSERT INTO deliveries (id, document, recipient, method, state, attempts,
           business_status, created_at, updated_at, received_at, sender)
       SELECT md5('l' || i || '-' || k)::uuid::text, md5('d' || i)::uuid::text,
              'R' || ((i + k) % 30), 'push',
              CASE WHEN (i + k) % 50 = 0 THEN 'dead_lettered' ELSE 'delivered' END, 1,
              CASE WHEN (i + k) % 3 = 0 THEN '03' END, :now, :now,
              CAST(:now AS timestamptz) - i * interval '1 hour', 'S' || (i % 40)
       FROM generate_series(1, :n) i, generate_series(0, 1) k WHERE k = 0 OR i % 4 = 0""",
)


@pytest.fixture
async def searchable(store_url: str) -> str:
    """A migrated PostgreSQL store with ``DOCUMENTS`` documents and fresh statistics."""
    log = await DeliveryLog.open(store_url)
    await log.aclose()
    engine = create_async_engine(store_url)
    try:
        async with engine.begin() as conn:
            for statement in FILL:
                await conn.execute(text(statement), {"n": DOCUMENTS, "now": NOW})
        # statistics and the visibility map now, not whenever autovacuum comes by
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        async with autocommit.connect() as conn:
            await conn.execute(text("VACUUM ANALYZE"))
    finally:
        await engine.dispose()
    return store_url


async def explain(conn: AsyncConnection, statement: Select[Any]) -> dict[str, Any]:
    """EXPLAIN (FORMAT JSON) of ``statement`` with its bound values, on the asyncpg connection."""
    compiled = statement.compile(dialect=conn.dialect)
    values = [compiled.params[name] for name in compiled.positiontup or ()]
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    plan = await raw.fetchval(f"EXPLAIN (FORMAT JSON) {compiled}", *values)
    decoded = json.loads(plan) if isinstance(plan, str) else plan  # a json codec may be set
    return dict(decoded[0]["Plan"])


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def scans(plan: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(node type, table, index) of every node that reads a table or an index."""
    return [
        (n["Node Type"], n.get("Relation Name", ""), n.get("Index Name"))
        for n in nodes(plan)
        if "Relation Name" in n or "Index Name" in n
    ]


BY_RECIPIENT = {
    "ix_deliveries_recipient_received_at_document",
    "ix_deliveries_recipient_state_received_at_document",
}
SEARCHES: dict[str, tuple[DocumentFilter, set[str]]] = {
    # filter name: (the filter, indexes of which its page or its count must use one)
    "unfiltered": (DocumentFilter(), {"ix_documents_received_at_id"}),
    "unfiltered, deep page": (DocumentFilter(offset=2000), {"ix_documents_received_at_id"}),
    "document_id": (
        DocumentFilter(document_id="S7,2026,7/UBND"),
        {"ix_documents_document_id_sender_kind"},
    ),
    "sender": (DocumentFilter(sender="S7"), {"ix_documents_sender_received_at_id"}),
    "sender, deep page": (
        DocumentFilter(sender="S7", offset=50),
        {"ix_documents_sender_received_at_id"},
    ),
    "recipient": (DocumentFilter(recipient="R7"), BY_RECIPIENT),
    "state": (
        DocumentFilter(state=DeliveryState.DEAD_LETTERED),
        {"ix_deliveries_state_received_at_document"},
    ),
    "state, deep page": (
        DocumentFilter(state=DeliveryState.DELIVERED, offset=2000),
        {"ix_deliveries_state_received_at_document"},
    ),
    "business status": (
        DocumentFilter(business_status=StatusCode.ACCEPTANCE),
        {"ix_deliveries_business_status_received_at_document"},
    ),
    "date range": (
        DocumentFilter(since=NOW - timedelta(days=30), until=NOW - timedelta(days=23)),
        {"ix_documents_received_at_id"},
    ),
    "subject text": (DocumentFilter(text="Lụt bão"), {"ix_documents_subject_folded_trgm"}),
    "sender + state": (
        DocumentFilter(sender="S7", state=DeliveryState.DEAD_LETTERED),
        {"ix_deliveries_sender_received_at_document", "ix_deliveries_state_received_at_document"},
    ),
    "recipient + state": (
        DocumentFilter(recipient="R7", state=DeliveryState.DEAD_LETTERED),
        BY_RECIPIENT,
    ),
    "recipient + business status": (
        DocumentFilter(recipient="R7", business_status=StatusCode.ACCEPTANCE),
        {*BY_RECIPIENT, "ix_deliveries_business_status_received_at_document"},
    ),
    "state + date range": (
        DocumentFilter(
            state=DeliveryState.DELIVERED,
            since=NOW - timedelta(days=30),
            until=NOW - timedelta(days=23),
        ),
        {"ix_deliveries_state_received_at_document"},
    ),
    "sender + date range": (
        DocumentFilter(sender="S7", since=NOW - timedelta(days=60), until=NOW),
        {"ix_documents_sender_received_at_id"},
    ),
}


@pg_only
async def test_each_common_search_is_served_by_an_index(searchable: str) -> None:
    """Every filter of ``SEARCHES``, its page and its count (one database for them all)."""
    engine = create_async_engine(searchable)
    unserved: dict[str, object] = {}
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
            for name, (flt, expected) in SEARCHES.items():
                page = scans(await explain(conn, document_page(flt)))
                count = scans(await explain(conn, document_count(flt, COUNT_CAP)))
                if not {index for _, _, index in page + count} & expected:
                    unserved[name] = page + count
                if any(s[0] == "Seq Scan" for s in page + count):
                    unserved[name] = page + count
                # the page's rows are joined to their packages after the page is chosen
                if ("Index Scan", "packages", "pk_packages") not in page:
                    unserved[name] = page
    finally:
        await engine.dispose()
    assert unserved == {}, json.dumps(unserved, indent=1)


@pg_only
async def test_pages_and_counts_match_the_plain_definition(searchable: str) -> None:
    """The tuned shapes return what "documents with one delivery meeting the delivery criteria,
    newest first" returns, written plainly (EXISTS), page by page and counted."""
    engine = create_async_engine(searchable)
    log = await DeliveryLog.open(searchable)
    try:
        for name, (flt, _) in SEARCHES.items():
            async with engine.connect() as conn:
                plain = (
                    (
                        await conn.execute(
                            select(documents.c.id)
                            .where(*document_conditions(flt))
                            .order_by(*newest_first())
                        )
                    )
                    .scalars()
                    .all()
                )
            page = await log.list_documents(flt)
            assert [d.id for d in page] == plain[flt.offset : flt.offset + flt.limit], name
            assert await log.count_documents(flt) == min(len(plain), COUNT_CAP), name
            assert await log.count_documents(flt, cap=None) == len(plain), name
        # a document both of whose deliveries are delivered is listed once
        both = await log.list_documents(DocumentFilter(state=DeliveryState.DELIVERED, limit=8))
        assert len({d.id for d in both}) == 8
    finally:
        await log.aclose()
        await engine.dispose()


# --- both stores: the same answers through the API, and the upgrade that adds the columns ---------


async def _a_small_log(log: DeliveryLog, make_document: MakeDocument) -> list[str]:
    """Twelve documents an hour apart from three senders to one or two of three recipients,
    in various states and business statuses; their ids, oldest first."""
    ids = []
    for i in range(12):
        recipients = [(f"R{i % 3}", "push")] + ([(f"R{(i + 1) % 3}", "mailbox")] if i % 2 else [])
        done = await log.record_intake(
            make_document(
                dedup_key=f"k{i}", sender=f"S{i % 3}", received_at=NOW - timedelta(hours=12 - i)
            ),
            f"<p{i}/>".encode(),
            recipients,
        )
        for n, delivery in enumerate(done.deliveries):
            if (i + n) % 3 == 0:
                await log.mark_delivered(delivery.id, detail="HTTP 200")
                await log.set_business_status(delivery.id, "03", NOW, "status-doc")
            elif (i + n) % 3 == 1:
                await log.record_attempt(
                    delivery.id,
                    outcome="x",
                    detail="gave up",
                    next_state=DeliveryState.DEAD_LETTERED,
                    error="x",
                )
        ids.append(done.document.id)
    return ids


EVERY_SHAPE = [
    DocumentFilter(recipient="R1"),
    DocumentFilter(state=DeliveryState.DELIVERED),
    DocumentFilter(state=DeliveryState.DELIVERED, limit=2, offset=1),
    DocumentFilter(business_status=StatusCode.ACCEPTANCE),
    DocumentFilter(sender="S1", state=DeliveryState.DEAD_LETTERED),
    DocumentFilter(recipient="R2", state=DeliveryState.ACCEPTED, sender="S2"),
    DocumentFilter(
        state=DeliveryState.DELIVERED,
        since=NOW - timedelta(hours=8),
        until=NOW - timedelta(hours=3),
    ),
    DocumentFilter(state=DeliveryState.DELIVERED, text="triển khai", kind=PackageKind.DOCUMENT),
    DocumentFilter(recipient="R0", document_id="000.00.00.H56,2024/05/02,123/UBND-VP"),
]


async def test_delivery_filters_answer_as_the_plain_definition(
    store_url: str, make_document: MakeDocument
) -> None:
    log = await DeliveryLog.open(store_url)
    engine = create_async_engine(store_url)
    try:
        ids = await _a_small_log(log, make_document)
        for flt in EVERY_SHAPE:
            async with engine.connect() as conn:
                plain = (
                    (
                        await conn.execute(
                            select(documents.c.id)
                            .where(*document_conditions(flt))
                            .order_by(*newest_first())
                        )
                    )
                    .scalars()
                    .all()
                )
            assert plain, flt  # every shape has matches in this log
            page = [d.id for d in await log.list_documents(flt)]
            assert page == plain[flt.offset : flt.offset + flt.limit], flt
            assert await log.count_documents(flt) == len(plain), flt
        delivered = await log.list_documents(DocumentFilter(state=DeliveryState.DELIVERED))
        assert len(delivered) == len({d.id for d in delivered})  # once, even if both delivered
        assert ids[-1] in {d.id for d in delivered}
    finally:
        await log.aclose()
        await engine.dispose()


V6_INDEXES = (
    "ix_deliveries_recipient_state_received_at_document",
    "ix_deliveries_recipient_received_at_document",
    "ix_deliveries_state_received_at_document",
    "ix_deliveries_business_status_received_at_document",
    "ix_deliveries_sender_received_at_document",
)


async def test_a_version_5_store_gets_the_delivery_search_columns(
    store_url: str, make_document: MakeDocument
) -> None:
    log = await DeliveryLog.open(store_url)
    ids = await _a_small_log(log, make_document)
    await log.aclose()
    engine = create_async_engine(store_url)
    try:
        async with engine.begin() as conn:  # back to what version 5 created
            for index in V6_INDEXES:
                await conn.execute(text(f"DROP INDEX {index}"))
            for column in ("received_at", "sender"):
                await conn.execute(text(f"ALTER TABLE deliveries DROP COLUMN {column}"))
            await conn.execute(
                text("CREATE INDEX ix_deliveries_recipient_state ON deliveries (recipient, state)")
            )
            await conn.execute(text("DELETE FROM schema_version"))
            await conn.execute(
                text(
                    "INSERT INTO schema_version (version, description, "
                    "applied_at) VALUES (5, 'v5', CURRENT_TIMESTAMP)"
                )
            )

        log = await DeliveryLog.open(store_url)
        try:
            assert log.schema_version >= 6
            found = await log.list_documents(DocumentFilter(sender="S1", recipient="R1"))
            assert [d.id for d in found] == [ids[i] for i in (10, 7, 4, 1)]
        finally:
            await log.aclose()
        async with engine.connect() as conn:
            missing = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM deliveries d JOIN documents o ON o.id = d.document "
                        "WHERE d.received_at IS NULL OR d.sender IS NULL OR d.sender <> o.sender"
                    )
                )
            ).scalar_one()
            assert missing == 0
    finally:
        await engine.dispose()
