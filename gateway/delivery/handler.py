"""The worker's handler: broker messages -> adapter calls -> the delivery log, by batch.

Rules (the worker loop batches ``check`` and ``commit`` and turns the verdicts into acks, retry
queues and dead letters; see ``gateway.delivery.worker``):

    check, once per batch          one read transaction: the batch's delivery states and
                                   attempt counts (and its claim-checked packages)
        delivery delivered already -> ALREADY_DELIVERED: acked, never sent again
        delivery dead-lettered or failed -> SETTLED: a late copy (a held retry, a swept
                                   twin), acked and not sent; only an admin's replay
                                   (which makes it ``accepted`` first) sends it again
        delivery not in the log    -> Retry ("not in the delivery log")
        message's attempts_seen is not the log's count -> SETTLED: a stale copy (another
                                   copy's attempt was recorded since: a held retry after a
                                   sweep, a copy older than a replay), acked and not sent,
                                   so that a delivery has one retry chain
        otherwise                  -> Ready, with the package bytes (a message without
                                   attempts_seen, from an older publisher, is current and
                                   takes the log's count)
    deliver, per message           adapter returns -> DELIVERED (logged, counted)
                                   adapter raises a retryable error -> Retry(retry_after_s);
                                       on the last try Permanent ("gave up after N tries")
                                   adapter raises a permanent error -> Permanent(reason)
    commit, once per batch         every attempt in one transaction (``record_attempts``):
                                   delivered / retrying / dead_lettered, attempts + 1, an event;
                                   a delivery someone delivered meanwhile stays as it is and
                                   its message is acked (ALREADY_DELIVERED); a failure counts
                                   only if the log's count is still the message's, so of two
                                   copies that failed at once one is retried and the other is
                                   acked (SETTLED, stale); a recorded failure's message comes
                                   back with the new count, which its retry or dead copy carries

A redelivery after a crash before the commit still carries the log's count: it is sent again,
under the same ``Idempotency-Key``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import NoReturn

import structlog

from adapters.base import Adapter, OutboundDelivery
from gateway.broker import DeliveryMessage
from gateway.core.directory import DirectoryHolder
from gateway.core.errors import LgspError
from gateway.core.methods import DeliveryMethod
from gateway.core.metrics import Metrics
from gateway.delivery.outcomes import Attempt, Permanent, Ready, Retry, Verdict
from gateway.store import DeliveryLog
from gateway.store.attempts import AttemptReport, AttemptResult, StoredDelivery
from gateway.store.records import DeliveryState

log = structlog.get_logger(__name__)

_ADDRESSED = frozenset({DeliveryMethod.PUSH.value, DeliveryMethod.SOAP.value})
"""Methods whose address (push URL, SOAP route) comes from the recipient's directory entry."""

_WAITING_FOR_AN_ADMIN = (DeliveryState.DEAD_LETTERED, DeliveryState.FAILED)
_STATE_OF = {
    Verdict.DELIVERED: DeliveryState.DELIVERED,
    Verdict.RETRY: DeliveryState.RETRYING,
    Verdict.DEAD: DeliveryState.DEAD_LETTERED,
}


