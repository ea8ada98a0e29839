"""Row <-> record mapping and the query builders the delivery log shares between its methods."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import BindParameter, ColumnElement, Row, Select, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.core.errors import ConfigError, InputError
from gateway.core.methods import DeliveryMethod
from gateway.edxml.formats import PackageFormat
from gateway.edxml.model import BusinessDocType, PackageKind, StatusCode
from gateway.store.records import (
    DeliveryItem,
    DeliveryRecord,
    DeliveryState,
    DocumentFilter,
    DocumentRecord,
    EventKind,
    EventRecord,
    NewDocument,
)
from gateway.store.tables import deliveries, documents, fold_text, packages

MAX_PAGE = 1000
# count_documents counts no further: a count of COUNT_CAP reads "COUNT_CAP or more". Counting
# every match of a broad filter at a million documents reads most of the table on each page.
COUNT_CAP = 1000
_E = TypeVar("_E", BusinessDocType, StatusCode)


def utc_now() -> datetime:
    return datetime.now(UTC)


def lock_deliveries(
    ids: Iterable[str] | BindParameter[Any], *columns: Any, also: ColumnElement[bool] | None = None
) -> Select[Any]:
    """``ids``' rows (``columns``, default the id), and those matching ``also``, locked
    ``FOR NO KEY UPDATE`` in id order. ``ids`` may be an expanding ``bindparam``, for a statement
    built once (its ids given at each execution).

    Every writer that changes several deliveries takes their locks through this, first and in
    one statement: the worker's batch commits, the intake's published marks and business
    statuses, the outbox relay. Locks taken in one order (then the chain head, last: see
    ``store.chain``) cannot deadlock. SQLite ignores the lock (its writer is alone).
    """
    wanted = deliveries.c.id.in_(ids if isinstance(ids, BindParameter) else sorted(set(ids)))
    return (
        select(*(columns or (deliveries.c.id,)))
        .where(or_(wanted, also) if also is not None else wanted)
        .order_by(deliveries.c.id)
        .with_for_update(key_share=True)
    )


def select_documents() -> Select[Any]:
    """Documents with the size of their package."""
    return select(documents, packages.c.size_bytes).join(
        packages, packages.c.sha256 == documents.c.package_sha256
    )


def document_values(new: NewDocument) -> dict[str, object]:
    """The ``documents`` columns for a new document (id and package added by the caller)."""
    return {
        "dedup_key": new.dedup_key,
        "kind": new.kind.value,
        "sender": new.sender,
        "document_id": new.document_id,
        "business_doc_type": _value(new.business_doc_type),
        "status_code": _value(new.status_code),
        "subject": new.subject,
        "subject_folded": fold_text(new.subject) if new.subject is not None else None,
        "format": new.format.value,
        "signer_fingerprint": new.signer_fingerprint,
        "signer_subject": new.signer_subject,
        "algorithm": new.algorithm,
        "caller": new.caller,
        "received_at": new.received_at,
        "in_reply_to": new.in_reply_to,
    }


def _value(member: BusinessDocType | StatusCode | None) -> str | None:
    return member.value if member is not None else None


def document_record(row: Row[Any]) -> DocumentRecord:
    m = row._mapping
    return DocumentRecord(
        id=m["id"],
        dedup_key=m["dedup_key"],
        kind=PackageKind(m["kind"]),
        sender=m["sender"],
        document_id=m["document_id"],
        business_doc_type=_optional(BusinessDocType, m["business_doc_type"]),
        status_code=_optional(StatusCode, m["status_code"]),
        subject=m["subject"],
        package_sha256=m["package_sha256"],
        size_bytes=m["size_bytes"],
        format=PackageFormat(m["format"]),
        signer_fingerprint=m["signer_fingerprint"],
        signer_subject=m["signer_subject"],
        algorithm=m["algorithm"],
        caller=m["caller"],
        received_at=m["received_at"],
        in_reply_to=m["in_reply_to"],
    )


def delivery_record(row: Row[Any]) -> DeliveryRecord:
    m = row._mapping
    return DeliveryRecord(
        id=m["id"],
        document=m["document"],
        recipient=m["recipient"],
        method=DeliveryMethod(m["method"]),
        state=DeliveryState(m["state"]),
        attempts=m["attempts"],
        last_error=m["last_error"],
        last_error_code=m["last_error_code"],
        business_status=_optional(StatusCode, m["business_status"]),
        business_status_at=m["business_status_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        delivered_at=m["delivered_at"],
        acked_at=m["acked_at"],
    )


def event_record(row: Row[Any]) -> EventRecord:
    m = row._mapping
    return EventRecord(
        id=m["id"],
        document=m["document"],
        delivery=m["delivery"],
        at=m["at"],
        kind=EventKind(m["kind"]),
        outcome=m["outcome"],
        detail=json.loads(m["detail"]),
        actor=m["actor"],
    )


def _optional(enum: type[_E], value: str | None) -> _E | None:
    return enum(value) if value is not None else None


def event_values(
    *,
    document: str,
    delivery: str | None,
    at: datetime,
    kind: EventKind,
    outcome: str,
    detail: Mapping[str, object],
    actor: str,
) -> dict[str, object]:
    """An ``events`` row; ``detail`` is stored as a JSON object."""
    return {
        "document": document,
        "delivery": delivery,
        "at": at,
        "kind": kind.value,
        "outcome": outcome,
        "detail": json.dumps(detail, ensure_ascii=False, default=str),
        "actor": actor,
    }


async def delivery_items(conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[DeliveryItem]:
    """Deliveries (``deliveries`` rows) paired with their documents, in the rows' order."""
    doc_ids = {row._mapping["document"] for row in rows}
    docs: dict[str, DocumentRecord] = {}
    if doc_ids:
        result = await conn.execute(select_documents().where(documents.c.id.in_(doc_ids)))
        docs = {rec.id: rec for rec in map(document_record, result)}
    return [DeliveryItem(delivery_record(row), docs[row._mapping["document"]]) for row in rows]


