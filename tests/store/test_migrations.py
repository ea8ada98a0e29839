"""Schema versioning of the delivery log on real SQLite and PostgreSQL databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from gateway.core.errors import ConfigError
from gateway.store import DeliveryLog, DocumentFilter, NewDocument
from gateway.store.migrations import LATEST, STEPS

MakeDocument = Callable[..., NewDocument]


@asynccontextmanager
async def raw(store_url: str) -> AsyncIterator[AsyncConnection]:
    """A plain connection to the store, outside the delivery log, in one transaction."""
    engine = create_async_engine(store_url)
    try:
        async with engine.begin() as conn:
            yield conn
    finally:
        await engine.dispose()


async def recorded_as(conn: AsyncConnection, version: int, description: str = "") -> None:
    """Make the store's recorded schema version ``version`` alone (what that release left)."""
    await conn.execute(text("DELETE FROM schema_version"))
    await conn.execute(
        text(
            "INSERT INTO schema_version (version, description, applied_at) "
            "VALUES (:v, :d, CURRENT_TIMESTAMP)"
        ),
        {"v": version, "d": description or f"as version {version} left it"},
    )


async def versions(store_url: str) -> list[tuple[int, str]]:
    async with raw(store_url) as conn:
        rows = await conn.execute(
            text("SELECT version, description FROM schema_version ORDER BY version")
        )
        return [(row.version, row.description) for row in rows]


async def test_steps_are_numbered_in_order() -> None:
    assert [step.version for step in STEPS] == list(range(1, LATEST + 1))
    assert LATEST >= 2


async def test_a_fresh_store_is_created_at_the_latest_version(store_url: str) -> None:
    log = await DeliveryLog.open(store_url)
    await log.aclose()
    assert log.schema_version == LATEST
    assert await versions(store_url) == [(LATEST, f"created at version {LATEST}")]


async def test_reopening_changes_nothing(store_url: str, make_document: MakeDocument) -> None:
    log = await DeliveryLog.open(store_url)
    created = await log.record_intake(make_document(), b"<p/>", [("A", "push")])
    await log.aclose()
    before = await versions(store_url)

    log = await DeliveryLog.open(store_url)
    try:
        assert log.schema_version == LATEST
        assert await versions(store_url) == before
        view = await log.get_document(created.document.id)
        assert view is not None
        assert view.document == created.document
    finally:
        await log.aclose()


async def test_gateways_starting_together_migrate_once(store_url: str) -> None:
    logs = await asyncio.gather(*(DeliveryLog.open(store_url) for _ in range(4)))
    for log in logs:
        assert log.schema_version == LATEST
        await log.aclose()
    assert len(await versions(store_url)) == 1


async def test_version_1_store_is_migrated_to_2(
    store_url: str, make_document: MakeDocument
) -> None:
    """A store written by a version-1 release: no ``subject_folded``, filled in by step 2."""
    log = await DeliveryLog.open(store_url)
    old = await log.record_intake(
        make_document(subject="Về việc Đôn đốc thực hiện"), b"<p1/>", [("A", "push")]
    )
    untitled = await log.record_intake(make_document(subject=None), b"<p2/>", [("A", "push")])
    await log.aclose()
    async with raw(store_url) as conn:  # turn it into what version 1 created
        await conn.execute(text("ALTER TABLE documents DROP COLUMN subject_folded"))
        await recorded_as(conn, 1, "create all tables")

    log = await DeliveryLog.open(store_url)
    try:
        assert log.schema_version == LATEST
        assert [v for v, _ in await versions(store_url)] == list(range(1, LATEST + 1))
        found = await log.list_documents(DocumentFilter(text="don doc"))
        assert [d.id for d in found] == [old.document.id]
        assert await log.get_document(untitled.document.id) is not None
        new = await log.record_intake(
            make_document(subject="Đôn đốc lần 2"), b"<p3/>", [("A", "push")]
        )
        found = await log.list_documents(DocumentFilter(text="ĐÔN ĐỐC"))
        assert [d.id for d in found] == [new.document.id, old.document.id]
    finally:
        await log.aclose()
    async with raw(store_url) as conn:
        folded = await conn.scalar(
            text("SELECT subject_folded FROM documents WHERE id = :id"), {"id": old.document.id}
        )
    assert folded == "ve viec don doc thuc hien"


