"""The national docIds the poller has processed (table ``national_inbox``): none is injected twice.

A row is written with the document, in intake's own transaction (``NationalDoc``; or, for a
package refused for good, by ``record_many`` after the refusal), and before the platform is told
``done``/``fail``; ``acked_at`` is set once ``updateStatus`` was accepted. After a
crash between those steps the platform lists the docId again: the row says what to answer, and the
package is not fetched or injected again. A crash before the row exists costs one more ``getEdoc``,
and intake's deduplication (same sender, DocumentId and bytes) answers with the first record.

Each call takes many docIds at once (one statement, one transaction), so that the poller's
concurrent docIds share their reads and writes (``get_many``, ``record_many``,
``mark_acked_many``); the single-docId calls are the same with one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


@dataclass(frozen=True, slots=True)
class NewProcessedDoc:
    """How a docId was processed, to be recorded (``processed_at`` is the time of the write)."""

    doc_id: str
    message_type: str
    outcome: AckStatus
    document: str | None
    detail: str


MAX_IDS_PER_STATEMENT = 500  # docIds bound in one IN (…) or multi-row INSERT


def _chunks(doc_ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(doc_ids), MAX_IDS_PER_STATEMENT):
        yield doc_ids[start : start + MAX_IDS_PER_STATEMENT]


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
        return (await self.get_many([doc_id])).get(doc_id)

    async def get_many(self, doc_ids: Sequence[str]) -> dict[str, ProcessedDoc]:
        """The rows of those of ``doc_ids`` that were processed, by docId (one read)."""
        found: dict[str, ProcessedDoc] = {}
        async with transaction(self._engines.reader) as conn:
            for chunk in _chunks(list(dict.fromkeys(doc_ids))):
                query = select(national_inbox).where(national_inbox.c.doc_id.in_(chunk))
                found.update((row.doc_id, _record(row)) for row in await conn.execute(query))
        return found

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
        entry = NewProcessedDoc(doc_id, message_type, outcome, document, detail)
        [recorded] = await self.record_many([entry])
        return recorded

    async def record_many(self, entries: Sequence[NewProcessedDoc]) -> list[ProcessedDoc]:
        """Remember each entry (one transaction); the first record of a docId wins, and the row
        each docId has afterwards is returned, in the order of ``entries``."""
        if not entries:
            return []
        now = datetime.now(UTC)
        values = {  # the first entry of a docId repeated in ``entries`` wins too
            e.doc_id: {
                "doc_id": e.doc_id,
                "message_type": e.message_type,
                "outcome": e.outcome.value,
                "document": e.document,
                "detail": e.detail,
                "processed_at": now,
            }
            for e in reversed(entries)
        }
        rows: dict[str, ProcessedDoc] = {}
        async with transaction(self._engines.writer) as conn:
            dialect_insert = (
                postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            )
            for chunk in _chunks(sorted(values)):  # in key order: concurrent writers agree
                statement = dialect_insert(national_inbox).values([values[d] for d in chunk])
                await conn.execute(statement.on_conflict_do_nothing(index_elements=["doc_id"]))
                query = select(national_inbox).where(national_inbox.c.doc_id.in_(chunk))
                rows.update((row.doc_id, _record(row)) for row in await conn.execute(query))
        return [rows[e.doc_id] for e in entries]

    async def mark_acked(self, doc_id: str) -> None:
        """The platform accepted the ``updateStatus`` for ``doc_id``."""
        await self.mark_acked_many([doc_id])

    async def mark_acked_many(self, doc_ids: Sequence[str]) -> list[None]:
        """The platform accepted the ``updateStatus`` of each of ``doc_ids`` (one transaction;
        one ``None`` per docId, for the poller's batcher)."""
        if doc_ids:
            now = datetime.now(UTC)
            async with transaction(self._engines.writer) as conn:
                for chunk in _chunks(sorted(set(doc_ids))):
                    await conn.execute(
                        update(national_inbox)
                        .where(
                            national_inbox.c.doc_id.in_(chunk), national_inbox.c.acked_at.is_(None)
                        )
                        .values(acked_at=now)
                    )
        return [None] * len(doc_ids)

    async def count(self) -> int:
        """How many docIds were processed (for tests and the console)."""
        async with transaction(self._engines.reader) as conn:
            found = await conn.scalar(select(func.count()).select_from(national_inbox))
        return int(found or 0)
