"""An intake batch's status packages and published marks: the originals answered, the deliveries
locked in id order, the business statuses set, the confirmed deliveries moved to ``queued``.

On SQLite, which locks nothing (its writer is alone), the originals and the deliveries to the
status senders are one read sent straight to the driver (``_ANSWERS``: no SQLAlchemy execution,
one hop less), and the business status UPDATE is queued on it; PostgreSQL reads the originals,
then locks the deliveries (``queries.lock_deliveries``).

Steps 1, 5 and 7 of ``intake_batch.write_batch``, in the batch's own transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, bindparam, select, tuple_, update

from gateway.core.errors import ForbiddenError
from gateway.edxml.model import PackageKind
from gateway.store.driver_statements import DriverStatement
from gateway.store.queries import event_values, lock_deliveries
from gateway.store.records import DeliveryState, EventKind, IntakeResult, IntakeWrite, Outcome
from gateway.store.sqlite_driver import pipelined, prefetched
from gateway.store.tables import deliveries, documents

# Built once, as ``intake_batch``'s statements: SQLAlchemy finds their compiled SQL by cache key;
# the writes are ``pipelined`` (their results are not read), on SQLite queued on the driver.
_SET_STATUS = DriverStatement(
    pipelined(
        update(deliveries)
        .where(deliveries.c.id == bindparam("b_id"))
        .values(
            business_status=bindparam("b_status"),
            business_status_at=bindparam("b_at"),
            updated_at=bindparam("b_now"),
        )
    )
)

# The DocumentIds' own IN repeats what the (sender, DocumentId) IN says: SQLite's planner seeks no
# index with a row-value IN of a VALUES list, and without it scanned the whole documents table in
# ORDER BY order on every batch (CPU growing with the store; ``test_hot_path_plans``). With it,
# both stores seek ``(document_id, sender, kind)``.
_ORIGINALS = (
    select(documents.c.id, documents.c.sender, documents.c.document_id)
    .where(
        documents.c.kind == PackageKind.DOCUMENT.value,
        documents.c.document_id.in_(bindparam("ids", expanding=True)),
        tuple_(documents.c.sender, documents.c.document_id).in_(bindparam("refs", expanding=True)),
    )
    .order_by(documents.c.received_at, documents.c.id)
)

# SQLite (which locks nothing: its writer is alone): the originals and, of each, the deliveries
# to the status senders, in one read (``read_answers``), each original's rows in ``_ORIGINALS``'
# order; the delivery columns are ``_LOCKED_COLUMNS``.
_ANSWERS = DriverStatement(
    select(documents.c.id, documents.c.sender, documents.c.document_id)
    .add_columns(
        deliveries.c.id,
        deliveries.c.document,
        deliveries.c.recipient,
        deliveries.c.state,
        deliveries.c.business_status_at,
    )
    .select_from(
        documents.outerjoin(
            deliveries,
            and_(
                deliveries.c.document == documents.c.id,
                deliveries.c.recipient.in_(bindparam("a_senders", expanding=True)),
            ),
        )
    )
    .where(
        documents.c.kind == PackageKind.DOCUMENT.value,
        documents.c.document_id.in_(bindparam("a_ids", expanding=True)),  # as in _ORIGINALS
        tuple_(documents.c.sender, documents.c.document_id).in_(
            bindparam("a_refs", expanding=True)
        ),
    )
    .order_by(documents.c.received_at, documents.c.id)
)

_LOCKED_COLUMNS = (
    deliveries.c.id,
    deliveries.c.document,
    deliveries.c.recipient,
    deliveries.c.state,
    deliveries.c.business_status_at,
)
# The published marks alone: their columns (plain strings: the driver's rows need no processing)
_LOCK_PUBLISHED = lock_deliveries(
    bindparam("lock_ids", expanding=True),
    deliveries.c.id,
    deliveries.c.document,
    deliveries.c.state,
)
_PREFETCH_PUBLISHED = DriverStatement(prefetched(_LOCK_PUBLISHED), keep=True)
# The deliveries status packages answer, (document, recipient), and the published ones
_LOCK_ANSWERED = lock_deliveries(
    bindparam("lock_ids", expanding=True),
    *_LOCKED_COLUMNS,
    also=tuple_(deliveries.c.document, deliveries.c.recipient).in_(
        bindparam("lock_pairs", expanding=True)
    ),
)

_MARK_QUEUED = DriverStatement(
    pipelined(
        update(deliveries)
        .where(
            deliveries.c.id.in_(bindparam("m_ids", expanding=True)),
            deliveries.c.state == DeliveryState.ACCEPTED.value,
        )
        .values(state=DeliveryState.QUEUED.value, updated_at=bindparam("m_now"))
    )
)


class Answered(NamedTuple):
    """A delivery a status package answers, as locked: what its business status needs."""

    id: str
    document: str
    recipient: str
    state: str
    business_status_at: datetime | None


class Published(NamedTuple):
    """A delivery the broker confirmed, as locked: what its ``published`` event needs."""

    id: str
    document: str
    state: str


@dataclass(frozen=True, slots=True)
class Marked:
    """A batch's published deliveries, locked: read (``rows``), or, on SQLite, read with the
    transaction's next hop (``prefetched``: the read's parameters), for ``published_marks``."""

    rows: tuple[Published, ...] | None
    prefetched: dict[str, list[str]] | None = None

    def read(self, conn: Connection) -> list[Published]:
        if self.rows is not None or self.prefetched is None:
            return list(self.rows or ())
        kept: Sequence[Any] | None = _PREFETCH_PUBLISHED.kept_rows(conn, self.prefetched)
        if kept is None:  # no hop since (a transaction of marks alone): read them now
            kept = conn.execute(_LOCK_PUBLISHED, self.prefetched).all()
        return [Published(*row) for row in kept]


Ref = tuple[str, str]  # an original's sender and DocumentId


@dataclass(frozen=True, slots=True)
class Answers:
    """What a batch's status packages answer, and its published deliveries, locked."""

    originals: dict[Ref, str]  # the first-received document of each reference, by id
    answered: dict[tuple[str, str], Answered]  # (original, status sender) -> its delivery
    marked: Marked


