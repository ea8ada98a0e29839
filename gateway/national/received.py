"""The national docIds the poller has processed (table ``national_inbox``): none is injected twice.

A row is written after intake recorded the package (or refused it for good) and before the
platform is told ``done``/``fail``; ``acked_at`` is set once ``updateStatus`` was accepted. After a
crash between those steps the platform lists the docId again: the row says what to answer, and the
package is not fetched or injected again. A crash before the row exists costs one more ``getEdoc``,
and intake's deduplication (same sender, DocumentId and bytes) answers with the first record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from adapters.national.protocol import AckStatus
from gateway.store.engine import Engines, create_engines, transaction
from gateway.store.migrations import migrate
from gateway.store.tables import national_inbox


@dataclass(frozen=True, slots=True)
class ProcessedDoc:
    """One national docId the poller has dealt with."""

    doc_id: str
    message_type: str
    outcome: AckStatus
    document: str | None  # the delivery log's document id, when intake recorded it
    detail: str
    processed_at: datetime
    acked_at: datetime | None


def _record(row: Row[Any]) -> ProcessedDoc:
    return ProcessedDoc(
        doc_id=row.doc_id,
        message_type=row.message_type,
        outcome=AckStatus(row.outcome),
        document=row.document,
        detail=row.detail,
        processed_at=row.processed_at,
        acked_at=row.acked_at,
    )


class ReceivedLog:
    """Reads and writes ``national_inbox``. Create it with ``await ReceivedLog.open(url)``."""

    def __init__(self, engines: Engines, *, owns_engines: bool = False) -> None:
        """On the delivery log's engines (already migrated), or on engines of its own."""
        self._engines = engines
        self._owns_engines = owns_engines

    @classmethod
    async def open(cls, url: str) -> ReceivedLog:
        """Connect to the delivery log's database (migrated to the current schema)."""
        engines = create_engines(url)
        try:
            await migrate(engines.writer)
        except BaseException:
            await engines.reader.dispose()
            raise
        return cls(engines, owns_engines=True)

    async def aclose(self) -> None:
        if self._owns_engines:
            await self._engines.reader.dispose()

    async def doc_ids_of(self, document: str) -> list[str]:
        """The national docIds a recorded document arrived under (usually one)."""
        query = select(national_inbox.c.doc_id).where(national_inbox.c.document == document)
        async with transaction(self._engines.reader) as conn:
            return [doc_id for (doc_id,) in await conn.execute(query)]

    async def get(self, doc_id: str) -> ProcessedDoc | None:
        async with transaction(self._engines.reader) as conn:
            row = (
                await conn.execute(select(national_inbox).where(national_inbox.c.doc_id == doc_id))
            ).first()
        return _record(row) if row is not None else None

    async def record(
        self,
        doc_id: str,
        *,
        message_type: str,
        outcome: AckStatus,
        document: str | None,
        detail: str,
    ) -> ProcessedDoc:
        """Remember how ``doc_id`` was processed; the first record of a docId wins."""
        async with transaction(self._engines.writer) as conn:
            dialect_insert = (
                postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            )
            statement = dialect_insert(national_inbox).values(
                doc_id=doc_id,
                message_type=message_type,
                outcome=outcome.value,
                document=document,
                detail=detail,
                processed_at=datetime.now(UTC),
            )
            await conn.execute(statement.on_conflict_do_nothing(index_elements=["doc_id"]))
            row = (
                await conn.execute(select(national_inbox).where(national_inbox.c.doc_id == doc_id))
            ).one()
        return _record(row)

    async def mark_acked(self, doc_id: str) -> None:
        """The platform accepted the ``updateStatus`` for ``doc_id``."""
        async with transaction(self._engines.writer) as conn:
            await conn.execute(
                update(national_inbox)
                .where(national_inbox.c.doc_id == doc_id, national_inbox.c.acked_at.is_(None))
                .values(acked_at=datetime.now(UTC))
            )

    async def count(self) -> int:
        """How many docIds were processed (for tests and the console)."""
        async with transaction(self._engines.reader) as conn:
            found = await conn.scalar(select(func.count()).select_from(national_inbox))
        return int(found or 0)
