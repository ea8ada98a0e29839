"""The SQL of one group-commit batch: its intakes in multi-row statements, in one transaction.

``write_batch`` runs inside the caller's write transaction (a sync ``Connection``, through
``AsyncConnection.run_sync``: the same code on SQLite and PostgreSQL). In order:

1. the originals answered by the batch's status packages (one SELECT), then, locked in one
   SELECT ... FOR NO KEY UPDATE in id order (``queries.lock_deliveries``, the order of every
   writer), the deliveries they answer and the ``published`` ones: a status from a sender that
   is not a recipient of its original is that request's ``acl.not_a_recipient`` (403), and is
   not written;
2. the packages, ``ON CONFLICT (sha256) DO NOTHING`` (one multi-row INSERT);
3. the documents, ``ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key``: dedup of the whole
   batch in one statement. A key not returned was there already: one SELECT reads those, the
   same bytes answer with the recorded document (created=False), other bytes are that request's
   ``conflict.duplicate_document`` (and a package row only it had brought is deleted again);
4. the deliveries of the new documents (one multi-row INSERT);
5. the business status of the answered deliveries, latest by time (one UPDATE per delivery, as
   an executemany); a status sent again sets it only if it is unset or older;
6. the ``national_inbox`` rows of packages fetched from the national platform (``NationalDoc``),
   one multi-row INSERT;
7. the events (received, business_status, and the ``published`` marks the group committer
   carried over), one multi-row INSERT, after the ``accepted -> queued`` UPDATE of those marks,
   appended to the hash chain (``store.chain``) last: a received event covers its document,
   deliveries and package.

Rows are sorted by their unique key before each INSERT, so that two processes' batches on
PostgreSQL take the index locks in one order (no deadlock between overlapping batches). The
results are built from the values written, not read back. Within a batch, a second request with a
key already in it is answered like a later resubmission: the same bytes get the first one's
records (created=False), other bytes a conflict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    exists,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from gateway.core.errors import ConflictError, ForbiddenError, LgspError
from gateway.core.methods import DeliveryMethod
from gateway.edxml.model import PackageKind, StatusCode
from gateway.store.chain import append_events, covered_record
from gateway.store.queries import (
    delivery_record,
    document_record,
    document_values,
    event_values,
    lock_deliveries,
    select_documents,
    utc_now,
)
from gateway.store.records import (
    DeliveryRecord,
    DeliveryState,
    DocumentRecord,
    EventKind,
    IntakeResult,
    NewDocument,
)
from gateway.store.tables import deliveries, documents, national_inbox, packages

NewId = Callable[[], str]
Outcome = IntakeResult | LgspError  # a request's own refusal: conflict, not_a_recipient

_SET_STATUS = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"))
    .values(
        business_status=bindparam("b_status"),
        business_status_at=bindparam("b_at"),
        updated_at=bindparam("b_now"),
    )
)


def _by_dialect(build: Callable[[Callable[..., Any]], Any]) -> dict[str, Any]:
    """A statement built once for each dialect's ``INSERT`` (``ON CONFLICT`` is dialect SQL)."""
    return {"postgresql": build(postgresql.insert), "sqlite": build(sqlite.insert)}