def read_answers(
    conn: Connection, statuses: Sequence[tuple[Ref, str]], published: Sequence[str]
) -> Answers:
    """The originals of ``statuses`` ((reference, status sender)) and the deliveries of each to
    its status's sender, and the ``published`` ones, locked (``find_originals``, ``locked``).
    On SQLite, which locks nothing, the originals and their deliveries are one read, and the
    published marks are read with its hop."""
    if not statuses or conn.dialect.name != "sqlite":
        originals = find_originals(conn, {ref for ref, _ in statuses})
        pairs = {(originals[ref], sender) for ref, sender in statuses if ref in originals}
        answered, marked = locked(conn, pairs, published)
        return Answers(originals, {k: Answered(*r) for k, r in answered.items()}, marked)
    marked = locked(conn, set(), published)[1]  # queued first: this read's hop takes it along
    values = {
        "a_ids": sorted({document_id for (_, document_id), _ in statuses}),
        "a_refs": sorted({r for r, _ in statuses}),
        "a_senders": sorted({s for _, s in statuses}),
    }
    rows = _ANSWERS.fetch(conn, [values])
    originals = {}
    for row in rows:
        originals.setdefault((row[1], row[2]), row[0])
    pairs = {(originals[ref], sender) for ref, sender in statuses if ref in originals}
    answered = {
        (row[4], row[5]): Answered(*row[3:])
        for row in rows
        if row[3] is not None and (row[4], row[5]) in pairs
    }
    return Answers(originals, answered, marked)


