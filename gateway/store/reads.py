"""Read-only queries over the delivery log: lookups, the outbox, mailboxes, admin search, tail."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.core.errors import ConflictError, NotFoundError
from gateway.edxml.model import PackageKind
from gateway.store.engine import Engines, transaction
from gateway.store.queries import (
    COUNT_CAP,
    check_page,
    delivery_items,
    delivery_record,
    document_count,
    document_page,
    document_record,
    event_record,
    select_documents,
    utc_now,
)
from gateway.store.records import (
    DeliveryItem,
    DeliveryRecord,
    DeliveryState,
    DocumentFilter,
    DocumentRecord,
    DocumentView,
    EventRecord,
)
from gateway.store.tables import INBOX_ITEM, deliveries, documents, events, packages

# The partial index's own condition, as written in its DDL (``tables.INBOX_ITEM``): values in
# the SQL, not bound, so that ``ix_deliveries_inbox`` (recipient, delivered_at, id) serves a
# mailbox's listing in order, reading its unacknowledged items only (SQLite's planner and a
# generic plan on PostgreSQL use a partial index only for a WHERE that states its condition).
_INBOX_ITEM = text(INBOX_ITEM)


async def _plan_for_these_values(conn: AsyncConnection) -> None:
    """PostgreSQL: plan this search for its own values, never with a cached generic plan.

    The driver prepares statements, and after five runs PostgreSQL may switch to a generic plan
    costed for an average value; search values are skewed (one sender sends a tenth of all
    documents, ``failed`` holds 1% of deliveries) and a generic plan is then 10-100x slower.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