async def test_version_6_store_gains_the_southbound_replay_memory(store_url: str) -> None:
    log = await DeliveryLog.open(store_url)
    await log.aclose()
    async with raw(store_url) as conn:  # turn it into what version 6 created
        await conn.execute(text("DROP TABLE southbound_replays"))
        await recorded_as(conn, 6)
    log = await DeliveryLog.open(store_url)
    await log.aclose()
    assert [v for v, _ in await versions(store_url)] == [6, *range(7, LATEST + 1)]
    async with raw(store_url) as conn:
        await conn.execute(
            text(
                "INSERT INTO southbound_replays (system_id, hash_header, operation, first_used_at,"
                " expires_at) VALUES ('s', 'h', 'getEdoc', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        assert await conn.scalar(text("SELECT count(*) FROM southbound_replays")) == 1


async def test_a_store_newer_than_the_release_is_refused(store_url: str) -> None:
    log = await DeliveryLog.open(store_url)
    await log.aclose()
    async with raw(store_url) as conn:
        await conn.execute(
            text(
                "INSERT INTO schema_version (version, description, applied_at) "
                "VALUES (:v, 'from the future', CURRENT_TIMESTAMP)"
            ),
            {"v": LATEST + 1},
        )
    with pytest.raises(ConfigError) as caught:
        await DeliveryLog.open(store_url)
    assert caught.value.code == "config.store_schema_newer"


async def test_version_7_store_gains_the_console_reports_cache_and_users(store_url: str) -> None:
    log = await DeliveryLog.open(store_url)
    await log.aclose()
    async with raw(store_url) as conn:  # turn it into what version 7 created
        await conn.execute(text("DROP TABLE report_days"))
        await conn.execute(text("DROP TABLE console_users"))
        await conn.execute(text("DROP INDEX ix_national_inbox_document"))
        await recorded_as(conn, 7)
    log = await DeliveryLog.open(store_url)
    await log.aclose()
    assert [v for v, _ in await versions(store_url)] == list(range(7, LATEST + 1))
    async with raw(store_url) as conn:
        assert await conn.scalar(text("SELECT count(*) FROM report_days")) == 0
        assert await conn.scalar(text("SELECT count(*) FROM console_users")) == 0
        indexes = await conn.run_sync(
            lambda sync: {i["name"] for i in inspect(sync).get_indexes("national_inbox")}
        )
    assert "ix_national_inbox_document" in indexes


async def test_version_8_store_gains_rate_counters_and_last_error_codes(store_url: str) -> None:
    log = await DeliveryLog.open(store_url)
    await log.aclose()
    async with raw(store_url) as conn:  # turn it into what version 8 created
        await conn.execute(text("DROP TABLE rate_counters"))
        await conn.execute(text("ALTER TABLE deliveries DROP COLUMN last_error_code"))
        await recorded_as(conn, 8)
    log = await DeliveryLog.open(store_url)
    await log.aclose()
    assert [v for v, _ in await versions(store_url)] == list(range(8, LATEST + 1))
    async with raw(store_url) as conn:
        assert await conn.scalar(text("SELECT count(*) FROM rate_counters")) == 0
        columns = await conn.run_sync(
            lambda sync: {c["name"] for c in inspect(sync).get_columns("deliveries")}
        )
    assert "last_error_code" in columns


async def test_version_10_store_gains_the_directory_and_the_login_failures(store_url: str) -> None:
    log = await DeliveryLog.open(store_url)
    await log.aclose()
    async with raw(store_url) as conn:  # turn it into what version 10 created
        for table in ("participants", "directory_version", "login_failures"):
            await conn.execute(text(f"DROP TABLE {table}"))
        await recorded_as(conn, 10)
    log = await DeliveryLog.open(store_url)
    await log.aclose()
    assert [v for v, _ in await versions(store_url)] == list(range(10, LATEST + 1))
    async with raw(store_url) as conn:
        for table in ("participants", "directory_version", "login_failures"):
            assert await conn.scalar(text(f"SELECT count(*) FROM {table}")) == 0


async def test_version_11_store_gains_the_inbox_index(
    store_url: str, make_document: MakeDocument
) -> None:
    """The partial index of the mailboxes' unacknowledged items, over the rows already there."""
    log = await DeliveryLog.open(store_url)
    try:
        result = await log.record_intake(make_document(), b"<d/>", [("0101234567", "mailbox")])
        [delivery] = result.deliveries
        await log.mark_delivered(delivery.id, detail="stored in the mailbox")
    finally:
        await log.aclose()
    async with raw(store_url) as conn:  # turn it into what version 11 created
        await conn.execute(text("DROP INDEX ix_deliveries_inbox"))
        await recorded_as(conn, 11)
    log = await DeliveryLog.open(store_url)
    try:
        assert [v for v, _ in await versions(store_url)] == list(range(11, LATEST + 1))
        assert [i.delivery.id for i in await log.inbox("0101234567")] == [delivery.id]
    finally:
        await log.aclose()
    async with raw(store_url) as conn:
        indexes = await conn.run_sync(
            lambda sync: {i["name"] for i in inspect(sync).get_indexes("deliveries")}
        )
    assert "ix_deliveries_inbox" in indexes


async def _stored_bodies(store_url: str) -> list[tuple[int, int]]:
    """Each package body's length and the bytes it takes in the table (after any compression)."""
    async with raw(store_url) as conn:
        size = "pg_column_size(data)" if conn.dialect.name == "postgresql" else "length(data)"
        rows = await conn.execute(text(f"SELECT length(data), {size} FROM packages ORDER BY 1"))
        return [(row[0], row[1]) for row in rows]


async def _body_storage(store_url: str) -> str | None:
    """PostgreSQL's storage mode of ``packages.data`` (``e``: external, ``x``: extended)."""
    async with raw(store_url) as conn:
        if conn.dialect.name != "postgresql":
            return None
        return str(
            await conn.scalar(
                text(
                    "SELECT attstorage::text FROM pg_attribute "
                    "WHERE attrelid = 'packages'::regclass AND attname = 'data'"
                )
            )
        )


async def test_package_bodies_are_stored_as_received_from_version_13(
    store_url: str, make_document: MakeDocument
) -> None:
    """A fresh store and one migrated from version 12 keep new bodies uncompressed: on PostgreSQL
    a body that compresses well still takes its full length (pglz would shrink it to a few KB)."""
    postgresql = store_url.startswith("postgresql")
    compressible = b"<d>" + b"a" * 200_000 + b"</d>"
    log = await DeliveryLog.open(store_url)
    try:
        await log.record_intake(make_document(), compressible, [("A", "push")])
    finally:
        await log.aclose()
    assert await _body_storage(store_url) == ("e" if postgresql else None)
    [(length, stored)] = await _stored_bodies(store_url)
    assert stored >= length == len(compressible)

    async with raw(store_url) as conn:  # turn it into what version 12 created
        if postgresql:
            await conn.execute(text("ALTER TABLE packages ALTER COLUMN data SET STORAGE EXTENDED"))
            await conn.execute(  # and what version 12 did with such a body: compressed it
                text(
                    "INSERT INTO packages (sha256, size_bytes, data, created_at) "
                    "VALUES (:sha, :size, :data, CURRENT_TIMESTAMP)"
                ),
                {"sha": "0" * 64, "size": len(compressible) + 1, "data": compressible + b"\n"},
            )
        await recorded_as(conn, 12)
    if postgresql:
        _, (length, stored) = await _stored_bodies(store_url)
        assert stored < length // 10

    log = await DeliveryLog.open(store_url)
    try:
        await log.record_intake(make_document(), compressible + b"\n\n", [("A", "push")])
    finally:
        await log.aclose()
    assert [v for v, _ in await versions(store_url)] == list(range(12, LATEST + 1))
    assert await _body_storage(store_url) == ("e" if postgresql else None)
    length, stored = (await _stored_bodies(store_url))[-1]
    assert length == len(compressible) + 2
    assert stored >= length
