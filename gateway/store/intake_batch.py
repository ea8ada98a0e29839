"""The SQL of one group-commit batch: its intakes in multi-row statements, in one transaction.

``write_batch`` runs inside the caller's write transaction (a sync ``Connection``, through
``AsyncConnection.run_sync``: the same code on SQLite and PostgreSQL). In order:

1. the originals answered by the batch's status packages (one SELECT), then, locked in one
   SELECT ... FOR NO KEY UPDATE in id order (``queries.lock_deliveries``, the order of every
   writer), the deliveries they answer and the ``published`` ones: a status from a sender that
   is not a recipient of its original is that request's ``acl.not_a_recipient`` (403), and is
   not written (on SQLite, which locks nothing, the originals and the deliveries they answer are
   one read, and the published marks and step 3's keys are read with its hop: ``intake_answers``);
2. the packages, ``ON CONFLICT (sha256) DO NOTHING`` (one multi-row INSERT);
3. the documents, ``ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key``: dedup of the whole
   batch in one statement. A key not returned was there already: one SELECT reads those, the
   same bytes answer with the recorded document (created=False), other bytes are that request's
   ``conflict.duplicate_document`` (and a package row only it had brought is deleted again).
   On SQLite the keys already there are read with step 1's hop instead, and the new documents go
   with the COMMIT (``intake_dedup``: a status batch is two hops, not three);
4. the deliveries of the new documents (one multi-row INSERT);
5. the business status of the answered deliveries, latest by time (one UPDATE per delivery, as
   an executemany); a status sent again sets it only if it is unset or older;
6. the ``national_inbox`` rows of packages fetched from the national platform (``NationalDoc``),
   one multi-row INSERT;
7. the events (received, business_status, and the ``published`` marks the group committer
   carried over), one multi-row INSERT, after the ``accepted -> queued`` UPDATE of those marks,
   appended to the hash chain (``store.chain``) last: a received event covers its document,
   deliveries and package.

Steps 1, 5 and 7's status answers and published marks are in ``intake_answers``, step 3's dedup
in ``intake_dedup``.

Rows are sorted by their unique key before each INSERT, so that two processes' batches on
PostgreSQL take the index locks in one order (no deadlock between overlapping batches). The
results are built from the values written, not read back. Within a batch, a second request with a
key already in it is answered like a later resubmission: the same bytes get the first one's
records (created=False), other bytes a conflict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from gateway.core.errors import ConflictError, LgspError
from gateway.core.methods import DeliveryMethod
from gateway.store.chain import append_events, covered_record, prefetch_head
from gateway.store.driver_statements import DriverStatement
from gateway.store.intake_answers import (
    business_statuses,
    not_a_recipient,
    published_marks,
    read_answers,
)
from gateway.store.intake_dedup import (
    Present,
    forget_orphans,
    insert_documents,
    known,
    resubmitted,
)
from gateway.store.queries import (
    document_values,
    event_values,
    utc_now,
)
from gateway.store.records import (
    DeliveryRecord,
    DeliveryState,
    DocumentRecord,
    EventKind,
    IntakeResult,
    IntakeWrite,
    Outcome,
)
from gateway.store.sqlite_driver import pipelined
from gateway.store.tables import deliveries, national_inbox, packages
from gateway.store.upsert import by_dialect, for_dialect

NewId = Callable[[], str]


# The batch's statements, built once: a statement object keeps its cache key, so SQLAlchemy finds
# the compiled SQL without rebuilding and re-hashing the expression on every batch. The writes
# whose result is not read are ``pipelined``: on SQLite they go with the next statement's hop.
_INSERT_PACKAGES = by_dialect(
    lambda dialect_insert: DriverStatement(
        pipelined(dialect_insert(packages).on_conflict_do_nothing(index_elements=["sha256"]))
    )
)
_INSERT_NATIONAL = by_dialect(
    lambda dialect_insert: DriverStatement(
        pipelined(dialect_insert(national_inbox).on_conflict_do_nothing(index_elements=["doc_id"]))
    )
)
_INSERT_DELIVERIES = DriverStatement(pipelined(insert(deliveries)))


def write_batch(
    conn: Connection, writes: Sequence[IntakeWrite], published: Sequence[str], new_id: NewId
) -> list[Outcome]:
    """Record ``writes`` and mark ``published`` deliveries queued; one outcome per write."""
    prefetch_head(conn)  # with the first hop: ``append_events`` reads it without one
    now = utc_now()
    first_of: dict[str, int] = {}
    for i, write in enumerate(writes):
        first_of.setdefault(write.new.dedup_key, i)
    leaders = [writes[i] for i in first_of.values()]
    refs = {
        w.new.dedup_key: ((w.answers.organ_id, w.answers.document_id), w.new.sender)
        for w in leaders
        if w.answers is not None
    }
    ahead = Present.ahead(conn, sorted(first_of), with_answers=bool(refs))
    found = read_answers(conn, list(refs.values()), published)
    present = ahead.read(conn) if ahead is not None else None
    originals, answered, marked = found.originals, found.answered, found.marked
    answering = {key: originals[ref] for key, (ref, _) in refs.items() if ref in originals}
    outcomes: dict[str, Outcome] = {
        w.new.dedup_key: not_a_recipient(w)
        for w in leaders
        if w.new.dedup_key in answering
        and (answering[w.new.dedup_key], w.new.sender) not in answered
    }
    writing = [w for w in leaders if w.new.dedup_key not in outcomes]
    ids = {w.new.dedup_key: new_id() for w in writing}
    docs = {w.new.dedup_key: _document(w, ids[w.new.dedup_key], originals) for w in writing}
    _insert_packages(conn, writing, now)
    doc_rows = {key: _document_row(d) for key, d in docs.items()}
    inserted = insert_documents(conn, doc_rows.values(), present)
    recorded = known(conn, [w for w in writing if w.new.dedup_key not in inserted])
    for write in writing:
        key = write.new.dedup_key
        if key in inserted:
            outcomes[key] = IntakeResult(
                True, docs[key], _new_deliveries(docs[key], write.routes, now, new_id)
            )
        elif key in recorded:
            outcomes[key] = resubmitted(recorded[key], write)
        else:  # neither inserted nor there: let the committer retry it on its own
            raise ConflictError(
                f"document {key!r} was neither new nor found", code="conflict.constraint"
            )
    if any(isinstance(o, ConflictError) for o in outcomes.values()):
        forget_orphans(conn, {w.sha256 for w in writing if w.new.dedup_key not in inserted})
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
        _INSERT_DELIVERIES.execute(conn, new_deliveries)
    trail = [_received_event(r.document, w.package, len(w.routes), now) for w, r in new_records]
    trail += business_statuses(
        conn, [(w, outcomes[w.new.dedup_key]) for w in writing], answered, now
    )
    trail += published_marks(conn, marked, now)
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
        for_dialect(conn, _INSERT_NATIONAL).execute(conn, [rows[d] for d in sorted(rows)])


def _answer(
    write: IntakeWrite, first_of: dict[str, int], outcomes: dict[str, Outcome], index: int
) -> Outcome:
    """The outcome of the write at ``index``; a repeated key in the batch is a resubmission."""
    outcome = outcomes[write.new.dedup_key]
    if first_of[write.new.dedup_key] == index or isinstance(outcome, LgspError):
        return outcome
    return resubmitted(outcome, write)


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
        for_dialect(conn, _INSERT_PACKAGES).execute(conn, [rows[sha] for sha in sorted(rows)])


def _document_row(d: DocumentRecord) -> dict[str, object]:
    return {"id": d.id, "package_sha256": d.package_sha256, **document_values(d)}


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
