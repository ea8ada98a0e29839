"""The hash chain over the delivery log: every event is appended with a hash of its content and of
the previous event's hash, in one order per store.

**Order.** An event's id *is* its place in the chain: ids are assigned here, consecutively, from
the ``chain_head`` row, inside the transaction that writes the events. The head row is read
``FOR UPDATE`` (PostgreSQL; on SQLite the write transaction is already the store's only writer),
so every process appends after the last committed event, and nothing else is ever waited for
once the head is held: each writer appends its events last, after its own row locks (which are
``FOR NO KEY UPDATE``, so the foreign-key checks of the inserted events never wait on them). A
writer that changes several deliveries locks them first, in one statement, in id order
(``queries.lock_deliveries``), so writers never wait on each other in a cycle.

**Content.** An entry's digest covers the event's columns (``EVENT_FIELDS``, its id included); a
``received`` event also covers the document it records (``DOCUMENT_FIELDS``), the immutable part
of the deliveries created with it (``DELIVERY_FIELDS``) and its package's SHA-256 and size. The
field lists are pinned here (version ``CHAIN_VERSION``): a column added later is not covered until
a new version says so, and old entries keep verifying. The mutable columns of a delivery (state,
attempts, business status) are a cache of its events; the events are the evidence.

``hash(n) = SHA-256(hash(n-1) || digest(n))`` with ``hash(0) = GENESIS``; both hex in the store.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from gateway.core.errors import ServiceError
from gateway.store.driver_statements import DriverStatement
from gateway.store.records import EventKind
from gateway.store.sqlite_driver import pipelined, prefetched
from gateway.store.tables import chain_head, events

CHAIN_VERSION = 1
GENESIS = "0" * 64
_DOMAIN = b"lgsp-chain-v1\n"

EVENT_FIELDS = ("id", "document", "delivery", "at", "kind", "outcome", "detail", "actor")
DOCUMENT_FIELDS = (
    "id",
    "dedup_key",
    "kind",
    "sender",
    "document_id",
    "business_doc_type",
    "status_code",
    "subject",
    "subject_folded",
    "package_sha256",
    "format",
    "signer_fingerprint",
    "signer_subject",
    "algorithm",
    "caller",
    "received_at",
    "in_reply_to",
)
DELIVERY_FIELDS = ("id", "recipient", "method", "created_at")
RECEIVED = EventKind.RECEIVED.value


def canonical_value(value: object) -> object:
    """A column value as the chain reads it: datetimes as UTC ISO 8601, the rest as they are."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def _pick(row: Mapping[Any, Any], names: Sequence[str]) -> list[object]:
    values = [row[name] for name in names]  # inlined canonical_value: the hot path of every write
    return [v.astimezone(UTC).isoformat() if isinstance(v, datetime) else v for v in values]


def covered_record(
    document: Mapping[Any, Any], deliveries: Iterable[Mapping[Any, Any]], package_size: int
) -> list[object]:
    """What a ``received`` entry covers besides the event: the document row, the immutable
    columns of its deliveries (by recipient), its package's SHA-256 and size."""
    return [
        _pick(document, DOCUMENT_FIELDS),
        sorted((_pick(d, DELIVERY_FIELDS) for d in deliveries), key=lambda d: str(d[1])),
        [document["package_sha256"], package_size],
    ]


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def entry_content(event: Mapping[Any, Any], covered: Sequence[object] | None) -> bytes:
    """The canonical bytes an entry's digest is taken over: compact UTF-8 JSON of
    ``[version, event values, covered records or null]``, values in the pinned field order."""
    return _ENCODE([CHAIN_VERSION, _pick(event, EVENT_FIELDS), covered]).encode()


def entry_digest(event: Mapping[Any, Any], covered: Sequence[object] | None = None) -> str:
    """The hex SHA-256 of an entry's content (``covered``: a received event's records)."""
    return hashlib.sha256(_DOMAIN + entry_content(event, covered)).hexdigest()


def link(previous_hash: str, digest: str) -> str:
    """The chain hash of an entry: SHA-256 over the previous hash and its digest (raw bytes)."""
    return hashlib.sha256(bytes.fromhex(previous_hash) + bytes.fromhex(digest)).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last entry appended: its id (0 for an empty chain) and hash; ``store_id`` names the
    store in checkpoints and bundles."""

    last_id: int
    hash: str
    store_id: str


def init_head(conn: Connection, last_id: int = 0, last_hash: str = GENESIS) -> None:
    """Create the head row of a store (at migration), with a new random store id."""
    conn.execute(
        insert(chain_head).values(id=1, last_id=last_id, hash=last_hash, store_id=str(uuid.uuid4()))
    )


# The statements of every append, built once (a statement object keeps its compiled form's cache
# key: building them per transaction cost more Python than running them).
_HEAD = select(chain_head.c.last_id, chain_head.c.hash, chain_head.c.store_id).where(
    chain_head.c.id == 1
)
_HEAD_LOCKED = _HEAD.with_for_update()
# the same SQL and parameters as ``read_head``'s; queued on the driver (``driver_statements``)
_HEAD_PREFETCHED = DriverStatement(prefetched(_HEAD_LOCKED), keep=True)
_INSERT_EVENTS = DriverStatement(pipelined(insert(events)))  # sent with the COMMIT on SQLite
_MOVE_HEAD = DriverStatement(
    pipelined(
        update(chain_head)
        .where(chain_head.c.id == 1)
        .values(last_id=bindparam("new_last_id"), hash=bindparam("new_hash"))
    )
)


def prefetch_head(conn: Connection) -> None:
    """On SQLite, read the head with the write transaction's next hop, so that ``append_events``
    needs no hop of its own for it (nothing but ``append_events`` moves the head, and only in
    that transaction, after its read). Elsewhere nothing: PostgreSQL reads it locked, in turn."""
    if conn.dialect.name == "sqlite":
        _HEAD_PREFETCHED.execute(conn)


def read_head(conn: Connection, *, lock: bool = False) -> ChainHead:
    kept = _HEAD_PREFETCHED.kept_rows(conn) if lock else None
    if kept is not None and len(kept) == 1:  # prefetched with this transaction's first hop
        last_id, last_hash, store_id = kept[0]
        return ChainHead(int(last_id), last_hash, store_id)
    row = conn.execute(_HEAD_LOCKED if lock else _HEAD).one()
    return ChainHead(int(row.last_id), row.hash, row.store_id)


def append_events(
    conn: Connection,
    rows: Sequence[dict[str, Any]],
    covered: Mapping[str, Sequence[object]] | None = None,
) -> None:
    """Insert ``rows`` (``events`` values without id) at the end of the chain, in their order.

    ``covered`` maps a document id to its ``covered_record``, for the ``received`` events among
    ``rows``. Call it last in the write transaction: it holds the head until the commit.
    """
    if not rows:
        return
    head = read_head(conn, lock=True)
    last_id, last_hash = head.last_id, head.hash
    for row in rows:
        last_id += 1
        row["id"] = last_id
        cover = None
        if row["kind"] == RECEIVED:
            cover = (covered or {}).get(str(row["document"]))
            if cover is None:
                raise ServiceError(
                    f"a received event of {row['document']} without its records", code="store.error"
                )
        last_hash = row["chain_hash"] = link(last_hash, entry_digest(row, cover))
    _INSERT_EVENTS.execute(conn, rows)
    _MOVE_HEAD.execute(conn, [{"new_last_id": last_id, "new_hash": last_hash}])
