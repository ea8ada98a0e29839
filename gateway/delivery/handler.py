"""The worker's handler: one broker message -> one adapter call -> the delivery log, idempotently.

Rules, per message (the worker loop turns Retry/Permanent into retry queues and dead letters):

    delivery already delivered in the log  -> done (ack): a broker redelivery is never re-sent
    adapter returns                        -> log delivered
    adapter raises a retryable error       -> log retrying, Retry(retry_after_s); on the last try
                                              log dead_lettered and Permanent
    adapter raises a permanent error       -> log dead_lettered with the reason, Permanent
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import NoReturn

import structlog

from adapters.base import Adapter, OutboundDelivery
from gateway.broker import DeliveryMessage
from gateway.core.directory import DirectoryHolder
from gateway.core.errors import LgspError
from gateway.core.metrics import Metrics
from gateway.delivery.worker import Permanent, Retry
from gateway.store import DeliveryLog
from gateway.store.records import DeliveryState

log = structlog.get_logger(__name__)


class DeliveryHandler:
    """Delivers one message with the adapter of its method and records every attempt."""

    def __init__(
        self,
        *,
        delivery_log: DeliveryLog,
        directory: DirectoryHolder,
        adapters: Mapping[str, Adapter],
        metrics: Metrics,
        max_tries: int,
    ) -> None:
        self._log = delivery_log
        self._directory = directory
        self._adapters = adapters
        self._metrics = metrics
        self._max_tries = max_tries

    async def __call__(self, msg: DeliveryMessage) -> None:
        structlog.contextvars.bind_contextvars(
            delivery_id=msg.delivery_id, document=msg.document_pk, recipient=msg.recipient
        )
        try:
            await self._handle(msg)
        finally:
            structlog.contextvars.unbind_contextvars("delivery_id", "document", "recipient")

    async def _handle(self, msg: DeliveryMessage) -> None:
        if await self._log.is_delivered(msg.delivery_id):
            self._metrics.deliveries.labels(msg.method, "redelivered").inc()
            log.info("delivery_already_done", attempt=msg.attempt)
            return
        adapter = self._adapters.get(msg.method)
        if adapter is None:
            await self._fail(msg, f"no adapter for method {msg.method!r}", "delivery.no_adapter")
        outbound = await self._outbound(msg)
        try:
            outcome = await adapter.deliver(outbound)
        except LgspError as exc:
            await self._failed_attempt(msg, exc)
        await self._log.mark_delivered(msg.delivery_id, detail=outcome.detail)
        self._metrics.deliveries.labels(msg.method, "delivered").inc()
        age_s = (datetime.now(UTC) - msg.published_at).total_seconds()
        self._metrics.delivery_latency_s.labels(msg.method).observe(max(age_s, 0.0))
        log.info("delivered", attempt=msg.attempt, detail=outcome.detail)

    async def _outbound(self, msg: DeliveryMessage) -> OutboundDelivery:
        if msg.body is not None:
            package = msg.body
        elif msg.claim_check_sha256:
            package = await self._log.get_package(msg.claim_check_sha256)
        else:
            await self._fail(msg, "message carries neither body nor claim check", "broker.empty")
        participant = self._directory.current.get(msg.recipient)
        return OutboundDelivery(
            delivery_id=msg.delivery_id,
            document_id=msg.document_pk,
            organ_id=msg.recipient,
            package=package,
            content_type=msg.content_type,
            url=participant.delivery.url if participant else None,
            attempt=msg.attempt,
        )

    async def _failed_attempt(self, msg: DeliveryMessage, exc: LgspError) -> NoReturn:
        reason = f"{exc.code}: {exc.message}"
        if not exc.retryable:
            await self._fail(msg, reason, exc.code)
        if msg.attempt >= self._max_tries:
            await self._fail(msg, f"gave up after {msg.attempt} tries; last: {reason}", exc.code)
        await self._log.record_attempt(
            msg.delivery_id, outcome="retry", detail=reason,
            next_state=DeliveryState.RETRYING, error=reason,
        )
        self._metrics.deliveries.labels(msg.method, "retry").inc()
        log.warning("delivery_retry", attempt=msg.attempt, reason=reason)
        raise Retry(reason, defer_s=getattr(exc, "retry_after_s", None)) from exc

    async def _fail(self, msg: DeliveryMessage, reason: str, code: str) -> NoReturn:
        await self._log.record_attempt(
            msg.delivery_id, outcome="dead_lettered", detail=reason,
            next_state=DeliveryState.DEAD_LETTERED, error=reason,
        )
        self._metrics.deliveries.labels(msg.method, "dead_lettered").inc()
        log.error("delivery_dead_lettered", attempt=msg.attempt, reason=reason, code=code)
        raise Permanent(reason)


class LogMailbox:
    """The mailbox sink: the log already holds the package; a delivered mailbox delivery is
    what ``GET /api/v1/inbox`` lists, so putting an item needs no write of its own."""

    async def put(self, delivery_id: str, recipient: str) -> None:
        log.info("mailbox_put", delivery_id=delivery_id, recipient=recipient)
