"""The outbox relay: publishes deliveries that were recorded but never confirmed by the broker.

The rule: a delivery still ``accepted`` ``outbox_age_s`` after its last change is republished
(by claim check). Intake's confirmed publications are marked ``queued`` by the delivery log's
next group commit, within milliseconds, so such a delivery was either never confirmed (a nack, a
timeout, a crash between commit and publish) or confirmed with its mark lost in a crash; the
second is a harmless duplicate under the same delivery id (``gateway.store.group_commit``).
"""

from __future__ import annotations

from collections import defaultdict

import structlog

from gateway.core.loops import Loops, supervise
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
    dispatcher: Dispatcher,
    delivery_log: DeliveryLog,
    *,
    interval_s: float,
    older_than_s: float,
    loops: Loops | None = None,
) -> None:
    """Run ``relay_once`` every ``interval_s`` until cancelled (a supervised loop)."""

    async def round_() -> None:
        await relay_once(dispatcher, delivery_log, older_than_s=older_than_s)

    await supervise("outbox-relay", round_, interval_s=interval_s, loops=loops)