class DeliveryHandler:
    """Delivers messages with the adapter of their method and records every attempt."""

    def __init__(
        self,
        *,
        delivery_log: DeliveryLog,
        directory: DirectoryHolder,
        adapters: Mapping[str, Adapter],
        metrics: Metrics,
        max_tries: int,
        refresh_directory: Callable[[], Awaitable[object]] | None = None,
        delay_for: Callable[[int, float | None], float] | None = None,
    ) -> None:
        """``refresh_directory``: reload ``directory`` from the store when a message is for a
        recipient it does not know yet (added by another process in the last second).
        ``delay_for(attempt, defer_s)``: the worker's retry delay (``WorkerRules.delay_for``),
        recorded with each retry so that the sweep knows when it is due."""
        self._log = delivery_log
        self._directory = directory
        self._refresh_directory = refresh_directory
        self._adapters = adapters
        self._metrics = metrics
        self._max_tries = max_tries
        self._delay_for = delay_for

    async def check(self, messages: Sequence[DeliveryMessage]) -> list[Attempt | Ready]:
        stored, packages = await self._log.check_batch(
            (m.delivery_id for m in messages),
            {
                m.delivery_id: m.claim_check_sha256
                for m in messages
                if m.body is None and m.claim_check_sha256
            },
        )
        return [self._checked(m, stored.get(m.delivery_id), packages) for m in messages]

    def _checked(
        self, msg: DeliveryMessage, stored: StoredDelivery | None, packages: Mapping[str, bytes]
    ) -> Attempt | Ready:
        if stored is None:  # retried (and in the end dead-lettered), as any store failure
            reason = f"delivery {msg.delivery_id} is not in the delivery log"
            return Attempt(msg, Verdict.RETRY, reason)
        state = stored.state
        if state is DeliveryState.DELIVERED:
            self._not_sent(msg, "redelivered", log.info, "delivery_already_done")
            return Attempt(msg, Verdict.ALREADY_DELIVERED, "already delivered")
        if state in _WAITING_FOR_AN_ADMIN:
            self._not_sent(msg, "stale", log.warning, "delivery_copy_dropped", state=state.value)
            return Attempt(msg, Verdict.SETTLED, f"the delivery is {state.value}")
        if msg.attempts_seen != stored.attempts:
            if msg.attempts_seen is not None:
                return self._stale(msg, stored.attempts)
            msg = replace(msg, attempts_seen=stored.attempts)  # an older publisher's: current
        return self._ready(msg, packages)

    @staticmethod
    def _ready(msg: DeliveryMessage, packages: Mapping[str, bytes]) -> Attempt | Ready:
        """A current copy with its package (in the body, or fetched by the check)."""
        if msg.body is not None:
            return Ready(msg, msg.body)
        package = packages.get(msg.claim_check_sha256 or "")
        if package is None:
            reason = (
                "message carries neither body nor claim check"
                if not msg.claim_check_sha256
                else f"no package {msg.claim_check_sha256} in the log"
            )
            return Attempt(msg, Verdict.DEAD, reason)
        return Ready(msg, package)

    def _stale(self, msg: DeliveryMessage, attempts: int) -> Attempt:
        """A copy whose count the log has moved past: acked, not sent (see the module)."""
        self._not_sent(msg, "stale", log.info, "delivery_stale_copy", attempts_now=attempts)
        return Attempt(msg, Verdict.SETTLED, f"a stale copy: the log counts {attempts} attempts")

    def _not_sent(
        self,
        msg: DeliveryMessage,
        outcome: str,
        emit: Callable[..., object],
        event: str,
        **extra: object,
    ) -> None:
        """A message settled without an adapter call: counted under ``outcome``, logged."""
        self._metrics.deliveries.labels(msg.method, outcome).inc()
        emit(
            event,
            delivery_id=msg.delivery_id,
            document=msg.document_pk,
            recipient=msg.recipient,
            attempt=msg.attempt,
            attempts_seen=msg.attempts_seen,
            **extra,
        )

    async def deliver(self, ready: Ready) -> Attempt:
        msg = ready.message
        adapter = self._adapters.get(msg.method)
        if adapter is None:
            self._dead(msg, f"no adapter for method {msg.method!r}", "delivery.no_adapter")
        if ready.package is None:
            self._dead(msg, "the package was not fetched", "broker.empty")
        try:
            if self._refresh_directory is not None and self._unknown_address(msg):
                await self._refresh_directory()
            outcome = await adapter.deliver(self._outbound(msg, ready.package))
        except LgspError as exc:
            self._failed_attempt(msg, exc)
        self._metrics.deliveries.labels(msg.method, "delivered").inc()
        age_s = (datetime.now(UTC) - msg.published_at).total_seconds()
        self._metrics.delivery_latency_s.labels(msg.method).observe(max(age_s, 0.0))
        log.info("delivered", attempt=msg.attempt, detail=outcome.detail)
        return Attempt(msg, Verdict.DELIVERED, outcome.detail)

    async def commit(self, attempts: Sequence[Attempt]) -> list[Attempt]:
        reports = [
            AttemptReport(
                a.message.delivery_id,
                _STATE_OF[a.verdict],
                a.detail,
                None if a.verdict is Verdict.DELIVERED else a.detail,
                None if a.verdict is Verdict.DELIVERED else a.code,
                self._retry_in_s(a),
                attempts_seen=a.message.attempts_seen,
            )
            for a in attempts
            if a.verdict in _STATE_OF
        ]
        results = iter(await self._log.record_attempts(reports))
        return [self._recorded(a, next(results)) if a.verdict in _STATE_OF else a for a in attempts]

    def _recorded(self, attempt: Attempt, result: AttemptResult) -> Attempt:
        """``attempt`` as ``record_attempts`` left it (see the module docstring)."""
        msg, verdict = attempt.message, attempt.verdict
        if result is AttemptResult.ALREADY_DELIVERED:
            return replace(attempt, verdict=Verdict.ALREADY_DELIVERED)
        if result is AttemptResult.STALE:
            log.info(
                "delivery_stale_copy",
                delivery_id=msg.delivery_id,
                document=msg.document_pk,
                recipient=msg.recipient,
                attempt=msg.attempt,
                attempts_seen=msg.attempts_seen,
                verdict=verdict.value,
            )
            return replace(attempt, verdict=Verdict.SETTLED, detail=f"stale: {attempt.detail}")
        seen = msg.attempts_seen
        if (
            result is AttemptResult.APPLIED
            and verdict is not Verdict.DELIVERED
            and seen is not None
        ):
            # a failure applies only at the count its message saw: the log's is now one more
            return replace(attempt, message=replace(msg, attempts_seen=seen + 1))
        return attempt

    def _retry_in_s(self, attempt: Attempt) -> float | None:
        if attempt.verdict is not Verdict.RETRY or self._delay_for is None:
            return None
        return self._delay_for(attempt.message.attempt, attempt.defer_s)

    def _unknown_address(self, msg: DeliveryMessage) -> bool:
        return msg.method in _ADDRESSED and msg.recipient not in self._directory.current

    def _outbound(self, msg: DeliveryMessage, package: bytes) -> OutboundDelivery:
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

    def _failed_attempt(self, msg: DeliveryMessage, exc: LgspError) -> NoReturn:
        reason = f"{exc.code}: {exc.message}"
        if not exc.retryable:
            self._dead(msg, reason, exc.code)
        if msg.attempt >= self._max_tries:
            self._dead(msg, f"gave up after {msg.attempt} tries; last: {reason}", exc.code)
        self._metrics.deliveries.labels(msg.method, "retry").inc()
        log.warning("delivery_retry", attempt=msg.attempt, reason=reason)
        raise Retry(reason, defer_s=getattr(exc, "retry_after_s", None), code=exc.code) from exc

    def _dead(self, msg: DeliveryMessage, reason: str, code: str) -> NoReturn:
        self._metrics.deliveries.labels(msg.method, "dead_lettered").inc()
        log.error("delivery_dead_lettered", attempt=msg.attempt, reason=reason, code=code)
        raise Permanent(reason, code=code)


class LogMailbox:
    """The mailbox sink: the log already holds the package; a delivered mailbox delivery is
    what ``GET /api/v1/inbox`` lists, so putting an item needs no write of its own."""

    async def put(self, delivery_id: str, recipient: str) -> None:
        log.info("mailbox_put", delivery_id=delivery_id, recipient=recipient)
