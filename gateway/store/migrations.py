"""Schema versions of the delivery log and the ordered steps that bring a database up to date.

``migrate`` runs at every start-up and is idempotent. Each step runs in its own transaction which
also records the new version in ``schema_version``; on PostgreSQL the transaction first takes an
advisory lock, so gateways starting together apply each step exactly once (the others wait, then
see it done). On SQLite the write transaction (``BEGIN IMMEDIATE``) is the lock.

A database without a ``schema_version`` row is created whole from ``tables.metadata`` (the current
shape) and stamped ``LATEST``; the later steps exist for databases created by older releases.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Connection,
    Text,
    bindparam,
    exc,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.core.errors import ConfigError
from gateway.store.chain import GENESIS, init_head, link
from gateway.store.chain_read import read_chunk
from gateway.store.engine import transaction
from gateway.store.tables import (
    SUBJECT_TRIGRAM_INDEX,
    archives,
    chain_checkpoints,
    chain_head,
    console_audit,
    console_sessions,
    console_users,
    deliveries,
    directory_version,
    documents,
    events,
    fold_text,
    keep_package_bodies_as_is,
    login_failures,
    metadata,
    national_inbox,
    participants,
    rate_counters,
    report_days,
    schema_version,
    southbound_replays,
)

# Any constant unique to this application: the key of the PostgreSQL advisory lock.
ADVISORY_LOCK_KEY = 0x4C475350_4C4F47  # "LGSP" "LOG"
BACKFILL_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Step:
    """Brings the schema from ``version - 1`` to ``version``."""

    version: int
    description: str
    apply: Callable[[AsyncConnection], Awaitable[None]]


async def _create_all(conn: AsyncConnection) -> None:
    await _enable_trigrams(conn)
    await conn.run_sync(metadata.create_all)
    await conn.run_sync(init_head)


async def _enable_trigrams(conn: AsyncConnection) -> None:
    """PostgreSQL: the ``pg_trgm`` extension behind the subject search index (contrib, trusted)."""
    if conn.dialect.name != "postgresql":
        return
    try:
        await conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except exc.DBAPIError as error:
        raise ConfigError(
            "the PostgreSQL store needs the pg_trgm extension (postgresql-contrib) for subject "
            f"search: {error.orig}",
            code="config.store_extension",
        ) from error


async def _add_subject_folded(conn: AsyncConnection) -> None:
    """Version 2: ``documents.subject_folded`` for diacritic-insensitive search, backfilled."""
    column_type = Text().compile(dialect=conn.dialect)
    await conn.execute(text(f"ALTER TABLE documents ADD COLUMN subject_folded {column_type}"))
    last_id = ""
    while True:
        rows = (
            await conn.execute(
                select(documents.c.id, documents.c.subject)
                .where(documents.c.id > last_id, documents.c.subject.is_not(None))
                .order_by(documents.c.id)
                .limit(BACKFILL_BATCH)
            )
        ).all()
        if not rows:
            return
        await conn.execute(
            update(documents)
            .where(documents.c.id == bindparam("doc_id"))
            .values(subject_folded=bindparam("folded")),
            [{"doc_id": row.id, "folded": fold_text(row.subject)} for row in rows],
        )
        last_id = rows[-1].id


async def _add_national_inbox(conn: AsyncConnection) -> None:
    """Version 3: ``national_inbox``, the national docIds the poller has processed."""
    await conn.run_sync(national_inbox.create, checkfirst=True)


def _create_indexes(*names: str) -> Callable[[Connection], None]:
    """Create these indexes as ``tables`` defines them (each one's dialect rule kept)."""

    def create(sync: Connection) -> None:
        for table in metadata.sorted_tables:
            for index in table.indexes:
                if index.name in names:
                    index.create(sync, checkfirst=True)

    return create


async def _add_search_indexes(conn: AsyncConnection) -> None:
    """Version 4: search indexes: (sender, received_at, id); subject trigrams on PostgreSQL."""
    await _enable_trigrams(conn)
    await conn.execute(text("DROP INDEX IF EXISTS ix_documents_sender_received_at"))
    await conn.run_sync(
        _create_indexes("ix_documents_sender_received_at_id", str(SUBJECT_TRIGRAM_INDEX.name))
    )


async def _add_console_tables(conn: AsyncConnection) -> None:
    """Version 5: the web console's audit trail and sessions."""
    for table in (console_audit, console_sessions):
        await conn.run_sync(table.create, checkfirst=True)


def _column_names(sync: Connection, table: str) -> set[str]:
    return {column["name"] for column in inspect(sync).get_columns(table)}


async def _add_delivery_search(conn: AsyncConnection) -> None:
    """Version 6: ``deliveries.received_at`` and ``sender`` (the document's, backfilled) and
    the indexes that page delivery-filtered searches in time order."""
    present = await conn.run_sync(_column_names, "deliveries")
    for name in ("received_at", "sender"):
        if name not in present:
            column_type = deliveries.c[name].type.compile(dialect=conn.dialect)
            await conn.execute(text(f"ALTER TABLE deliveries ADD COLUMN {name} {column_type}"))
    document = documents.alias("document")
    own = document.c.id == deliveries.c.document
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.received_at.is_(None))
        .values(
            received_at=select(document.c.received_at).where(own).scalar_subquery(),
            sender=select(document.c.sender).where(own).scalar_subquery(),
        )
    )
    for replaced in ("ix_deliveries_recipient_state", "ix_deliveries_business_status"):
        await conn.execute(text(f"DROP INDEX IF EXISTS {replaced}"))
    await conn.run_sync(
        _create_indexes(
            "ix_deliveries_recipient_state_received_at_document",
            "ix_deliveries_recipient_received_at_document",
            "ix_deliveries_state_received_at_document",
            "ix_deliveries_business_status_received_at_document",
            "ix_deliveries_sender_received_at_document",
        )
    )


