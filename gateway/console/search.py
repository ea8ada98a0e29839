"""The console's search beyond the log's default page: sorting by any column, each document's
deliveries, the count of matching deliveries, and the rows of a CSV export.

The newest-first page is the delivery log's own (``list_documents``, served by its indexes).
Another order sorts the matching documents by that column (recipient and state: the smallest of
the document's deliveries), which reads every match: a narrow search stays quick, a broad one on
a large log is as slow as the sort.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, func, select

from gateway.console.i18n import Translator
from gateway.store import (
    DeliveryLog,
    DeliveryRecord,
    DeliveryState,
    DocumentFilter,
    DocumentRecord,
)
from gateway.store.engine import transaction
from gateway.store.queries import (
    COUNT_CAP,
    delivery_conditions,
    delivery_record,
    document_conditions,
    document_record,
    matching_ids,
    period_conditions,
    select_documents,
)
from gateway.store.tables import deliveries, documents

EXPORT_MAX_DOCUMENTS = 10_000
_PAGE = 500


class SortKey(StrEnum):
    RECEIVED_AT = "received_at"
    DOCUMENT_ID = "document_id"
    SENDER = "sender"
    KIND = "kind"
    SUBJECT = "subject"
    RECIPIENT = "recipient"
    STATE = "state"


def _first_of_deliveries(column: ColumnElement[str]) -> ColumnElement[str]:
    return select(func.min(column)).where(deliveries.c.document == documents.c.id).scalar_subquery()


def _sort_column(key: SortKey) -> ColumnElement[Any]:
    columns: dict[SortKey, ColumnElement[Any]] = {
        SortKey.RECEIVED_AT: documents.c.received_at,
        SortKey.DOCUMENT_ID: documents.c.document_id,
        SortKey.SENDER: documents.c.sender,
        SortKey.KIND: documents.c.kind,
        SortKey.SUBJECT: documents.c.subject_folded,
        SortKey.RECIPIENT: _first_of_deliveries(deliveries.c.recipient),
        SortKey.STATE: _first_of_deliveries(deliveries.c.state),
    }
    return columns[key]


@dataclass(frozen=True, slots=True)
class SearchRow:
    document: DocumentRecord
    deliveries: tuple[DeliveryRecord, ...]  # all of the document's, by recipient


async def search(
    log: DeliveryLog, f: DocumentFilter, key: SortKey = SortKey.RECEIVED_AT, descending: bool = True
) -> list[SearchRow]:
    """One page of documents matching ``f`` in this order, each with its deliveries."""
    if key is SortKey.RECEIVED_AT and descending:
        docs = await log.list_documents(f)
    else:
        column = _sort_column(key)
        ids = matching_ids(f, ordered=False).subquery("matching")
        order = [
            column.desc() if descending else column.asc(),
            documents.c.id.desc() if descending else documents.c.id.asc(),
        ]
        query = (
            select_documents()
            .where(documents.c.id.in_(select(ids.c.id)))
            .order_by(*order)
            .limit(f.limit)
            .offset(f.offset)
        )
        async with transaction(log.engines.reader) as conn:
            docs = [document_record(row) for row in await conn.execute(query)]
    return await _with_deliveries(log, docs)


async def _with_deliveries(log: DeliveryLog, docs: Sequence[DocumentRecord]) -> list[SearchRow]:
    found: dict[str, list[DeliveryRecord]] = {d.id: [] for d in docs}
    if docs:
        query = (
            select(deliveries)
            .where(deliveries.c.document.in_(list(found)))
            .order_by(deliveries.c.recipient)
        )
        async with transaction(log.engines.reader) as conn:
            for row in await conn.execute(query):
                record = delivery_record(row)
                found[record.document].append(record)
    return [SearchRow(d, tuple(found[d.id])) for d in docs]


async def count_deliveries(log: DeliveryLog, f: DocumentFilter) -> int | None:
    """How many deliveries match the delivery criteria of ``f`` (at most ``COUNT_CAP``);
    None when ``f`` has none (then only documents are counted)."""
    per_delivery = list(delivery_conditions(f))
    if not per_delivery:
        return None
    own = document_conditions(
        replace(f, state=None, recipient=None, business_status=None, since=None, until=None)
    )
    when = period_conditions(deliveries.c.received_at, f)
    query = select(deliveries.c.id).where(*per_delivery, *when)
    if own:
        query = query.join(documents, documents.c.id == deliveries.c.document).where(*own)
    capped = select(func.count()).select_from(query.limit(COUNT_CAP).subquery("matching"))
    async with transaction(log.engines.reader) as conn:
        return int(await conn.scalar(capped) or 0)


async def export_csv(
    log: DeliveryLog, f: DocumentFilter, t: Translator, key: SortKey, descending: bool
) -> bytes:
    """The search's documents (up to ``EXPORT_MAX_DOCUMENTS``), one line per delivery."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        [
            t("col.received_at"),
            t("field.document_id"),
            t("field.sender"),
            t("col.kind"),
            t("col.subject"),
            t("field.recipient"),
            t("col.method"),
            t("field.state"),
            t("col.attempts"),
            t("field.business_status"),
            t("doc.gateway_id"),
            t("col.delivery_id"),
        ]
    )
    offset = 0
    while offset < EXPORT_MAX_DOCUMENTS:
        rows = await search(log, replace(f, limit=_PAGE, offset=offset), key, descending)
        for row in rows:
            d = row.document
            kind = t(f"kind.{d.kind.value}")
            if d.status_code is not None:
                kind += f" · {t.status(d.status_code.value)}"
            for dl in row.deliveries or (None,):
                writer.writerow(
                    [
                        t.dt(d.received_at),
                        d.document_id or "",
                        d.sender,
                        kind,
                        d.subject or "",
                        dl.recipient if dl else "",
                        t(f"method.{dl.method.value}") if dl else "",
                        t(f"state.{dl.state.value}") if dl else "",
                        dl.attempts if dl else "",
                        t.status(dl.business_status.value) if dl and dl.business_status else "",
                        d.id,
                        dl.id if dl else "",
                    ]
                )
        if len(rows) < _PAGE:
            break
        offset += _PAGE
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def next_retry_at(delivery: DeliveryRecord, delays_s: Sequence[float]) -> datetime | None:
    """When a retrying delivery's next attempt is due: its last attempt plus the delay the
    worker uses after that many attempts (a receiver's Retry-After may have asked for longer)."""
    if delivery.state is not DeliveryState.RETRYING or not delays_s:
        return None
    delay_s = delays_s[min(max(delivery.attempts, 1), len(delays_s)) - 1]
    return delivery.updated_at + timedelta(seconds=delay_s)
