"""Reading the hash chain back, a chunk of entries at a time, with what each entry covers.

``read_chunk`` returns the events after an id in chain order, each with the records its digest
covers as they are *now* in the store (a ``received`` event: its document, deliveries and package
size) and whether its package's bytes still hash to the recorded SHA-256. The verifier
(``gateway.evidence``) recomputes the chain from them; the migration that introduced the chain
uses it to chain the events written before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, select

from gateway.store.chain import RECEIVED, covered_record, entry_digest
from gateway.store.tables import chain_checkpoints, deliveries, documents, events, packages

PACKAGE_BATCH = 32  # package rows hashed per statement (a package may be up to 64 MiB)


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One event as stored, with its covered records; ``flaw`` names a covered record that is
    missing or whose bytes no longer match (the chain hash alone does not see package bytes)."""

    row: Mapping[Any, Any]
    covered: Sequence[object] | None
    flaw: str | None = None

    @property
    def id(self) -> int:
        return int(self.row["id"])

    @property
    def stored_hash(self) -> str | None:
        value = self.row["chain_hash"]
        return str(value) if value is not None else None

    @property
    def document(self) -> str:
        return str(self.row["document"])

    def digest(self, at_id: int | None = None) -> str:
        """Its digest; with ``at_id``, as if it stood at that place of the chain."""
        row = self.row if at_id is None else {**self.row, "id": at_id}
        return entry_digest(row, self.covered)

    def describe(self) -> str:
        kind, doc = self.row["kind"], self.row["document"]
        delivery = self.row["delivery"]
        where = f"delivery {delivery} of document {doc}" if delivery else f"document {doc}"
        at = self.row["at"]  # a datetime from the store, an ISO string from an archive file
        shown = at.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(at, datetime) else str(at)
        return f"event {self.id} ({kind}, {where}, at {shown})"


def read_chunk(
    conn: Connection, after_id: int, limit: int, *, check_packages: bool = True
) -> list[StoredEntry]:
    """Up to ``limit`` entries with an id above ``after_id``, in chain order."""
    query = select(events).where(events.c.id > after_id).order_by(events.c.id).limit(limit)
    return read_entries(conn, query, check_packages)


def read_events_of(conn: Connection, document_ids: Iterable[str]) -> list[StoredEntry]:
    """Every entry about these documents, in chain order, with what each covers."""
    wanted = sorted(set(document_ids))
    query = select(events).where(events.c.document.in_(wanted)).order_by(events.c.id)
    return read_entries(conn, query, True)


def read_entries(conn: Connection, query: Select[Any], check_packages: bool) -> list[StoredEntry]:
    rows = conn.execute(query).mappings().all()
    covered, flaws = covered_now(
        conn, [str(r["document"]) for r in rows if r["kind"] == RECEIVED], check_packages
    )
    return [
        StoredEntry(
            row,
            covered.get(str(row["document"])) if row["kind"] == RECEIVED else None,
            flaws.get(str(row["document"])) if row["kind"] == RECEIVED else None,
        )
        for row in rows
    ]


def covered_now(
    conn: Connection, document_ids: Iterable[str], check_packages: bool
) -> tuple[dict[str, Sequence[object]], dict[str, str]]:
    """The covered records of these documents as stored now, and the flaws found in them."""
    wanted = sorted(set(document_ids))
    if not wanted:
        return {}, {}
    docs = {
        row["id"]: row
        for row in conn.execute(
            select(documents, packages.c.size_bytes)
            .outerjoin(packages, packages.c.sha256 == documents.c.package_sha256)
            .where(documents.c.id.in_(wanted))
        ).mappings()
    }
    by_document: dict[str, list[Mapping[Any, Any]]] = {}
    for row in conn.execute(
        select(
            deliveries.c.id,
            deliveries.c.document,
            deliveries.c.recipient,
            deliveries.c.method,
            deliveries.c.created_at,
        ).where(deliveries.c.document.in_(list(docs)))
    ).mappings():
        by_document.setdefault(row["document"], []).append(row)
    flaws = {doc_id: "its document row is missing" for doc_id in wanted if doc_id not in docs}
    covered: dict[str, Sequence[object]] = {}
    for doc_id, doc in docs.items():
        if doc["size_bytes"] is None:
            flaws[doc_id] = f"its package {doc['package_sha256']} is missing"
        covered[doc_id] = covered_record(doc, by_document.get(doc_id, ()), doc["size_bytes"] or 0)
    if check_packages:
        bad = bad_packages(conn, {d["package_sha256"] for d in docs.values() if d["size_bytes"]})
        for doc_id, doc in docs.items():
            if doc["package_sha256"] in bad:
                flaws[doc_id] = bad[doc["package_sha256"]]
    return covered, flaws


def bad_packages(conn: Connection, sha256s: set[str]) -> dict[str, str]:
    """The packages among ``sha256s`` whose stored bytes do not hash to their key or size."""
    bad: dict[str, str] = {}
    ordered = sorted(sha256s)
    for start in range(0, len(ordered), PACKAGE_BATCH):
        batch = ordered[start : start + PACKAGE_BATCH]
        for row in conn.execute(
            select(packages.c.sha256, packages.c.size_bytes, packages.c.data).where(
                packages.c.sha256.in_(batch)
            )
        ):
            data = bytes(row.data)
            if hashlib.sha256(data).hexdigest() != row.sha256 or len(data) != row.size_bytes:
                bad[row.sha256] = f"its package {row.sha256} no longer hashes to its SHA-256"
    return bad


def unchained_documents(conn: Connection, limit: int = 10) -> list[str]:
    """Documents with no ``received`` event: rows written outside the chain."""
    received = select(events.c.id).where(
        events.c.document == documents.c.id, events.c.kind == RECEIVED
    )
    return list(
        conn.execute(
            select(documents.c.id).where(~received.exists()).order_by(documents.c.id).limit(limit)
        ).scalars()
    )


def checkpoint_rows(conn: Connection) -> list[dict[str, Any]]:
    """Every checkpoint, oldest first."""
    return [
        row._asdict()
        for row in conn.execute(select(chain_checkpoints).order_by(chain_checkpoints.c.seq))
    ]
