"""Replaying dead letters from the console: same delivery id, so receivers see no new copy.

Per batch: each delivery goes back to ``accepted`` in the log (``DeliveryLog.replay``, which
refuses anything not dead-lettered or failed). Then, per method, the dead copies of exactly those
deliveries move from ``<p>.dead.<method>`` back to the work queue (``Broker.requeue_dead``, same
message id, carrying the delivery's recorded attempt count so that the worker takes it as
current); when some copy is missing from the dead queue, the batch is published afresh by claim
check instead (``Dispatcher.publish``, body None). Either way the worker sends the same delivery id,
which the push adapter uses as the ``Idempotency-Key``, and skips deliveries already delivered.
If the broker is down the deliveries stay ``accepted`` (reported as ``deferred``) and the outbox
relay publishes them once it is back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from gateway.broker import Broker
from gateway.core.errors import ConflictError, NotFoundError, UnavailableError
from gateway.dispatch.publishing import Dispatcher
from gateway.store import DeliveryLog, DeliveryRecord, DocumentRecord

log = structlog.get_logger(__name__)

PAGE = 500
MAX_PER_DESTINATION = 10_000


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    replayed: tuple[DeliveryRecord, ...]  # back to accepted in the log
    refused: tuple[tuple[str, str], ...]  # (delivery id, error code)
    deferred: frozenset[str] = frozenset()  # replayed, but left to the outbox (broker down)


class Replayer:
    """Replays deliveries through the delivery log, the broker and the dispatcher."""

    def __init__(self, delivery_log: DeliveryLog, broker: Broker, dispatcher: Dispatcher) -> None:
        self._log = delivery_log
        self._broker = broker
        self._dispatcher = dispatcher

    async def replay(self, delivery_ids: Sequence[str], actor: str) -> ReplayOutcome:
        """Replay each of ``delivery_ids`` (duplicates once); refusals are reported, not raised."""
        replayed: list[DeliveryRecord] = []
        refused: list[tuple[str, str]] = []
        for delivery_id in dict.fromkeys(delivery_ids):
            try:
                replayed.append(await self._log.replay(delivery_id, actor))
            except (ConflictError, NotFoundError) as exc:
                refused.append((delivery_id, exc.code))
        by_method: dict[str, list[DeliveryRecord]] = defaultdict(list)
        for record in replayed:
            by_method[record.method.value].append(record)
        deferred: set[str] = set()
        for method, records in by_method.items():
            try:
                await self._requeue(method, records, actor)
            except UnavailableError as exc:
                log.warning(
                    "replay_deferred_to_outbox",
                    method=method,
                    code=exc.code,
                    deliveries=len(records),
                )
                deferred.update(r.id for r in records)
        return ReplayOutcome(tuple(replayed), tuple(refused), frozenset(deferred))

    async def dead_for(self, recipient: str) -> list[str]:
        """The ids of every dead-lettered delivery to ``recipient`` (at most 10,000)."""
        ids: list[str] = []
        while len(ids) < MAX_PER_DESTINATION:
            page = await self._log.dead_letters(recipient=recipient, limit=PAGE, offset=len(ids))
            ids.extend(item.delivery.id for item in page)
            if len(page) < PAGE:
                break
        return ids

    async def _requeue(self, method: str, records: list[DeliveryRecord], actor: str) -> None:
        ids = [r.id for r in records]
        moved = await self._broker.requeue_dead(
            method, delivery_ids=set(ids), attempts_seen={r.id: r.attempts for r in records}
        )
        if moved == len(ids):
            await self._log.mark_published(ids, republished=True, actor=actor)
            return
        by_document: dict[str, list[DeliveryRecord]] = defaultdict(list)
        for record in records:
            by_document[record.document].append(record)
        for document_id, group in by_document.items():
            document = await self._document(document_id)
            await self._dispatcher.publish(document, group, None, republished=True)

    async def _document(self, document_id: str) -> DocumentRecord:
        view = await self._log.get_document(document_id)
        if view is None:
            raise NotFoundError(f"no document {document_id}", code="not_found.document")
        return view.document
