"""The outbox relay: publishes deliveries that were recorded but never confirmed by the broker."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import structlog

from gateway.core.errors import LgspError
from gateway.dispatch.publishing import Dispatcher
from gateway.store import DeliveryLog
from gateway.store.records import DeliveryRecord, DocumentRecord

log = structlog.get_logger(__name__)


async def relay_once(
    dispatcher: Dispatcher, delivery_log: DeliveryLog, *, older_than_s: float
) -> int:
    """Publish (by claim check) every delivery still ``accepted`` after ``older_than_s``."""
    items = await delivery_log.pending_publication(older_than_s, limit=500)
    by_document: dict[str, tuple[DocumentRecord, list[DeliveryRecord]]] = {}
    grouped: defaultdict[str, list[DeliveryRecord]] = defaultdict(list)
    for item in items:
        by_document[item.document.id] = (item.document, grouped[item.document.id])
        grouped[item.document.id].append(item.delivery)
    for document, deliveries in by_document.values():
        await dispatcher.publish(document, deliveries, None, republished=True)
        log.info("outbox_republished", document=document.id, deliveries=len(deliveries))
    return len(items)


async def relay_forever(
    dispatcher: Dispatcher, delivery_log: DeliveryLog, *, interval_s: float, older_than_s: float
) -> None:
    """Run ``relay_once`` every ``interval_s`` until cancelled; failures wait for the next round."""
    while True:
        try:
            await relay_once(dispatcher, delivery_log, older_than_s=older_than_s)
        except LgspError as exc:
            log.warning("outbox_relay_failed", code=exc.code, error=exc.message)
        except Exception:  # anything else must not end the relay: deliveries would wait forever
            log.exception("outbox_relay_crashed")
        await asyncio.sleep(interval_s)
