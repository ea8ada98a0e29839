"""The delivery loop: consume a method's queue, deliver concurrently, record by batch, then settle.

The rules (``attempt`` counts from 1; a *batch* is what arrived, or finished, while the previous
store call of the same kind ran: at most ``prefetch`` messages; see ``batching``)::

    up to ``prefetch`` messages are unsettled at once; each is delivered in its own task
    message cannot be parsed               -> dead-letter ("malformed: ..."), attempts 0
    handler.check, once per batch          -> an Attempt: no delivery (e.g. ALREADY_DELIVERED:
                                              a delivered delivery is never sent again;
                                              SETTLED: a stale copy, see ``handler``)
                                           -> Ready: handler.deliver, concurrently
    deliver returns                        -> DELIVERED
    deliver raises Retry(defer_s)          -> attempt < max_tries: RETRY; else DEAD
                                              ("max_tries N reached: ...")
    deliver raises Permanent(reason)       -> DEAD with reason
    anything else raised (check included)  -> logged, then treated as Retry(None)
    handler.commit, once per batch         -> records every attempt of the batch in ONE
                                              transaction; a DELIVERED that someone recorded
                                              first comes back ALREADY_DELIVERED, a failure
                                              of a copy that another copy's recorded failure
                                              made stale comes back SETTLED; the message
                                              comes back with the count after the commit
    the commit fails                       -> the batch's attempts become Retry(None)
                                              ("not recorded: ..."), not recorded
    only THEN each message is settled      -> DELIVERED, ALREADY_DELIVERED, SETTLED: ack
                                           -> RETRY: copy with attempt+1 (and the count
                                              after the commit) to the retry queue of the
                                              smallest delay >= defer_s (None: the schedule's
                                              delay for this attempt), confirmed, ack
                                           -> DEAD: copy to the dead letters with the reason
                                              (and the count after the commit), confirmed, ack
    publishing the retry/dead copy fails   -> nack with requeue: the message is never lost
                                              (but if its attempt was recorded, it is now a
                                              stale copy and is acked when it comes back;
                                              the sweep republishes the delivery)

So a message is acknowledged only after its attempt is committed: a worker that dies before
its ack (at any point, between the adapter call and the commit included) gets the message
redelivered, and the recipient may get the same package again, with the same delivery id
(``Idempotency-Key``); the log records one success. (Once a failed attempt is committed, its
redelivered message is a stale copy: acked unsent, its retry being the one published, or, if the
worker died before publishing it, the sweep's.) ``stop()`` drains: it cancels the consumer,
lets in-flight messages finish (commit included) for up to ``drain_timeout_s``, cancels the rest
(their messages go back to the queue) and closes.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from dataclasses import dataclass, replace

import structlog

from gateway.broker import Broker, DeliveryMessage, Received, Subscription
from gateway.core.errors import ConfigError, UnavailableError
from gateway.delivery.batching import Batcher
from gateway.delivery.outcomes import (
    Attempt,
    BatchHandler,
    Handler,
    Permanent,
    PlainHandler,
    Ready,
    Retry,
    Verdict,
)

__all__ = [
    "Attempt",
    "BatchHandler",
    "Permanent",
    "Ready",
    "Retry",
    "Verdict",
    "Worker",
    "WorkerRules",
]

log = structlog.get_logger(__name__)
Logger = structlog.typing.FilteringBoundLogger
_NOTHING_TO_RECORD = (Verdict.ALREADY_DELIVERED, Verdict.SETTLED)
_SETTLED_AS = {
    Verdict.DELIVERED: "acked",
    Verdict.ALREADY_DELIVERED: "acked",
    Verdict.SETTLED: "acked",
}


@dataclass(frozen=True, slots=True)
class WorkerRules:
    """Retry schedule, tries, prefetch, batch wait and drain time of a worker.

    ``batch_wait_s``: how long at most the batch check and the batch commit wait for more
    deliveries before they run with fewer than ``prefetch`` (``Batcher``'s ``wait_s``). A wait
    ends early once no more can come: the check's once ``prefetch`` messages are unsettled
    here, the commit's once, besides, no message is being checked or delivered."""

    delays_s: tuple[float, ...] = (5, 30, 120, 600, 3600)
    max_tries: int = 6
    prefetch: int = 32
    drain_timeout_s: float = 30
    batch_wait_s: float = 0.005

    def __post_init__(self) -> None:
        if not self.delays_s or self.max_tries < 1 or self.prefetch < 1:
            raise ConfigError(f"invalid worker rules {self}", code="config.invalid")
        if self.drain_timeout_s < 0:
            raise ConfigError("drain_timeout_s must not be negative", code="config.invalid")
        if self.batch_wait_s < 0:
            raise ConfigError("batch_wait_s must not be negative", code="config.invalid")

    def delay_for(self, attempt: int, defer_s: float | None) -> float:
        """The delay before attempt ``attempt + 1``, given what the handler asked for."""
        if defer_s is None:
            return self.delays_s[min(attempt, len(self.delays_s)) - 1]
        return next((d for d in self.delays_s if d >= defer_s), self.delays_s[-1])


class Worker:
    """Consumes ``<p>.q.<method>`` of ``broker`` and settles each message by ``rules``."""

    def __init__(self, broker: Broker, method: str, rules: WorkerRules | None = None) -> None:
        self.rules = rules or WorkerRules()
        topology = broker.topology
        if method not in topology.methods:
            raise ConfigError(f"method {method!r} is not in the broker topology")
        missing = set(self.rules.delays_s) - set(topology.retry_delays_s)
        if missing:
            raise ConfigError(
                f"retry delays {sorted(missing)} have no retry queue (declared: "
                f"{topology.retry_delays_s})",
                code="config.invalid",
            )
        self.broker = broker
        self.method = method
        self.outcomes: Counter[str] = Counter()
        self._handler: BatchHandler | None = None
        self._checks: Batcher[DeliveryMessage, Attempt | Ready] | None = None
        self._commits: Batcher[Attempt, Attempt] | None = None
        self._subscription: Subscription | None = None
        self._inflight: set[asyncio.Task[object]] = set()
        self._attempting = 0  # messages being checked or delivered: the next commit's to be
        self._stop_requested = asyncio.Event()
        self._stopping = False

    @property
    def commit_sizes(self) -> Counter[int]:
        """How many commits recorded how many attempts (batches at work)."""
        return self._commits.sizes if self._commits is not None else Counter()

    async def start(self, handler: BatchHandler | Handler) -> None:
        """Start consuming; returns at once. Call ``stop()`` (or ``request_stop()``) to end."""
        if self._subscription is not None:
            raise RuntimeError("worker already started")
        batch = handler if isinstance(handler, BatchHandler) else PlainHandler(handler)
        self._handler = batch
        rules = self.rules
        self._checks = Batcher(
            batch.check,
            max_size=rules.prefetch,
            wait_s=rules.batch_wait_s,
            coming=self._may_arrive,
        )
        self._commits = Batcher(
            batch.commit,
            max_size=rules.prefetch,
            wait_s=rules.batch_wait_s,
            coming=self._commit_coming,
        )
        self._subscription = await self.broker.subscribe(self.method, prefetch=self.rules.prefetch)
        await self._subscription.start(self._on_received)
        log.info("worker.started", method=self.method, prefetch=self.rules.prefetch)

    async def run(self, handler: BatchHandler | Handler) -> None:
        """Start, wait until a stop is requested (e.g. by SIGTERM), then drain and close."""
        await self.start(handler)
        await self._stop_requested.wait()
        await self.stop()

    def request_stop(self) -> None:
        """Ask ``run()`` to drain and return (safe from a signal handler)."""
        self._stop_requested.set()

    def install_signal_handlers(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """SIGTERM and SIGINT request a graceful stop."""
        loop = loop or asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)

    async def stop(self) -> None:
        """Cancel the consumer, let in-flight messages finish (bounded), then close."""
        self.request_stop()
        subscription = self._subscription
        if self._stopping or subscription is None:
            return
        self._stopping = True
        try:
            await subscription.cancel()
        except UnavailableError as exc:
            log.warning("worker.cancel_failed", method=self.method, error=str(exc))
        await self._drain()
        for batcher in (self._checks, self._commits):
            if batcher is not None:
                await batcher.aclose()
        try:
            await subscription.close()
        except UnavailableError as exc:
            log.warning("worker.close_failed", method=self.method, error=str(exc))
        log.info(
            "worker.stopped",
            method=self.method,
            outcomes=dict(self.outcomes),
            commits=sum(self.commit_sizes.values()),
        )

    async def _drain(self) -> None:
        pending = set(self._inflight)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=self.rules.drain_timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            log.warning("worker.drain_timeout", method=self.method, abandoned=len(pending))

    async def _on_received(self, received: Received) -> None:
        if self._stopping:
            return  # left unsettled: the broker requeues it when the channel closes
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            await self._process(received)
        finally:
            self._inflight.discard(task)

    async def _process(self, received: Received) -> None:
        msg = received.message
        problem = self._malformed(received)
        if msg is None or problem:
            bound = log.bind(delivery_id=received.message_id, method=self.method)
            bound.warning("delivery.malformed", reason=problem)
            await self._dead_letter(received, f"malformed: {problem}", 0, bound)
            return
        bound = log.bind(
            delivery_id=msg.delivery_id,
            document=msg.document_pk,
            method=msg.method,
            recipient=msg.recipient,
            attempt=msg.attempt,
            attempts_seen=msg.attempts_seen,
            redelivered=received.redelivered,
        )
        structlog.contextvars.bind_contextvars(  # for the handler's own lines
            delivery_id=msg.delivery_id, document=msg.document_pk, recipient=msg.recipient
        )
        try:
            attempt = await self._recorded(await self._attempt(msg, bound), bound)
        finally:
            structlog.contextvars.unbind_contextvars("delivery_id", "document", "recipient")
        await self._settle_attempt(received, attempt, bound)

    def _malformed(self, received: Received) -> str | None:
        """Why this message cannot be handled here, or None."""
        if received.message is None:
            return received.malformed_reason or "unreadable"
        if received.message.method != self.method:
            return f"method {received.message.method!r} on the {self.method!r} queue"
        return None

    def _may_arrive(self) -> int:
        """How many more messages the broker may deliver now: none while ``prefetch`` are
        unsettled here (so a batch check need not wait for more)."""
        return max(0, self.rules.prefetch - len(self._inflight))

    def _commit_coming(self) -> int:
        """How many messages may still join the batch commit: those being checked or delivered,
        and while the window is not full those the broker may still deliver (at a trickle the
        commit keeps its wait, so its batches stay as large as before)."""
        return self._attempting + self._may_arrive()

    async def _attempt(self, msg: DeliveryMessage, bound: Logger) -> Attempt:
        """Check (batched) and deliver one message; any failure becomes a verdict."""
        assert self._checks is not None
        assert self._handler is not None
        assert self._commits is not None
        self._attempting += 1
        try:
            return await self._attempt_counted(msg, bound)
        finally:
            self._attempting -= 1
            self._commits.poke()  # its commit is submitted next, before any other task runs

    async def _attempt_counted(self, msg: DeliveryMessage, bound: Logger) -> Attempt:
        assert self._checks is not None
        assert self._handler is not None
        try:
            checked = await self._checks.submit(msg)
            if isinstance(checked, Attempt):
                return checked
            msg = checked.message  # as checked (an older publisher's: with the log's count)
            return await self._handler.deliver(checked)
        except Retry as exc:
            return self._within_tries(
                Attempt(msg, Verdict.RETRY, exc.reason, exc.defer_s, code=exc.code)
            )
        except Permanent as exc:
            return Attempt(msg, Verdict.DEAD, exc.reason, code=exc.code)
        except Exception as exc:
            bound.exception("delivery.handler_error")
            return self._within_tries(Attempt(msg, Verdict.RETRY, f"{type(exc).__name__}: {exc}"))

    def _within_tries(self, attempt: Attempt) -> Attempt:
        if attempt.verdict is Verdict.RETRY and attempt.message.attempt >= self.rules.max_tries:
            why = f"max_tries {self.rules.max_tries} reached: {attempt.detail}"
            return Attempt(attempt.message, Verdict.DEAD, why, code=attempt.code)
        return attempt

    async def _recorded(self, attempt: Attempt, bound: Logger) -> Attempt:
        """``attempt`` as the batch commit recorded it (nothing to record: as it is)."""
        if attempt.verdict in _NOTHING_TO_RECORD:
            return attempt
        assert self._commits is not None
        try:
            return await self._commits.submit(attempt)
        except Exception as exc:
            bound.error("delivery.commit_failed", verdict=attempt.verdict.value, error=str(exc))
            return self._within_tries(
                Attempt(attempt.message, Verdict.RETRY, f"not recorded: {exc}")
            )

    async def _settle_attempt(self, received: Received, attempt: Attempt, bound: Logger) -> None:
        if attempt.verdict is Verdict.RETRY:
            await self._retry(received, attempt.message, attempt.detail, attempt.defer_s, bound)
        elif attempt.verdict is Verdict.DEAD:
            msg = attempt.message
            await self._dead_letter(received, attempt.detail, msg.attempt, bound, msg.attempts_seen)
        else:
            await self._settle(received, _SETTLED_AS[attempt.verdict], bound)

    async def _retry(
        self,
        received: Received,
        msg: DeliveryMessage,
        reason: str,
        defer_s: float | None,
        bound: Logger,
    ) -> None:
        delay_s = self.rules.delay_for(msg.attempt, defer_s)
        try:
            await self.broker.publish_retry(replace(msg, attempt=msg.attempt + 1), delay_s)
        except UnavailableError as exc:
            bound.error("delivery.retry_publish_failed", error=str(exc))
            await self._requeue(received, bound)
            return
        bound.info("delivery.retry_scheduled", reason=reason, delay_s=delay_s)
        await self._settle(received, "retried", bound)

    async def _dead_letter(
        self,
        received: Received,
        reason: str,
        attempts: int,
        bound: Logger,
        attempts_seen: int | None = None,
    ) -> None:
        try:
            await self.broker.dead_letter(
                self.method,
                received,
                reason=reason,
                attempts=attempts,
                attempts_seen=attempts_seen,
            )
        except UnavailableError as exc:
            bound.error("delivery.dead_letter_failed", error=str(exc))
            await self._requeue(received, bound)
            return
        bound.warning("delivery.dead_lettered", reason=reason, attempts=attempts)
        await self._settle(received, "dead_lettered", bound)

    async def _settle(self, received: Received, outcome: str, bound: Logger) -> None:
        try:
            await received.ack()
        except UnavailableError as exc:
            # not acked: the broker redelivers it (at-least-once), possibly to another worker
            bound.warning("delivery.ack_failed", outcome=outcome, error=str(exc))
            return
        self.outcomes[outcome] += 1
        bound.info("delivery.settled", outcome=outcome)

    async def _requeue(self, received: Received, bound: Logger) -> None:
        try:
            await received.requeue()
        except UnavailableError as exc:
            bound.warning("delivery.requeue_failed", error=str(exc))
            return
        self.outcomes["requeued"] += 1
