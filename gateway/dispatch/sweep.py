"""The sweep: deliveries whose broker message is overdue are published again (workers' loop).

The outbox relay (``outbox``) covers deliveries the broker never confirmed (``accepted``). Once
confirmed, a message can still fail to come back: a retry whose TTL ends while its work queue
elects a leader is held by RabbitMQ 3.10 for ``dead_letter_worker_publisher_confirm_timeout``
(180 s by default), and a broker that loses a majority loses messages. The log still says
``queued`` or ``retrying``. Every ``[delivery] sweep_interval_s`` each worker process:

1. reads the deliveries of its methods overdue by ``sweep_grace_s`` (``store.sweep``);
2. leaves alone the methods whose work queue has messages ready, or had at a round less than a
   grace ago, or since this process started less than a grace ago: behind a backlog a message
   is late, not lost, and the messages a worker took from it may still be on their way through
   an adapter (the next rounds look again);
3. claims each delivery in the store (one conditional update: of several sweeps on several hosts
   one wins, and the delivery is not due again for another grace);
4. publishes one confirmed message per claimed delivery to its work queue (by claim check, as the
   outbox relay does, with the next attempt number), then records a ``republished`` event
   (outcome ``swept``) for each confirmed one and counts it (``lgsp_deliveries_swept_total``).

The message carries the attempt count the claim saw (``attempts_seen``). A copy that still arrives
(the held retry, a sweep racing an attempt) is harmless: the worker acknowledges a message of a
delivered delivery without delivering it again, and one whose count the log has moved past (a
stale copy: an attempt of the other copy was recorded since) without sending it, so a delivery
that keeps failing has one retry chain, not two; a push carries the same delivery id as
``Idempotency-Key``. A publish that fails leaves the delivery claimed: the
sweep after the next grace tries again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

import structlog

from gateway.broker import Broker, DeliveryMessage
from gateway.core.loops import Loops, supervise
from gateway.core.metrics import Metrics
from gateway.dispatch.publishing import Dispatcher
from gateway.store.sweep import Overdue, SweepLog

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SweepRules:
    """When a delivery is overdue, and which methods this process sweeps."""

    grace_s: float
    delays_s: tuple[float, ...]  # the workers' retry schedule (``broker.retry_delays_s``)
    methods: frozenset[str]
    limit: int = 200  # deliveries published again per round, at most


@dataclass(frozen=True, slots=True)
class SweepRound:
    """What one round did: overdue found, left for a backlog, claimed by another sweep, sent."""

    overdue: int = 0
    backlogged: int = 0
    claimed_elsewhere: int = 0
    published: int = 0
    failed: int = 0


class Sweeper:
    """One process's sweep over one broker and one store."""

    def __init__(
        self,
        *,
        broker: Broker,
        sweep_log: SweepLog,
        dispatcher: Dispatcher,
        rules: SweepRules,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._broker = broker
        self._log = sweep_log
        self._dispatcher = dispatcher
        self.rules = rules
        self._metrics = metrics
        self._clock = clock
        self._started_at = clock()
        self._backlog_seen_at: dict[str, float] = {}  # by method, at a round

    async def sweep_once(self) -> SweepRound:
        """One round (see the module docstring)."""
        rules = self.rules
        overdue = await self._log.overdue(
            methods=rules.methods, grace_s=rules.grace_s, delays_s=rules.delays_s, limit=rules.limit
        )
        if not overdue:
            return SweepRound()
        backlogged = await self._backlogged({o.item.delivery.method.value for o in overdue})
        ready = [o for o in overdue if o.item.delivery.method.value not in backlogged]
        if backlogged:
            log.info("sweep_waits_for_backlog", methods=sorted(backlogged))
        claimed = {r.id for r in await self._log.claim([o.item.delivery for o in ready])}
        mine = [o for o in ready if o.item.delivery.id in claimed]
        errors = await self._broker.publish_each(self._message(o) for o in mine)
        published = [o for o, error in zip(mine, errors, strict=True) if error is None]
        await self._log.record_swept(published)
        for o in published:
            delivery = o.item.delivery
            if self._metrics is not None:
                self._metrics.swept.labels(delivery.method.value).inc()
            log.warning(
                "delivery_swept",
                delivery_id=delivery.id,
                document=delivery.document,
                recipient=delivery.recipient,
                state=delivery.state.value,
                attempt=delivery.attempts + 1,
                due_at=o.due_at.isoformat(),
            )
        outcome = SweepRound(
            overdue=len(overdue),
            backlogged=len(overdue) - len(ready),
            claimed_elsewhere=len(ready) - len(mine),
            published=len(published),
            failed=len(mine) - len(published),
        )
        failures = [e for e in errors if e is not None]
        if failures:
            log.warning("sweep_publish_failed", failed=len(failures), error=str(failures[0]))
            raise failures[0]  # the loop counts the failed round and backs off
        return outcome

    def _message(self, overdue: Overdue) -> DeliveryMessage:
        item = overdue.item
        [message] = self._dispatcher.messages(item.document, [item.delivery], None)
        return replace(message, attempt=item.delivery.attempts + 1)

    async def _backlogged(self, methods: Collection[str]) -> set[str]:
        """The methods whose work queue has messages ready, or had less than a grace ago (one
        passive declare per queue)."""
        depths = await self._broker.queue_depths()
        topology = self._broker.topology
        now = self._clock()
        for method in methods:
            if depths.get(topology.work_queue(method), 0) > 0:
                self._backlog_seen_at[method] = now
        return {
            m
            for m in methods
            if now - self._backlog_seen_at.get(m, self._started_at) < self.rules.grace_s
        }

    async def run(self, *, interval_s: float, loops: Loops | None = None) -> None:
        """``sweep_once`` every ``interval_s`` until cancelled (the ``delivery-sweep`` loop)."""

        async def round_() -> None:
            await self.sweep_once()

        await supervise(
            "delivery-sweep", round_, interval_s=interval_s, loops=loops, first_delay_s=interval_s
        )
