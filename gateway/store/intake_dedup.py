"""An intake batch's dedup: the keys recorded already, the new documents' INSERT, the recorded
ones read back, and what a resubmission is told.

Step 3 of ``intake_batch.write_batch``. On PostgreSQL the documents' ``INSERT … ON CONFLICT
(dedup_key) DO NOTHING RETURNING dedup_key`` tells which keys are new, in the INSERT's own hop.
On SQLite the keys already recorded are read with the transaction's first hop (``Present``): its
writer holds the write lock from ``BEGIN IMMEDIATE``, so no other writer can add one before the
COMMIT, and the new documents are a plain INSERT sent with the COMMIT (a status batch is two
hops, not three). The unique key stays the authority: a key that read missed fails the INSERT,
the batch fails as a whole, and ``group_commit`` retries it request by request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, exists, insert, select

from gateway.core.errors import ConflictError, LgspError
from gateway.store.driver_statements import DriverStatement
from gateway.store.queries import delivery_record, document_record, select_documents
from gateway.store.records import IntakeResult, IntakeWrite, Outcome
from gateway.store.sqlite_driver import pipelined, prefetched
from gateway.store.tables import deliveries, documents, packages
from gateway.store.upsert import by_dialect, for_dialect

_INSERT_DOCUMENTS = by_dialect(
    lambda dialect_insert: DriverStatement(
        dialect_insert(documents)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(documents.c.dedup_key)
    )
)
# SQLite: the batch's keys already recorded, read with the transaction's first hop (step 3), and
# the new documents sent with the COMMIT (a plain INSERT: a key already there fails it)
_KEYS_PRESENT = select(documents.c.dedup_key).where(
    documents.c.dedup_key.in_(bindparam("keys", expanding=True))
)
_PRESENT = DriverStatement(prefetched(_KEYS_PRESENT), keep=True)
# read now, in a hop of its own (unmarked: through SQLAlchemy too it runs, not queues)
_PRESENT_NOW = DriverStatement(_KEYS_PRESENT)
_INSERT_NEW_DOCUMENTS = DriverStatement(pipelined(insert(documents)))


@dataclass(frozen=True, slots=True)
class Present:
    """SQLite's read of the batch's keys already recorded (step 3), sent with the first hop."""

    row: dict[str, Any]
    queued: bool  # prefetched: a hop (the status packages' read) takes it along

    @classmethod
    def ahead(cls, conn: Connection, keys: list[str], *, with_answers: bool) -> Present | None:
        """Queue the read where a hop of step 1 will carry it (``None`` off SQLite)."""
        if conn.dialect.name != "sqlite" or not keys:
            return None
        row = {"keys": keys}
        return cls(row, with_answers and _PRESENT.queue(conn, [row]))

    def read(self, conn: Connection) -> set[str]:
        kept = _PRESENT.kept_rows(conn, self.row) if self.queued else None
        rows = kept if kept is not None else _PRESENT_NOW.fetch(conn, [self.row])
        return {row[0] for row in rows}


def insert_documents(
    conn: Connection, docs: Iterable[dict[str, object]], present: set[str] | None
) -> set[str]:
    """Insert the documents (``_document_row``s) whose key is new; return the keys inserted.
    With ``present`` (SQLite: the keys there already, read under the write lock) the new ones
    go with the COMMIT; else the INSERT's RETURNING tells them."""
    rows = sorted(docs, key=lambda r: str(r["dedup_key"]))
    if not rows:
        return set()
    if present is not None:
        new = [r for r in rows if r["dedup_key"] not in present]
        if new:
            _INSERT_NEW_DOCUMENTS.execute(conn, new)
        return {str(r["dedup_key"]) for r in new}
    return {row[0] for row in for_dialect(conn, _INSERT_DOCUMENTS).fetch(conn, rows)}


def known(conn: Connection, writes: Sequence[IntakeWrite]) -> dict[str, IntakeResult]:
    """The recorded documents (and their deliveries) under the keys of ``writes``."""
    if not writes:
        return {}
    keys = sorted({w.new.dedup_key for w in writes})
    docs = [
        document_record(r)
        for r in conn.execute(select_documents().where(documents.c.dedup_key.in_(keys)))
    ]
    rows = (
        conn.execute(
            select(deliveries)
            .where(deliveries.c.document.in_([d.id for d in docs]))
            .order_by(deliveries.c.created_at, deliveries.c.recipient)
        ).all()
        if docs
        else []
    )
    return {
        d.dedup_key: IntakeResult(
            False, d, tuple(delivery_record(r) for r in rows if r.document == d.id)
        )
        for d in docs
    }


def forget_orphans(conn: Connection, shas: set[str]) -> None:
    """Delete package rows that only a refused (conflicting) request had brought."""
    conn.execute(
        delete(packages).where(
            packages.c.sha256.in_(sorted(shas)),
            ~exists().where(documents.c.package_sha256 == packages.c.sha256),
        )
    )


def resubmitted(outcome: Outcome, write: IntakeWrite) -> Outcome:
    """What a resubmission of an already recorded key is told: the records, or a conflict."""
    if isinstance(outcome, LgspError):
        return outcome
    document = outcome.document
    if document.package_sha256 != write.sha256:
        return ConflictError(
            f"document {write.new.dedup_key!r} was already accepted as {document.id} with other "
            "content",
            code="conflict.duplicate_document",
        )
    return IntakeResult(False, document, outcome.deliveries)