async def _add_southbound_replays(conn: AsyncConnection) -> None:
    """Version 7: ``southbound_replays``, the southbound's durable replay memory."""
    await conn.run_sync(southbound_replays.create, checkfirst=True)


async def _add_console_reports(conn: AsyncConnection) -> None:
    """Version 8: the console's report cache (per day, agency and role) and users; national
    docIds by document."""
    for table in (report_days, console_users):
        await conn.run_sync(table.create, checkfirst=True)
    await conn.run_sync(_create_indexes("ix_national_inbox_document"))


async def _add_rate_counters(conn: AsyncConnection) -> None:
    """Version 9: ``rate_counters`` (rate limits shared by every process) and
    ``deliveries.last_error_code`` (the stable code participants see instead of the message)."""
    await conn.run_sync(rate_counters.create, checkfirst=True)
    if "last_error_code" not in await conn.run_sync(_column_names, "deliveries"):
        column_type = deliveries.c.last_error_code.type.compile(dialect=conn.dialect)
        await conn.execute(text(f"ALTER TABLE deliveries ADD COLUMN last_error_code {column_type}"))


async def _add_chain(conn: AsyncConnection) -> None:
    """Version 10: the hash chain: ``events.chain_hash``, ``chain_head``, checkpoints, archives.

    The events written before are chained in id order. Their ids are first made consecutive
    (PostgreSQL's sequence leaves gaps after a rollback), since a gap in the chain reads as a
    deleted entry: event ids are no foreign key, only ``lgsp log tail`` cursors held across the
    upgrade see the renumbering.
    """
    if "chain_hash" not in await conn.run_sync(_column_names, "events"):
        column_type = events.c.chain_hash.type.compile(dialect=conn.dialect)
        await conn.execute(text(f"ALTER TABLE events ADD COLUMN chain_hash {column_type}"))
    for table in (chain_head, chain_checkpoints, archives):
        await conn.run_sync(table.create, checkfirst=True)
    if await conn.scalar(select(func.count()).select_from(chain_head)):
        return
    await conn.run_sync(_chain_existing_events)