def _statement(conn: Connection, statements: dict[str, Any]) -> Any:
    return statements["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]


# The batch's statements, built once: a statement object keeps its cache key, so SQLAlchemy finds
# the compiled SQL without rebuilding and re-hashing the expression on every batch.
_ORIGINALS = (
    select(documents.c.id, documents.c.sender, documents.c.document_id)
    .where(
        documents.c.kind == PackageKind.DOCUMENT.value,
        tuple_(documents.c.sender, documents.c.document_id).in_(bindparam("refs", expanding=True)),
    )
    .order_by(documents.c.received_at, documents.c.id)
)
_INSERT_PACKAGES = _by_dialect(
    lambda dialect_insert: dialect_insert(packages).on_conflict_do_nothing(
        index_elements=["sha256"]
    )
)
_INSERT_DOCUMENTS = _by_dialect(
    lambda dialect_insert: (
        dialect_insert(documents)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(documents.c.dedup_key)
    )
)
_INSERT_NATIONAL = _by_dialect(
    lambda dialect_insert: dialect_insert(national_inbox).on_conflict_do_nothing(
        index_elements=["doc_id"]
    )
)
_INSERT_DELIVERIES = insert(deliveries)
_MARK_QUEUED = (
    update(deliveries)
    .where(
        deliveries.c.id.in_(bindparam("m_ids", expanding=True)),
        deliveries.c.state == DeliveryState.ACCEPTED.value,
    )
    .values(state=DeliveryState.QUEUED.value, updated_at=bindparam("m_now"))
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusAnswer:
    """A status package's reference to the document it answers (its sender and DocumentId)."""

    organ_id: str
    document_id: str
    code: StatusCode


@dataclass(frozen=True, slots=True)
class NationalDoc:
    """The national platform's docId a package was fetched under: its ``national_inbox`` row
    (outcome ``done``) is written in the intake's own transaction."""

    doc_id: str
    message_type: str  # edoc | status


@dataclass(frozen=True, slots=True)
class IntakeWrite:
    """One intake to record: its document, its bytes, one route per recipient."""

    new: NewDocument  # in_reply_to is filled in here when ``answers`` finds the original
    package: bytes = field(repr=False)  # up to megabytes: never in a log line or a repr
    sha256: str
    routes: tuple[tuple[str, DeliveryMethod], ...]
    answers: StatusAnswer | None = None
    national: NationalDoc | None = None


def write_batch(
    conn: Connection, writes: Sequence[IntakeWrite], published: Sequence[str], new_id: NewId
) -> list[Outcome]:
    """Record ``writes`` and mark ``published`` deliveries queued; one outcome per write."""
    now = utc_now()
    first_of: dict[str, int] = {}
    for i, write in enumerate(writes):
        first_of.setdefault(write.new.dedup_key, i)
    leaders = [writes[i] for i in first_of.values()]
    originals = _originals(
        conn,
        {(w.answers.organ_id, w.answers.document_id) for w in leaders if w.answers is not None},
    )
    answering = {
        w.new.dedup_key: originals[(w.answers.organ_id, w.answers.document_id)]
        for w in leaders
        if w.answers is not None and (w.answers.organ_id, w.answers.document_id) in originals
    }
    answered, marked = _locked(
        conn,
        {
            (doc, by_key.new.sender)
            for by_key in leaders
            if (doc := answering.get(by_key.new.dedup_key))
        },
        published,
    )
    outcomes: dict[str, Outcome] = {
        w.new.dedup_key: _not_a_recipient(w)
        for w in leaders
        if w.new.dedup_key in answering
        and (answering[w.new.dedup_key], w.new.sender) not in answered
    }
    writing = [w for w in leaders if w.new.dedup_key not in outcomes]
    ids = {w.new.dedup_key: new_id() for w in writing}
    docs = {w.new.dedup_key: _document(w, ids[w.new.dedup_key], originals) for w in writing}
    _insert_packages(conn, writing, now)
    doc_rows = {key: _document_row(d) for key, d in docs.items()}
    inserted = _insert_documents(conn, doc_rows.values())
    known = _known(conn, [w for w in writing if w.new.dedup_key not in inserted])
    for write in writing:
        key = write.new.dedup_key
        if key in inserted:
            outcomes[key] = IntakeResult(
                True, docs[key], _new_deliveries(docs[key], write.routes, now, new_id)
            )
        elif key in known:
            outcomes[key] = _resubmitted(known[key], write)
        else:  # neither inserted nor there: let the committer retry it on its own
            raise ConflictError(
                f"document {key!r} was neither new nor found", code="conflict.constraint"
            )
    if any(isinstance(o, ConflictError) for o in outcomes.values()):
        _forget_orphans(conn, {w.sha256 for w in writing if w.new.dedup_key not in inserted})
    new_records = [
        (w, r)
        for w, r in ((w, outcomes[w.new.dedup_key]) for w in writing)
        if isinstance(r, IntakeResult) and r.created
    ]
    delivery_rows = {
        r.document.id: [_delivery_values(d, r.document) for d in r.deliveries]
        for _, r in new_records
    }
    new_deliveries = sorted(
        (d for rows in delivery_rows.values() for d in rows), key=lambda d: d["id"]
    )
    if new_deliveries:  # in id order, as every writer of several deliveries locks them
        conn.execute(_INSERT_DELIVERIES, new_deliveries)
    trail = [_received_event(r.document, w.package, len(w.routes), now) for w, r in new_records]
    trail += _business_statuses(
        conn, [(w, outcomes[w.new.dedup_key]) for w in writing], answered, now
    )
    trail += _published(conn, marked, now)
    answers = [_answer(writes[i], first_of, outcomes, i) for i in range(len(writes))]
    _national_rows(conn, writes, answers, now)
    covered = {
        r.document.id: covered_record(
            doc_rows[w.new.dedup_key], delivery_rows[r.document.id], len(w.package)
        )
        for w, r in new_records
    }
    append_events(conn, trail, covered)  # last: the chain's head is held until the commit
    return answers


def _national_rows(
    conn: Connection, writes: Sequence[IntakeWrite], answers: Sequence[Outcome], now: datetime
) -> None:
    """The ``national_inbox`` rows of the recorded writes that came from the national platform;
    a docId that has a row already keeps it (the first record wins)."""
    rows = {
        w.national.doc_id: {
            "doc_id": w.national.doc_id,
            "message_type": w.national.message_type,
            "outcome": "done",
            "document": a.document.id,
            "detail": "recorded" if a.created else "duplicate of a recorded document",
            "processed_at": now,
        }
        for w, a in zip(writes, answers, strict=True)
        if w.national is not None and isinstance(a, IntakeResult)
    }
    if rows:
        conn.execute(_statement(conn, _INSERT_NATIONAL), [rows[d] for d in sorted(rows)])


def _answer(
    write: IntakeWrite, first_of: dict[str, int], outcomes: dict[str, Outcome], index: int
) -> Outcome:
    """The outcome of the write at ``index``; a repeated key in the batch is a resubmission."""
    outcome = outcomes[write.new.dedup_key]
    if first_of[write.new.dedup_key] == index or isinstance(outcome, LgspError):
        return outcome
    return _resubmitted(outcome, write)


def _resubmitted(outcome: Outcome, write: IntakeWrite) -> Outcome:
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


def _originals(conn: Connection, refs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The first-received document of each (sender, DocumentId), by id."""
    if not refs:
        return {}
    rows = conn.execute(_ORIGINALS, {"refs": sorted(refs)}).all()
    found: dict[tuple[str, str], str] = {}
    for row in rows:
        found.setdefault((row.sender, row.document_id), row.id)
    return found


def _document(
    write: IntakeWrite, doc_id: str, originals: dict[tuple[str, str], str]
) -> DocumentRecord:
    new, answers = write.new, write.answers
    in_reply_to = new.in_reply_to
    if answers is not None:
        in_reply_to = originals.get((answers.organ_id, answers.document_id))
    return DocumentRecord(
        dedup_key=new.dedup_key,
        kind=new.kind,
        sender=new.sender,
        document_id=new.document_id,
        format=new.format,
        signer_fingerprint=new.signer_fingerprint,
        signer_subject=new.signer_subject,
        algorithm=new.algorithm,
        caller=new.caller,
        received_at=new.received_at,
        business_doc_type=new.business_doc_type,
        status_code=new.status_code,
        subject=new.subject,
        in_reply_to=in_reply_to,
        id=doc_id,
        package_sha256=write.sha256,
        size_bytes=len(write.package),
    )


def _insert_packages(conn: Connection, writes: Iterable[IntakeWrite], now: datetime) -> None:
    rows = {
        w.sha256: {
            "sha256": w.sha256,
            "size_bytes": len(w.package),
            "data": w.package,
            "created_at": now,
        }
        for w in writes
    }
    if rows:
        conn.execute(_statement(conn, _INSERT_PACKAGES), [rows[sha] for sha in sorted(rows)])


def _document_row(d: DocumentRecord) -> dict[str, object]:
    return {"id": d.id, "package_sha256": d.package_sha256, **document_values(d)}


def _insert_documents(conn: Connection, docs: Iterable[dict[str, object]]) -> set[str]:
    """Insert the documents (``_document_row``s) whose key is new; return the keys inserted."""
    rows = sorted(docs, key=lambda r: str(r["dedup_key"]))
    if not rows:
        return set()
    return set(conn.execute(_statement(conn, _INSERT_DOCUMENTS), rows).scalars())


def _known(conn: Connection, writes: Sequence[IntakeWrite]) -> dict[str, IntakeResult]:
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


def _forget_orphans(conn: Connection, shas: set[str]) -> None:
    """Delete package rows that only a refused (conflicting) request had brought."""
    conn.execute(
        delete(packages).where(
            packages.c.sha256.in_(sorted(shas)),
            ~exists().where(documents.c.package_sha256 == packages.c.sha256),
        )
    )


def _new_deliveries(
    doc: DocumentRecord, routes: Sequence[tuple[str, DeliveryMethod]], now: datetime, new_id: NewId
) -> tuple[DeliveryRecord, ...]:
    """One accepted delivery per route, in the order the log reads them (by recipient)."""
    return tuple(
        DeliveryRecord(
            id=new_id(),
            document=doc.id,
            recipient=organ_id,
            method=method,
            state=DeliveryState.ACCEPTED,
            attempts=0,
            last_error=None,
            business_status=None,
            business_status_at=None,
            created_at=now,
            updated_at=now,
            delivered_at=None,
            acked_at=None,
        )
        for organ_id, method in sorted(routes)
    )


def _delivery_values(d: DeliveryRecord, document: DocumentRecord) -> dict[str, Any]:
    return {
        "id": d.id,
        "document": document.id,
        "recipient": d.recipient,
        "method": d.method.value,
        "state": d.state.value,
        "attempts": 0,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "received_at": document.received_at,
        "sender": document.sender,
    }


def _received_event(
    doc: DocumentRecord, package: bytes, recipients: int, now: datetime
) -> dict[str, Any]:
    detail: dict[str, object] = {
        "sha256": doc.package_sha256,
        "size_bytes": len(package),
        "recipients": recipients,
    }
    return event_values(
        document=doc.id,
        delivery=None,
        at=now,
        kind=EventKind.RECEIVED,
        outcome="accepted",
        detail=detail,
        actor=doc.caller,
    )


def _locked(
    conn: Connection, pairs: set[tuple[str, str]], published: Sequence[str]
) -> tuple[dict[tuple[str, str], Any], list[Any]]:
    """Lock, in one statement and in id order (``queries.lock_deliveries``), the deliveries
    (document, recipient) that status packages answer and the ``published`` ones; return the
    former by pair, the latter as rows."""
    wanted = set(published)
    if not pairs and not wanted:
        return {}, []
    columns = (
        deliveries.c.id,
        deliveries.c.document,
        deliveries.c.recipient,
        deliveries.c.state,
        deliveries.c.business_status_at,
    )
    answering = tuple_(deliveries.c.document, deliveries.c.recipient).in_(sorted(pairs))
    rows = conn.execute(lock_deliveries(wanted, *columns, also=answering if pairs else None)).all()
    answered = {(r.document, r.recipient): r for r in rows if (r.document, r.recipient) in pairs}
    return answered, [r for r in rows if r.id in wanted]


def _not_a_recipient(write: IntakeWrite) -> ForbiddenError:
    answers = write.answers
    assert answers is not None
    return ForbiddenError(
        f"{write.new.sender} is not a recipient of {answers.document_id} from "
        f"{answers.organ_id}: it may not answer it with a status",
        code="acl.not_a_recipient",
    )


def _business_statuses(
    conn: Connection,
    pairs: Sequence[tuple[IntakeWrite, Outcome]],
    answered: dict[tuple[str, str], Any],
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
        conn.execute(_SET_STATUS, [updates[k] for k in sorted(updates)])
    return trail


def _published(conn: Connection, rows: Sequence[Any], now: datetime) -> list[dict[str, Any]]:
    """Deliveries the broker confirmed (``rows``, locked): accepted -> queued (later states
    stay); their events."""
    if not rows:
        return []
    conn.execute(_MARK_QUEUED, {"m_ids": [r.id for r in rows], "m_now": now})
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