def find_originals(conn: Connection, refs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The first-received document of each (sender, DocumentId), by id."""
    if not refs:
        return {}
    ids = sorted({document_id for _, document_id in refs})
    rows = conn.execute(_ORIGINALS, {"ids": ids, "refs": sorted(refs)}).all()
    found: dict[tuple[str, str], str] = {}
    for row in rows:
        found.setdefault((row.sender, row.document_id), row.id)
    return found


def locked(
    conn: Connection, pairs: set[tuple[str, str]], published: Sequence[str]
) -> tuple[dict[tuple[str, str], Any], Marked]:
    """Lock, in one statement built once and in id order (``queries.lock_deliveries``), the
    deliveries (document, recipient) that status packages answer and the ``published`` ones;
    return the former by pair, the latter as ``Marked`` (on SQLite, published marks alone are
    read with the transaction's next hop: SQLite locks nothing, its writer is alone)."""
    wanted = set(published)
    if not pairs and not wanted:
        return {}, Marked(())
    if not pairs:  # published marks alone (most batches)
        ids = {"lock_ids": sorted(wanted)}
        if _PREFETCH_PUBLISHED.queue(conn, [ids]):  # SQLite: read with the next hop
            return {}, Marked(None, ids)
        return {}, Marked(tuple(Published(*r) for r in conn.execute(_LOCK_PUBLISHED, ids)))
    rows = conn.execute(
        _LOCK_ANSWERED, {"lock_ids": sorted(wanted), "lock_pairs": sorted(pairs)}
    ).all()
    answered = {(r.document, r.recipient): r for r in rows if (r.document, r.recipient) in pairs}
    return answered, Marked(
        tuple(Published(r.id, r.document, r.state) for r in rows if r.id in wanted)
    )


def not_a_recipient(write: IntakeWrite) -> ForbiddenError:
    answers = write.answers
    assert answers is not None
    return ForbiddenError(
        f"{write.new.sender} is not a recipient of {answers.document_id} from "
        f"{answers.organ_id}: it may not answer it with a status",
        code="acl.not_a_recipient",
    )


def business_statuses(
    conn: Connection,
    pairs: Sequence[tuple[IntakeWrite, Outcome]],
    answered: dict[tuple[str, str], Answered],
    now: datetime,
) -> list[dict[str, Any]]:
    """Set the business status of each delivery a new status package answers (latest wins)."""
    latest = {r.id: r.business_status_at for r in answered.values()}
    trail: list[dict[str, Any]] = []
    updates: dict[str, dict[str, Any]] = {}
    for write, outcome in pairs:
        if not (isinstance(outcome, IntakeResult) and write.answers):
            continue
        doc = outcome.document
        row = answered.get((str(doc.in_reply_to), doc.sender))
        if row is None:  # no original found: nothing to set (a known original was checked)
            continue
        at, current = doc.received_at, latest[row.id]
        if not outcome.created and current is not None and current >= at:
            continue  # the same status again: set already (it is, unless someone unset it)
        newest = current is None or at >= current
        detail: dict[str, object] = {
            "status_document": doc.id,
            "at": at.isoformat(),
            "superseded": not newest,
        }
        trail.append(
            event_values(
                document=row.document,
                delivery=row.id,
                at=now,
                kind=EventKind.BUSINESS_STATUS,
                outcome=write.answers.code.value,
                detail=detail,
                actor="gateway",
            )
        )
        if newest:
            latest[row.id] = at
            updates[row.id] = {
                "b_id": row.id,
                "b_status": write.answers.code.value,
                "b_at": at,
                "b_now": now,
            }
    if updates:
        _SET_STATUS.execute(conn, [updates[k] for k in sorted(updates)])
    return trail


def published_marks(conn: Connection, marked: Marked, now: datetime) -> list[dict[str, Any]]:
    """Deliveries the broker confirmed (``marked``, locked): accepted -> queued (later states
    stay); their events."""
    rows = marked.read(conn)
    if not rows:
        return []
    _MARK_QUEUED.execute(conn, [{"m_ids": [r.id for r in rows], "m_now": now}])
    return [
        event_values(
            document=r.document,
            delivery=r.id,
            at=now,
            kind=EventKind.PUBLISHED,
            outcome="confirmed",
            detail={"state_before": r.state},
            actor="gateway",
        )
        for r in rows
    ]