def _chain_existing_events(sync: Connection) -> None:
    count, top = sync.execute(select(func.count(), func.max(events.c.id))).one()
    if count and top != count:
        numbered = select(
            events.c.id, func.row_number().over(order_by=events.c.id).label("n")
        ).subquery()
        sync.execute(update(events).where(events.c.id == numbered.c.id).values(id=-numbered.c.n))
        sync.execute(update(events).values(id=-events.c.id))
    last_id, last_hash = 0, GENESIS
    while chunk := read_chunk(sync, last_id, BACKFILL_BATCH, check_packages=False):
        hashes = []
        for entry in chunk:
            last_hash = link(last_hash, entry.digest())
            hashes.append({"e_id": entry.id, "e_hash": last_hash})
        sync.execute(
            update(events)
            .where(events.c.id == bindparam("e_id"))
            .values(chain_hash=bindparam("e_hash")),
            hashes,
        )
        last_id = chunk[-1].id
    init_head(sync, last_id, last_hash)


async def _add_directory_tables(conn: AsyncConnection) -> None:
    """Version 11: the participant directory (``participants``, ``directory_version``) and the
    console's failed log-ins (``login_failures``), shared by every process."""
    for table in (participants, directory_version, login_failures):
        await conn.run_sync(table.create, checkfirst=True)


async def _add_inbox_index(conn: AsyncConnection) -> None:
    """Version 12: ``ix_deliveries_inbox``, a mailbox's unacknowledged items (partial)."""
    await conn.run_sync(_create_indexes("ix_deliveries_inbox"))


async def _keep_package_bodies_as_is(conn: AsyncConnection) -> None:
    """Version 13: on PostgreSQL ``packages.data`` is no longer compressed (``STORAGE EXTERNAL``);
    bodies stored before keep their form. Nothing to do on SQLite."""
    await conn.run_sync(keep_package_bodies_as_is)


STEPS: tuple[Step, ...] = (
    Step(1, "create all tables", _create_all),
    Step(2, "documents.subject_folded for subject search", _add_subject_folded),
    Step(3, "national_inbox for the national platform poller", _add_national_inbox),
    Step(4, "search indexes for the admin console", _add_search_indexes),
    Step(5, "console_audit and console_sessions for the web console", _add_console_tables),
    Step(6, "deliveries.received_at, sender and delivery search indexes", _add_delivery_search),
    Step(7, "southbound_replays for the southbound's replay memory", _add_southbound_replays),
    Step(
        8,
        "report_days and console_users for the console, national_inbox.document index",
        _add_console_reports,
    ),
    Step(9, "rate_counters and deliveries.last_error_code", _add_rate_counters),
    Step(10, "the hash chain: events.chain_hash, chain_head, checkpoints, archives", _add_chain),
    Step(
        11,
        "participants, directory_version and login_failures: the directory in the store",
        _add_directory_tables,
    ),
    Step(12, "ix_deliveries_inbox: the mailboxes' unacknowledged items", _add_inbox_index),
    Step(13, "packages.data stored as received on PostgreSQL", _keep_package_bodies_as_is),
)
LATEST = STEPS[-1].version


async def _locked_version(conn: AsyncConnection) -> int:
    """Take the migration lock, then read the recorded version (0 for an empty database)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    await conn.run_sync(schema_version.create, checkfirst=True)
    version = await conn.scalar(select(func.max(schema_version.c.version)))
    return int(version or 0)


async def _advance(conn: AsyncConnection) -> tuple[int, bool]:
    """Apply the next step, if any, inside the caller's transaction: (version now, applied?)."""
    version = await _locked_version(conn)
    if version >= LATEST:
        return version, False
    if version == 0:
        step = Step(LATEST, f"created at version {LATEST}", _create_all)
    else:
        step = STEPS[version]  # STEPS[i] has version i + 1
    await step.apply(conn)
    await conn.execute(
        insert(schema_version).values(
            version=step.version, description=step.description, applied_at=datetime.now(UTC)
        )
    )
    return step.version, True


async def migrate(engine: AsyncEngine) -> int:
    """Bring the database to ``LATEST``, one step per transaction; returns the version reached."""
    applied = True
    version = 0
    while applied:
        async with transaction(engine) as conn:
            version, applied = await _advance(conn)
    if version > LATEST:
        raise ConfigError(
            f"the store is at schema version {version}, newer than this release ({LATEST})",
            code="config.store_schema_newer",
        )
    return version
