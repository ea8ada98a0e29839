"""Southbound ``getSentEdocList``: what a local system's participant sent, one item per recipient.

Items carry the fields the national SDK reads (reference §3.1a): ``senderDocId`` is the
``DocId`` that ``sendEdoc`` answered (the gateway's document id), ``receiverDocId`` the
delivery's id (the ``docId`` a mailbox recipient lists), ``receiveStatus`` ``done`` once the
recipient has it (acknowledged from a mailbox, or handed over by push, SOAP or the national
platform), ``fail`` when its delivery failed or was dead-lettered, else ``pending``. The newest
``LIST_LIMIT`` packages of that message type are listed.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from adapters.national.protocol import MessageType
from adapters.national.records import SentItem
from gateway.core.methods import DeliveryMethod
from gateway.edxml.model import PackageKind
from gateway.store import DeliveryLog, DeliveryRecord, DeliveryState, DocumentFilter
from gateway.store.engine import transaction
from gateway.store.queries import delivery_record
from gateway.store.tables import deliveries

LIST_LIMIT = 500
SENT = "sent"
_KIND = {MessageType.EDOC: PackageKind.DOCUMENT, MessageType.STATUS: PackageKind.STATUS}
_FAILED = frozenset({DeliveryState.FAILED, DeliveryState.DEAD_LETTERED})


def receive_status(delivery: DeliveryRecord) -> str:
    if delivery.acked_at is not None or (
        delivery.state is DeliveryState.DELIVERED and delivery.method is not DeliveryMethod.MAILBOX
    ):
        return "done"
    return "fail" if delivery.state in _FAILED else "pending"


def notation(document_id: str | None) -> str:
    """``7816/VPCP-TTĐT`` of ``000.00.00.G22,2015/09/30,7816/VPCP-TTĐT``."""
    parts = (document_id or "").split(",", 2)
    return parts[2] if len(parts) == 3 else ""


async def sent_items(delivery_log: DeliveryLog, organ_id: str, kind: MessageType) -> list[SentItem]:
    documents = await delivery_log.list_documents(
        DocumentFilter(sender=organ_id, kind=_KIND[kind], limit=LIST_LIMIT)
    )
    if not documents:
        return []
    query = (
        select(deliveries)
        .where(deliveries.c.document.in_([d.id for d in documents]))
        .order_by(deliveries.c.recipient)
    )
    async with transaction(delivery_log.engines.reader) as conn:
        found: Sequence[DeliveryRecord] = [delivery_record(r) for r in await conn.execute(query)]
    by_document: dict[str, list[DeliveryRecord]] = {}
    for delivery in found:
        by_document.setdefault(delivery.document, []).append(delivery)
    items = []
    for document in documents:  # newest first
        for delivery in by_document.get(document.id, []):
            status = receive_status(delivery)
            done_at = delivery.acked_at or delivery.delivered_at
            items.append(
                SentItem(
                    sender_doc_id=document.id,
                    receiver_doc_id=delivery.id,
                    from_code=document.sender,
                    to_code=delivery.recipient,
                    message_type=kind.value,
                    send_status=SENT,
                    receive_status=status,
                    sent_time=document.received_at.isoformat(),
                    received_time=done_at.isoformat() if status == "done" and done_at else "",
                    title=document.subject or "",
                    notation=notation(document.document_id),
                )
            )
    return items
