"""``lgsp archive retain``: move the documents of whole months older than ``[archive]
retain_days`` out of the hot store into one archive file per month, verification intact.

A month's documents go with the status packages answering them (whatever their month: a status
row refers to its original), their deliveries, packages and every chain entry about them. The
file is written first (``archive_files``), then, in one transaction holding the chain's head
(no entry can be appended meanwhile), the store checks that no entry about them was added since,
deletes their rows and records the file's SHA-256 in ``archives``. The chain's entries stay in
order: ``lgsp archive verify`` merges the file's entries with the store's. Months are archived
oldest first, each once; a month's last entries get a checkpoint first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import (
    CompoundSelect,
    Connection,
    delete,
    exists,
    func,
    insert,
    select,
    union,
    update,
)

from gateway.core.errors import ConflictError
from gateway.evidence.archive_files import ArchiveContent, Written, archive_path, write_archive
from gateway.evidence.checkpoints import Checkpointer
from gateway.signatures.identity import Identity
from gateway.store import DeliveryLog
from gateway.store.chain import read_head
from gateway.store.chain_read import StoredEntry, read_entries
from gateway.store.engine import transaction
from gateway.store.tables import (
    archives,
    chain_checkpoints,
    deliveries,
    documents,
    events,
    national_inbox,
    packages,
)

log = structlog.get_logger(__name__)
CHUNK = 2000
Family = CompoundSelect[Any]  # ``_family``: the ids of a month's documents and of their answers
_REFERENCE_PAGE = 20_000  # documents read per statement by ``_still_referenced``


@dataclass(frozen=True, slots=True)
class Archived:
    period: str
    path: Path
    written: Written


def month_bounds(period: str) -> tuple[datetime, datetime]:
    year, month = (int(part) for part in period.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _family(start: datetime, end: datetime) -> Family:
    """The ids of a month's documents and of the status packages answering them.

    A UNION of the two, not ``id IN (month) OR in_reply_to IN (month)``: each branch is then
    served by its index ((received_at, id), then in_reply_to), where PostgreSQL read the whole
    of ``documents`` for the OR, in every statement about the family.
    """
    in_month = select(documents.c.id).where(
        documents.c.received_at >= start, documents.c.received_at < end
    )
    return union(in_month, select(documents.c.id).where(documents.c.in_reply_to.in_(in_month)))


class Retainer:
    """Archives whole months of one store into ``<archive dir>/archives``."""

    def __init__(
        self, log: DeliveryLog, identity: Identity, checkpointer: Checkpointer, archive_dir: Path
    ) -> None:
        self._log = log
        self._identity = identity
        self._checkpointer = checkpointer
        self._archive_dir = archive_dir

    async def retain(self, before: datetime) -> list[Archived]:
        """Archive every month that ended at or before ``before`` and is still in the store."""
        done: list[Archived] = []
        async with transaction(self._log.engines.reader) as conn:
            periods = await conn.run_sync(_periods, before)
        for period in periods:
            done.append(await self._archive(period))
        return done

    async def _archive(self, period: str) -> Archived:
        start, end = month_bounds(period)
        family = _family(start, end)
        async with transaction(self._log.engines.reader) as conn:
            covered = await conn.run_sync(_covered, family)
        if not covered:
            await self._checkpointer.checkpoint()
        path = archive_path(self._archive_dir, period)
        async with transaction(self._log.engines.reader) as conn:
            written = await conn.run_sync(self._write, period, family, path)
        try:
            async with transaction(self._log.engines.writer) as conn:
                await conn.run_sync(_move_out, period, family, path.name, written)
        except BaseException:
            path.unlink(missing_ok=True)  # the store still has it all: no file without its row
            raise
        log.info("archived", period=period, documents=written.documents, events=written.entries)
        return Archived(period, path, written)

    def _write(self, sync: Connection, period: str, family: Family, path: Path) -> Written:
        content = ArchiveContent(
            period,
            _entries_of(sync, family),
            _rows_of(sync, family),
            _packages_of(sync, family),
        )
        return write_archive(path, content, self._identity)


def _periods(sync: Connection, before: datetime) -> list[str]:
    """Months with documents, ended at or before ``before``, not archived yet, oldest first."""
    done = set(sync.execute(select(archives.c.period)).scalars())
    first = sync.scalar(select(func.min(documents.c.received_at)))
    periods: list[str] = []
    if first is None:
        return periods
    year, month = first.year, first.month
    while True:
        period = f"{year:04d}-{month:02d}"
        start, end = month_bounds(period)
        if end > before:
            return periods
        # a month's family exists if and only if the month has documents (the statuses answer
        # them): the (received_at, id) index answers that, where the family's OR of two INs is a
        # scan of documents on PostgreSQL, for each month since the first
        in_month = documents.c.received_at >= start, documents.c.received_at < end
        if period not in done and sync.scalar(select(exists().where(*in_month))):
            periods.append(period)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _covered(sync: Connection, family: Family) -> bool:
    """Whether a checkpoint covers every entry about ``family``."""
    last = sync.scalar(select(func.max(events.c.id)).where(events.c.document.in_(family)))
    # the latest checkpoint only (its primary key's last entry), not every one of them
    latest = sync.scalar(select(func.max(chain_checkpoints.c.seq)))
    return last is None or (latest is not None and latest >= last)


def _entries_of(sync: Connection, family: Family) -> Iterator[StoredEntry]:
    after = 0
    while True:
        query = (
            select(events)
            .where(events.c.document.in_(family), events.c.id > after)
            .order_by(events.c.id)
            .limit(CHUNK)
        )
        chunk = read_entries(sync, query, False)
        if not chunk:
            return
        yield from chunk
        after = chunk[-1].id


def _rows_of(sync: Connection, family: Family) -> Iterator[dict[str, object]]:
    """The documents' rows, each with its deliveries' rows, a chunk at a time."""
    listed = family.subquery()
    ids = list(sync.execute(select(listed.c.id).order_by(listed.c.id)).scalars())
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        theirs: dict[str, list[dict[str, object]]] = {}
        for row in sync.execute(select(deliveries).where(deliveries.c.document.in_(chunk))):
            theirs.setdefault(row.document, []).append(dict(row._mapping))
        docs = select(documents).where(documents.c.id.in_(chunk)).order_by(documents.c.id)
        for doc in sync.execute(docs).mappings():
            yield {**doc, "deliveries": theirs.get(doc["id"], [])}


def _packages_of(sync: Connection, family: Family) -> Iterator[tuple[str, bytes]]:
    shas = sorted(
        set(
            sync.execute(
                select(documents.c.package_sha256).where(documents.c.id.in_(family))
            ).scalars()
        )
    )
    for start in range(0, len(shas), 32):
        batch = select(packages.c.sha256, packages.c.data).where(
            packages.c.sha256.in_(shas[start : start + 32])
        )
        for sha, data in sync.execute(batch.order_by(packages.c.sha256)):
            yield sha, bytes(data)


def _move_out(sync: Connection, period: str, family: Family, file: str, written: Written) -> None:
    """Delete what the file now holds; refused if an entry about it was appended meanwhile."""
    read_head(sync, lock=True)  # no appends until this commits
    count, last = sync.execute(
        select(func.count(), func.max(events.c.id)).where(events.c.document.in_(family))
    ).one()
    if (count, last or 0) != (written.entries, written.last_id):
        raise ConflictError(
            f"entries about {period} were added while it was archived; run it again",
            code="conflict.archive_changed",
        )
    answers_first = (
        select(documents.c.id)
        .where(documents.c.id.in_(family))
        .order_by(documents.c.in_reply_to.is_(None), documents.c.id)
    )
    doomed = list(sync.execute(answers_first).scalars())
    shas = set(
        sync.execute(select(documents.c.package_sha256).where(documents.c.id.in_(family))).scalars()
    )
    for start in range(0, len(doomed), CHUNK):
        ids = doomed[start : start + CHUNK]
        sync.execute(delete(events).where(events.c.document.in_(ids)))
        sync.execute(delete(deliveries).where(deliveries.c.document.in_(ids)))
        sync.execute(
            update(national_inbox).where(national_inbox.c.document.in_(ids)).values(document=None)
        )
    for start in range(0, len(doomed), CHUNK):  # answers before originals: in_reply_to
        ids = doomed[start : start + CHUNK]
        sync.execute(delete(documents).where(documents.c.id.in_(ids)))
    unreferenced = sorted(shas - _still_referenced(sync, shas))
    for start in range(0, len(unreferenced), CHUNK):
        sync.execute(
            delete(packages).where(packages.c.sha256.in_(unreferenced[start : start + CHUNK]))
        )
    sync.execute(
        insert(archives).values(
            period=period,
            file=file,
            sha256=written.sha256,
            documents=written.documents,
            events=written.entries,
            created_at=datetime.now(UTC),
        )
    )


def _still_referenced(sync: Connection, shas: set[str]) -> set[str]:
    """Those of ``shas`` that a document left in the store refers to (the same bytes received
    again, in another month).

    ``documents`` has no index on ``package_sha256`` (every intake would write one, for this
    monthly job), so this is one pass over the documents left, a page of their primary key at a
    time. It replaces a ``NOT EXISTS`` over every package of the store, which SQLite ran as a
    scan of ``documents`` per package (quadratic in the store's size).
    """
    found: set[str] = set()
    after = ""
    while len(found) < len(shas):  # done once every one is known to be referenced
        page = sync.execute(
            select(documents.c.id, documents.c.package_sha256)
            .where(documents.c.id > after)
            .order_by(documents.c.id)
            .limit(_REFERENCE_PAGE)
        ).all()
        if not page:
            break
        found.update(sha for _id, sha in page if sha in shas)
        after = page[-1].id
    return found
