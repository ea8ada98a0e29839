"""The delivery loop: consume a method's queue, run the handler, then ack, retry or dead-letter.

The rules, one message at a time (``attempt`` counts from 1):

    handler returns                      -> ack
    handler raises Retry(defer_s)        -> attempt < max_tries: copy with attempt+1 to the retry
                                            queue of the smallest delay >= defer_s (None: the
                                            schedule's delay for this attempt), confirmed, THEN ack
                                         -> else dead-letter ("max_tries reached: ...")
    handler raises Permanent(reason)     -> dead-letter with reason, confirmed, THEN ack
    handler raises anything else         -> logged, then treated as Retry(None)
    message cannot be parsed             -> dead-letter ("malformed: ..."), attempts 0
    publishing the retry/dead copy fails -> nack with requeue: the message is never lost

Deliveries are at-least-once: a worker that dies before its ack gets the message redelivered.
``stop()`` drains: it cancels the consumer, lets in-flight handlers finish for up to
``drain_timeout_s``, cancels the rest (their messages go back to the queue) and closes.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import structlog

from gateway.broker import Broker, DeliveryMessage, Received, Subscription
from gateway.core.errors import ConfigError, UnavailableError

log = structlog.get_logger(__name__)

Handler = Callable[[DeliveryMessage], Awaitable[None]]


class Retry(Exception):  # noqa: N818 - a control-flow signal named by the worker contract
    """The delivery failed for now; try again after ``defer_s`` (None: the next delay)."""

    def __init__(self, reason: str = "retry requested", *, defer_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.defer_s = defer_s


class Permanent(Exception):  # noqa: N818 - a control-flow signal named by the worker contract
    """The delivery can never succeed; dead-letter it with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class WorkerRules:
    """Retry schedule, tries, prefetch and drain time of a worker."""

    delays_s: tuple[float, ...] = (5, 30, 120, 600, 3600)
    max_tries: int = 6
    prefetch: int = 32
    drain_timeout_s: float = 30

    def __post_init__(self) -> None:
        if not self.delays_s or self.max_tries < 1 or self.prefetch < 1:
            raise ConfigError(f"invalid worker rules {self}", code="config.invalid")
        if self.drain_timeout_s < 0:
            raise ConfigError("drain_timeout_s must not be negative", code="config.invalid")

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
        self._handler: Handler | None = None
        self._subscription: Subscription | None = None
        self._inflight: set[asyncio.Task[object]] = set()
        self._stop_requested = asyncio.Event()
        self._stopping = False

    async def start(self, handler: Handler) -> None:
        """Start consuming; returns at once. Call ``stop()`` (or ``request_stop()``) to end."""
        if self._subscription is not None:
            raise RuntimeError("worker already started")
        self._handler = handler
        self._subscription = await self.broker.subscribe(self.method, prefetch=self.rules.prefetch)
        await self._subscription.start(self._on_received)
        log.info("worker.started", method=self.method, prefetch=self.rules.prefetch)

    async def run(self, handler: Handler) -> None:
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
        """Cancel the consumer, let in-flight handlers finish (bounded), then close."""
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
        try:
            await subscription.close()
        except UnavailableError as exc:
            log.warning("worker.close_failed", method=self.method, error=str(exc))
        log.info("worker.stopped", method=self.method, outcomes=dict(self.outcomes))

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
            redelivered=received.redelivered,
        )
        assert self._handler is not None
        try:
            await self._handler(msg)
        except Retry as exc:
            await self._retry(received, msg, exc.reason, exc.defer_s, bound)
        except Permanent as exc:
            await self._dead_letter(received, exc.reason, msg.attempt, bound)
        except Exception as exc:
            bound.exception("delivery.handler_error")
            await self._retry(received, msg, f"{type(exc).__name__}: {exc}", None, bound)
        else:
            await self._settle(received, "acked", bound)

    def _malformed(self, received: Received) -> str | None:
        """Why this message cannot be handled here, or None."""
        if received.message is None:
            return received.malformed_reason or "unreadable"
        if received.message.method != self.method:
            return f"method {received.message.method!r} on the {self.method!r} queue"
        return None

    async def _retry(
        self,
        received: Received,
        msg: DeliveryMessage,
        reason: str,
        defer_s: float | None,
        bound: structlog.typing.FilteringBoundLogger,
    ) -> None:
        if msg.attempt >= self.rules.max_tries:
            why = f"max_tries {self.rules.max_tries} reached: {reason}"
            await self._dead_letter(received, why, msg.attempt, bound)
            return
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
        bound: structlog.typing.FilteringBoundLogger,
    ) -> None:
        try:
            await self.broker.dead_letter(self.method, received, reason=reason, attempts=attempts)
        except UnavailableError as exc:
            bound.error("delivery.dead_letter_failed", error=str(exc))
            await self._requeue(received, bound)
            return
        bound.warning("delivery.dead_lettered", reason=reason, attempts=attempts)
        await self._settle(received, "dead_lettered", bound)

    async def _settle(
        self, received: Received, outcome: str, bound: structlog.typing.FilteringBoundLogger
    ) -> None:
        try:
            await received.ack()
        except UnavailableError as exc:
            # not acked: the broker redelivers it (at-least-once), possibly to another worker
            bound.warning("delivery.ack_failed", outcome=outcome, error=str(exc))
            return
        self.outcomes[outcome] += 1
        bound.info("delivery.settled", outcome=outcome)

    async def _requeue(
        self, received: Received, bound: structlog.typing.FilteringBoundLogger
    ) -> None:
        try:
            await received.requeue()
        except UnavailableError as exc:
            bound.warning("delivery.requeue_failed", error=str(exc))
            return
        self.outcomes["requeued"] += 1