def check_page(limit: int, offset: int = 0) -> None:
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise InputError(
            f"page limit must be 1..{MAX_PAGE} and offset >= 0 (got {limit}, {offset})",
            code="input.invalid_page",
        )


def newest_first() -> tuple[ColumnElement[Any], ...]:
    """The search order; the (received_at, id) and (sender, received_at, id) indexes give it."""
    return documents.c.received_at.desc(), documents.c.id.desc()


def document_page(f: DocumentFilter) -> Select[Any]:
    """One page of the search: the page's ids are chosen through the indexes first (skipped rows
    are never read whole), then only the page's documents are joined to their packages."""
    page = matching_ids(f, ordered=True).limit(f.limit).offset(f.offset).subquery("page")
    return select_documents().join(page, page.c.id == documents.c.id).order_by(*newest_first())


def document_count(f: DocumentFilter, cap: int | None) -> Select[Any]:
    """``count(*)`` of the matching documents, stopping at ``cap`` (None: all of them)."""
    matching = matching_ids(f, ordered=False)
    if cap is not None:
        matching = matching.limit(cap)
    return select(func.count()).select_from(matching.subquery("matching"))


def matching_ids(f: DocumentFilter, *, ordered: bool) -> Select[Any]:
    """The ids of the documents matching ``f`` (newest first if ``ordered``).

    Without delivery criteria the documents' own indexes serve it. With any, it runs on
    ``deliveries`` (which carry their document's received_at and sender): the (recipient |
    state | business_status | sender, received_at, document) indexes list matching documents
    in time order, so a page or a capped count reads only its own stretch of an index.
    """
    per_delivery = list(delivery_conditions(f))
    if not per_delivery:
        query = select(documents.c.id).where(*document_conditions(f))
        return query.order_by(*newest_first()) if ordered else query
    when, document_id = deliveries.c.received_at, deliveries.c.document
    query = select(document_id.label("id")).where(*per_delivery, *period_conditions(when, f))
    if f.sender is not None:
        query = query.where(deliveries.c.sender == f.sender)
    own = _document_conditions(replace(f, sender=None))
    if own:
        query = query.join(documents, documents.c.id == document_id).where(*own)
    if f.recipient is None:  # several deliveries of a document may match: one row each
        query = query.group_by(when, document_id)
        ordered = True  # the index order lets the grouping stream (no hash of every match)
    return query.order_by(when.desc(), document_id.desc()) if ordered else query


def period_conditions(at: ColumnElement[datetime], f: DocumentFilter) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if f.since is not None:
        conds.append(at >= f.since)
    if f.until is not None:
        conds.append(at < f.until)
    return conds


def _document_conditions(f: DocumentFilter) -> list[ColumnElement[bool]]:
    """The criteria on the document itself, but its period."""
    conds: list[ColumnElement[bool]] = []
    if f.sender is not None:
        conds.append(documents.c.sender == f.sender)
    if f.document_id is not None:
        conds.append(documents.c.document_id == f.document_id)
    if f.kind is not None:
        conds.append(documents.c.kind == f.kind.value)
    if f.text:
        conds.append(documents.c.subject_folded.contains(fold_text(f.text), autoescape=True))
    return conds


def document_conditions(f: DocumentFilter) -> list[ColumnElement[bool]]:
    """WHERE conditions for an admin search; delivery criteria must hold for the same delivery."""
    conds = [*_document_conditions(f), *period_conditions(documents.c.received_at, f)]
    per_delivery = list(delivery_conditions(f))
    if per_delivery:
        conds.append(exists().where(deliveries.c.document == documents.c.id, *per_delivery))
    return conds


def delivery_conditions(f: DocumentFilter) -> Iterable[ColumnElement[bool]]:
    if f.recipient is not None:
        yield deliveries.c.recipient == f.recipient
    if f.state is not None:
        yield deliveries.c.state == f.state.value
    if f.business_status is not None:
        yield deliveries.c.business_status == f.business_status.value


def delivery_routes(recipients: Sequence[tuple[str, str]]) -> list[tuple[str, DeliveryMethod]]:
    """``(organ_id, method)`` pairs, methods checked, each recipient once (first one wins)."""
    routes: dict[str, DeliveryMethod] = {}
    for organ_id, method in recipients:
        try:
            routes.setdefault(organ_id, DeliveryMethod(method))
        except ValueError as exc:
            raise ConfigError(
                f"unknown delivery method {method!r} for {organ_id}", code="config.delivery_method"
            ) from exc
    return list(routes.items())
