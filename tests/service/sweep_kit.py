"""The kit of the sweep and retry-chain tests: a push topology, a store, a worker, a sweep.

Fixtures ``log`` (a delivery log on SQLite or PostgreSQL) and ``broker`` (the push method's
queues under a fresh prefix) are re-exported by ``conftest``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import aio_pika
import pytest
from service_sites import BrokerSite

from adapters.base import DeliveryOutcome, OutboundDelivery, TransientDeliveryError
from gateway.broker import Broker, DeliveryMessage
from gateway.core.directory import DirectoryHolder
from gateway.core.metrics import Metrics
from gateway.delivery.handler import DeliveryHandler
from gateway.delivery.worker import Worker, WorkerRules
from gateway.dispatch.publishing import Dispatcher
from gateway.dispatch.sweep import Sweeper, SweepRules
from gateway.edxml.formats import PackageFormat
from gateway.edxml.model import PackageKind
from gateway.store import DeliveryLog, DeliveryRecord, DeliveryState, NewDocument
from gateway.store.attempts import AttemptReport
from gateway.store.sweep import SweepLog

DELAYS_S = (0.2, 0.5)
GRACE_S = 0.5
RULES = WorkerRules(delays_s=DELAYS_S, max_tries=4, prefetch=8, drain_timeout_s=5)
RECIPIENT = "000.00.01.H56"
PACKAGE = b"<edXML:edXMLEnvelope>sweep</edXML:edXMLEnvelope>"


async def eventually(check: Callable[[], Awaitable[bool]], what: str, limit_s: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)


class CountingAdapter:
    """An adapter (``adapters.base.Adapter``) that counts the calls and takes every package, or
    (while ``failing``) answers each with a transient error, as a recipient that is down. Its
    first ``together`` calls wait for each other (10 s at most) before they answer."""

    def __init__(self, *, failing: bool = False, together: int = 0) -> None:
        self.calls: list[OutboundDelivery] = []
        self.failing = failing
        self._together = together
        self._all_in = asyncio.Event()

    async def deliver(self, delivery: OutboundDelivery) -> DeliveryOutcome:
        self.calls.append(delivery)
        if len(self.calls) == self._together:
            self._all_in.set()
        if len(self.calls) <= self._together:
            await asyncio.wait_for(self._all_in.wait(), 10)
        if self.failing:
            raise TransientDeliveryError("the recipient is down", code="delivery.unavailable")
        return DeliveryOutcome(True, "taken")

    async def aclose(self) -> None:
        return None

    def count(self, delivery_id: str) -> int:
        return sum(1 for call in self.calls if call.delivery_id == delivery_id)


@pytest.fixture
async def broker(test_broker: BrokerSite) -> AsyncIterator[Broker]:
    """The push method's queues under a fresh prefix of the run's, deleted after the test."""
    prefix = test_broker.new_prefix("s")
    async with await Broker.connect(
        test_broker.url, prefix=prefix, methods=("push",), retry_delays_s=DELAYS_S
    ) as connected:
        await connected.declare_topology()
        yield connected
    connection = await aio_pika.connect(test_broker.url)
    async with connection, connection.channel() as channel:
        await connected.topology.delete(channel)


def sweeper(
    broker: Broker,
    log: DeliveryLog,
    metrics: Metrics | None = None,
    grace_s: float = GRACE_S,
    clock: Callable[[], float] = time.monotonic,
) -> Sweeper:
    """A sweep of the push method; it sweeps nothing in its first ``grace_s`` (a new process).
    ``clock`` times its memory of a backlog (the store's own clock times the overdue rows)."""
    return Sweeper(
        broker=broker,
        sweep_log=SweepLog(log.engines),
        dispatcher=Dispatcher(broker=broker, delivery_log=log, claim_check_threshold_bytes=0),
        rules=SweepRules(grace_s=grace_s, delays_s=DELAYS_S, methods=frozenset({"push"})),
        metrics=metrics,
        clock=clock,
    )


def new_document() -> NewDocument:
    return NewDocument(
        dedup_key=f"000.00.00.H56|{secrets.token_hex(4)}|0",
        kind=PackageKind.DOCUMENT,
        sender="000.00.00.H56",
        document_id="000.00.00.H56,2024/05/02,123/UBND-VP",
        format=PackageFormat.XML,
        signer_fingerprint="ab" * 32,
        signer_subject="CN=UBND tỉnh Thanh Hóa",
        algorithm="rsa-sha256",
        caller="client:000.00.00.H56",
        received_at=datetime.now(UTC),
    )


async def queued_delivery(log: DeliveryLog) -> DeliveryRecord:
    """A delivery the broker confirmed (``queued``), with no message anywhere: it was lost."""
    result = await log.record_intake(new_document(), PACKAGE, [(RECIPIENT, "push")])
    [delivery] = result.deliveries
    await log.mark_published([delivery.id])
    return delivery


async def retrying_delivery(log: DeliveryLog, retry_in_s: float) -> DeliveryRecord:
    """A delivery whose first attempt failed and whose retry waits ``retry_in_s`` (as a worker
    records it); no message is published here."""
    delivery = await queued_delivery(log)
    await log.record_attempts(
        [
            AttemptReport(
                delivery.id,
                DeliveryState.RETRYING,
                "status 503",
                "status 503",
                "delivery.unavailable",
                retry_in_s=retry_in_s,
            )
        ]
    )
    return delivery


async def trail(log: DeliveryLog, delivery: DeliveryRecord) -> list[tuple[str, str]]:
    view = await log.get_document(delivery.document)
    assert view is not None
    return [(e.kind.value, e.outcome) for e in view.events if e.delivery == delivery.id]


async def state_of(log: DeliveryLog, delivery: DeliveryRecord) -> DeliveryState:
    record = await log.get_delivery(delivery.id)
    assert record is not None
    return record.state


def work_depth(broker: Broker, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await broker.queue_depths())[broker.topology.work_queue("push")] == count

    return check


async def started_worker(
    log: DeliveryLog, broker: Broker, adapter: CountingAdapter, metrics: Metrics
) -> Worker:
    """A push worker delivering through ``adapter``, as the worker role builds it."""
    handler = DeliveryHandler(
        delivery_log=log,
        directory=DirectoryHolder(),
        adapters={"push": adapter},
        metrics=metrics,
        max_tries=RULES.max_tries,
        delay_for=RULES.delay_for,
    )
    worker = Worker(broker, "push", RULES)
    await worker.start(handler)
    return worker


def late_copy(
    delivery: DeliveryRecord, attempt: int, attempts_seen: int | None = None
) -> DeliveryMessage:
    """A copy of ``delivery``'s message that arrives late (a retry the broker held back);
    ``attempts_seen`` None: as an older publisher made it, without the header."""
    return DeliveryMessage(
        delivery_id=delivery.id,
        document_pk=delivery.document,
        recipient=RECIPIENT,
        method="push",
        attempt=attempt,
        body=PACKAGE,
        attempts_seen=attempts_seen,
    )


async def is_state(log: DeliveryLog, delivery: DeliveryRecord, state: DeliveryState) -> bool:
    return await state_of(log, delivery) is state


async def settled(worker: Worker, outcome: str, count: int) -> bool:
    return worker.outcomes[outcome] >= count