class LogReader:
    """What can be asked of the delivery log without changing it (``DeliveryLog`` extends it)."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    @property
    def engines(self) -> Engines:
        """The store's connection pools, for other tables of the same database (console,
        national inbox): one pool per process, and one SQLite write lock, not one per user."""
        return self._engines

    async def ping(self) -> None:
        """Raise ``UnavailableError`` unless the store answers (for readiness checks)."""
        async with transaction(self._engines.reader) as conn:
            await conn.execute(select(1))

    async def pending_publication(self, older_than_s: float, limit: int) -> list[DeliveryItem]:
        """The outbox: deliveries still ``accepted`` ``older_than_s`` after their last change."""
        check_page(limit)
        cutoff = utc_now() - timedelta(seconds=older_than_s)
        return await self._items(
            select(deliveries)
            .where(
                deliveries.c.state == DeliveryState.ACCEPTED.value,
                deliveries.c.updated_at <= cutoff,
            )
            .order_by(deliveries.c.updated_at, deliveries.c.id)
            .limit(limit)
        )

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        return await self._delivery(deliveries.c.id == delivery_id)

    async def is_delivered(self, delivery_id: str) -> bool:
        record = await self.get_delivery(delivery_id)
        if record is None:
            raise NotFoundError(f"no delivery {delivery_id}", code="not_found.delivery")
        return record.state is DeliveryState.DELIVERED

    async def find_delivery(self, document: str, recipient: str) -> DeliveryRecord | None:
        """The delivery of document ``document`` (its id) to ``recipient``."""
        return await self._delivery(
            deliveries.c.document == document, deliveries.c.recipient == recipient
        )

    async def inbox(self, recipient: str, *, limit: int = 100) -> list[DeliveryItem]:
        """Mailbox deliveries to ``recipient`` stored in the mailbox and not yet acknowledged."""
        check_page(limit)
        return await self._items(
            select(deliveries)
            .where(deliveries.c.recipient == recipient, _INBOX_ITEM)
            .order_by(deliveries.c.delivered_at, deliveries.c.id)
            .limit(limit)
        )

    async def find_document(
        self, sender: str, document_id: str, kind: PackageKind = PackageKind.DOCUMENT
    ) -> DocumentRecord | None:
        """The first-received document from ``sender`` with that edXML DocumentId."""
        async with transaction(self._engines.reader) as conn:
            row = (
                await conn.execute(
                    select_documents()
                    .where(
                        documents.c.sender == sender,
                        documents.c.document_id == document_id,
                        documents.c.kind == kind.value,
                    )
                    .order_by(documents.c.received_at, documents.c.id)
                    .limit(1)
                )
            ).first()
        return document_record(row) if row is not None else None

    async def get_document(self, id: str) -> DocumentView | None:
        async with transaction(self._engines.reader) as conn:
            row = (await conn.execute(select_documents().where(documents.c.id == id))).first()
            if row is None:
                return None
            # Deliveries before events: events are append-only, so under READ COMMITTED the trail
            # read second holds at least every event behind the states read first.
            deliveries_now = await self._deliveries_of(conn, id)
            trail = await conn.execute(
                select(events).where(events.c.document == id).order_by(events.c.id)
            )
            return DocumentView(
                document_record(row), deliveries_now, tuple(map(event_record, trail))
            )

    async def find_view(self, given: str) -> DocumentView:
        """The document whose log id, else whose edXML DocumentId, is ``given``. A DocumentId
        that several records share (a document and the statuses answering it, or two senders)
        names the document if there is one, else is refused listing their ids."""
        view = await self.get_document(given)
        if view is not None:
            return view
        records = await self.list_documents(DocumentFilter(document_id=given, limit=20))
        documents = [r for r in records if r.kind is PackageKind.DOCUMENT]
        chosen = documents if len(documents) == 1 else records
        if len(chosen) == 1:
            found = await self.get_document(chosen[0].id)
            if found is not None:
                return found
        if not records:
            raise NotFoundError(
                f"no document {given} in the delivery log (neither a record id nor "
                "a DocumentId); `lgsp log list` lists them",
                code="not_found.document",
            )
        listed = ", ".join(f"{r.id} ({r.kind.value} from {r.sender})" for r in records)
        raise ConflictError(
            f"DocumentId {given} names {len(records)} records: {listed}; give one of these ids",
            code="conflict.ambiguous_document",
        )

    async def get_package(self, sha256: str) -> bytes:
        async with transaction(self._engines.reader) as conn:
            data = await conn.scalar(select(packages.c.data).where(packages.c.sha256 == sha256))
        if data is None:
            raise NotFoundError(f"no package {sha256}", code="not_found.package")
        return bytes(data)

    async def list_documents(self, f: DocumentFilter) -> list[DocumentRecord]:
        """Documents matching ``f``, newest first, one page (``f.limit`` from ``f.offset``)."""
        check_page(f.limit, f.offset)
        async with transaction(self._engines.reader) as conn:
            await _plan_for_these_values(conn)
            return [document_record(row) for row in await conn.execute(document_page(f))]

    async def count_documents(self, f: DocumentFilter, *, cap: int | None = COUNT_CAP) -> int:
        """How many documents match ``f`` (ignoring its page), counted up to ``cap``.

        A result equal to ``cap`` reads "``cap`` or more" (show it as "10000+"); ``cap=None``
        counts them all, which reads most of the table for a broad filter at a million rows.
        """
        async with transaction(self._engines.reader) as conn:
            await _plan_for_these_values(conn)
            return int(await conn.scalar(document_count(f, cap)) or 0)

    async def latest_events(self, limit: int = 100) -> list[EventRecord]:
        """The last ``limit`` events of the whole log, oldest first (``lgsp log tail``)."""
        if limit <= 0:
            return []
        async with transaction(self._engines.reader) as conn:
            result = await conn.execute(select(events).order_by(events.c.id.desc()).limit(limit))
            return [event_record(row) for row in reversed(result.all())]

    async def tail(self, after_event_id: int = 0, limit: int = 100) -> list[EventRecord]:
        """Events after ``after_event_id``, oldest first (for ``lgsp log tail``)."""
        check_page(limit)
        async with transaction(self._engines.reader) as conn:
            result = await conn.execute(
                select(events)
                .where(events.c.id > after_event_id)
                .order_by(events.c.id)
                .limit(limit)
            )
            return [event_record(row) for row in result]

    async def dead_letters(
        self, *, recipient: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeliveryItem]:
        """Dead-lettered deliveries, most recently given up first."""
        check_page(limit, offset)
        query = select(deliveries).where(deliveries.c.state == DeliveryState.DEAD_LETTERED.value)
        if recipient is not None:
            query = query.where(deliveries.c.recipient == recipient)
        return await self._items(
            query.order_by(deliveries.c.updated_at.desc(), deliveries.c.id)
            .limit(limit)
            .offset(offset)
        )

    async def _delivery(self, *where: ColumnElement[bool]) -> DeliveryRecord | None:
        async with transaction(self._engines.reader) as conn:
            row = (await conn.execute(select(deliveries).where(*where))).first()
        return delivery_record(row) if row is not None else None

    async def _items(self, query: Select[Any]) -> list[DeliveryItem]:
        """The deliveries ``query`` selects, each with its document."""
        async with transaction(self._engines.reader) as conn:
            return await delivery_items(conn, (await conn.execute(query)).all())

    async def _deliveries_of(
        self, conn: AsyncConnection, document: str
    ) -> tuple[DeliveryRecord, ...]:
        result = await conn.execute(
            select(deliveries)
            .where(deliveries.c.document == document)
            .order_by(deliveries.c.created_at, deliveries.c.recipient)
        )
        return tuple(map(delivery_record, result))
