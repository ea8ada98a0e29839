"""The workers' sweep on the real broker and real stores (SQLite and PostgreSQL).

A delivery whose broker message is lost (the log says ``retrying`` or ``queued``, no message
anywhere) is published again once it is overdue, and delivered once; one whose message is still
on its way is left alone; two sweeps racing each other publish each delivery once; a copy that
still arrives after the delivery is delivered is acknowledged without a second delivery, and one
of a delivery dead-lettered meanwhile is acknowledged without being sent.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from service_kit import DEPARTMENT, DISTRICT, METRICS_HEADERS, PushReceiver, StartGateway, states
from service_kit import new_document as new_package
from service_sites import BrokerSite

from adapters.base import DeliveryOutcome, OutboundDelivery
from gateway.broker import Broker, DeliveryMessage
from gateway.core.directory import DirectoryHolder
from gateway.core.metrics import Metrics
from gateway.delivery.handler import DeliveryHandler
from gateway.delivery.worker import Worker, WorkerRules
from gateway.dispatch.publishing import Dispatcher
from gateway.dispatch.sweep import Sweeper, SweepRules
from gateway.edxml.formats import PackageFormat
from gateway.edxml.model import PackageKind
from gateway.store import DeliveryLog, DeliveryRecord, DeliveryState, EventKind, NewDocument
from gateway.store.attempts import AttemptReport
from gateway.store.sweep import SWEPT, SweepLog

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
    """An adapter (``adapters.base.Adapter``) that takes every package and counts the calls."""

    def __init__(self) -> None:
        self.calls: list[OutboundDelivery] = []

    async def deliver(self, delivery: OutboundDelivery) -> DeliveryOutcome:
        self.calls.append(delivery)
        return DeliveryOutcome(True, "taken")

    async def aclose(self) -> None:
        return None

    def count(self, delivery_id: str) -> int:
        return sum(1 for call in self.calls if call.delivery_id == delivery_id)


@pytest.fixture
async def log(store_url: str) -> AsyncIterator[DeliveryLog]:
    opened = await DeliveryLog.open(store_url)
    try:
        yield opened
    finally:
        await opened.aclose()


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
    broker: Broker, log: DeliveryLog, metrics: Metrics | None = None, grace_s: float = GRACE_S
) -> Sweeper:
    """A sweep of the push method; it sweeps nothing in its first ``grace_s`` (a new process)."""
    return Sweeper(
        broker=broker,
        sweep_log=SweepLog(log.engines),
        dispatcher=Dispatcher(broker=broker, delivery_log=log, claim_check_threshold_bytes=0),
        rules=SweepRules(grace_s=grace_s, delays_s=DELAYS_S, methods=frozenset({"push"})),
        metrics=metrics,
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


def late_copy(delivery: DeliveryRecord, attempt: int) -> DeliveryMessage:
    """A copy of ``delivery``'s message that arrives late (a retry the broker held back)."""
    return DeliveryMessage(
        delivery_id=delivery.id,
        document_pk=delivery.document,
        recipient=RECIPIENT,
        method="push",
        attempt=attempt,
        body=PACKAGE,
    )


async def test_a_lost_retry_is_swept_and_delivered_once_and_a_late_copy_is_not_delivered_again(
    log: DeliveryLog, broker: Broker
) -> None:
    lost = await retrying_delivery(log, retry_in_s=0.2)
    adapter = CountingAdapter()
    metrics = Metrics()
    worker = await started_worker(log, broker, adapter, metrics)
    sweep = sweeper(broker, log, metrics)
    try:
        assert (await sweep.sweep_once()).published == 0  # due in 0.2 s, overdue 0.5 s later
        await asyncio.sleep(0.2 + GRACE_S + 0.1)
        swept = await sweep.sweep_once()
        assert (swept.overdue, swept.published) == (1, 1)
        await eventually(
            lambda: _is(log, lost, DeliveryState.DELIVERED), "the swept delivery delivered"
        )
        assert adapter.count(lost.id) == 1
        [call] = adapter.calls
        assert (call.package, call.attempt) == (PACKAGE, 2)  # by claim check, the next attempt

        # The retry copy the broker held back arrives after all: acknowledged, not delivered.
        await broker.publish(late_copy(lost, attempt=2))
        await eventually(lambda: _settled(worker, "acked", 2), "the late copy acknowledged")
        assert adapter.count(lost.id) == 1
        assert metrics.deliveries.labels("push", "redelivered")._value.get() == 1
        assert (await sweep.sweep_once()).overdue == 0  # delivered: nothing more to sweep
    finally:
        await worker.stop()
    assert await trail(log, lost) == [  # the late copy changed nothing
        ("published", "confirmed"),
        ("retry_scheduled", "retry"),
        ("republished", SWEPT),
        ("delivered", "delivered"),
    ]
    assert metrics.swept.labels("push")._value.get() == 1


async def test_a_late_copy_of_a_dead_lettered_delivery_is_acknowledged_and_not_sent(
    log: DeliveryLog, broker: Broker
) -> None:
    """Two retry chains (a swept attempt and the copy RabbitMQ held back): once one ends the
    delivery dead-lettered, the other's copy must not send it again; only a replay does."""
    dead = await retrying_delivery(log, retry_in_s=0.2)
    await log.record_attempts(
        [AttemptReport(dead.id, DeliveryState.DEAD_LETTERED, "gave up", "gave up", "delivery.x")]
    )
    adapter = CountingAdapter()
    metrics = Metrics()
    worker = await started_worker(log, broker, adapter, metrics)
    try:
        await broker.publish(late_copy(dead, attempt=2))
        await eventually(lambda: _settled(worker, "acked", 1), "the late copy acknowledged")
    finally:
        await worker.stop()
    assert adapter.calls == []
    assert metrics.deliveries.labels("push", "stale")._value.get() == 1
    assert await state_of(log, dead) is DeliveryState.DEAD_LETTERED
    assert await trail(log, dead) == [
        ("published", "confirmed"),
        ("retry_scheduled", "retry"),
        ("dead_lettered", "dead_lettered"),
    ]


async def _is(log: DeliveryLog, delivery: DeliveryRecord, state: DeliveryState) -> bool:
    return await state_of(log, delivery) is state


async def _settled(worker: Worker, outcome: str, count: int) -> bool:
    return worker.outcomes[outcome] >= count


async def test_messages_still_on_their_way_are_not_swept_before_the_grace(
    log: DeliveryLog, broker: Broker
) -> None:
    grace_s = 2.0
    sweep = sweeper(broker, log, grace_s=grace_s)
    on_time = await retrying_delivery(log, retry_in_s=0.2)  # its retry comes back in 0.2 s
    later = await retrying_delivery(log, retry_in_s=600.0)  # the recipient said Retry-After 600
    fresh = await queued_delivery(log)  # its message was just confirmed
    for _ in range(3):  # within the grace: their messages may still be on their way
        assert (await sweep.sweep_once()).overdue == 0
        await asyncio.sleep(0.3)
    await asyncio.sleep(0.2 + grace_s)
    # None of their messages exists: past the grace the two that were due are published again;
    # the one whose recipient asked for ten minutes is not due yet.
    swept = await sweep.sweep_once()
    assert (swept.overdue, swept.published) == (2, 2)
    assert ("republished", SWEPT) in await trail(log, on_time)
    assert ("republished", SWEPT) in await trail(log, fresh)
    assert ("republished", SWEPT) not in await trail(log, later)
    assert (await broker.queue_depths())[broker.topology.work_queue("push")] == 2


async def test_a_backlogged_work_queue_is_left_alone_then_swept_once_it_is_empty(
    log: DeliveryLog, broker: Broker, test_broker: BrokerSite
) -> None:
    lost = await queued_delivery(log)
    other = DeliveryMessage(
        delivery_id="someone-else",
        document_pk="doc",
        recipient=RECIPIENT,
        method="push",
        body=b"<x/>",
    )
    sweep = sweeper(broker, log)
    await broker.publish(other)  # a backlog of one: lost's message may be behind it
    await asyncio.sleep(GRACE_S + 0.1)
    held = await sweep.sweep_once()
    assert (held.overdue, held.backlogged, held.published) == (1, 1, 0)
    connection = await aio_pika.connect(test_broker.url)
    async with connection, connection.channel() as channel:
        await (await channel.get_queue(broker.topology.work_queue("push"))).purge()
    # Empty now, but the messages a worker took from it may still be in its adapter calls.
    assert (await sweep.sweep_once()).backlogged == 1
    await asyncio.sleep(GRACE_S + 0.1)
    swept = await sweep.sweep_once()
    assert (swept.overdue, swept.published) == (1, 1)
    await eventually(work_depth(broker, 1), "lost's message in the work queue")
    assert await state_of(log, lost) is DeliveryState.QUEUED  # the worker will move it


async def test_two_sweeps_racing_publish_each_overdue_delivery_once(
    store_url: str, log: DeliveryLog, broker: Broker
) -> None:
    lost = [await retrying_delivery(log, retry_in_s=0.2) for _ in range(4)]
    lost += [await queued_delivery(log) for _ in range(2)]
    other_host = await DeliveryLog.open(store_url)  # another process: its own pool
    sweeps = (sweeper(broker, log), sweeper(broker, other_host))
    await asyncio.sleep(0.2 + GRACE_S + 0.1)
    try:
        # Both read the same overdue rows before either claims: the store picks one claimant.
        logs = (SweepLog(log.engines), SweepLog(other_host.engines))
        seen = [
            await each.overdue(methods={"push"}, grace_s=GRACE_S, delays_s=DELAYS_S)
            for each in logs
        ]
        assert [len(s) for s in seen] == [6, 6]
        claims = await asyncio.gather(
            *(each.claim([o.item.delivery for o in s]) for each, s in zip(logs, seen, strict=True))
        )
        ids = [r.id for claimed in claims for r in claimed]
        assert sorted(ids) == sorted(d.id for d in lost)  # each exactly once
        assert (await logs[0].overdue(methods={"push"}, grace_s=GRACE_S, delays_s=DELAYS_S)) == []

        # Two whole sweeps at once. Claimed and never published, the first six are overdue
        # again after another grace; three more are overdue for the first time.
        more = [await retrying_delivery(log, retry_in_s=0.2) for _ in range(3)]
        await asyncio.sleep(0.2 + GRACE_S + 0.1)
        started = datetime.now(UTC)
        rounds = await asyncio.gather(*(each.sweep_once() for each in sweeps))
        assert sum(r.published for r in rounds) == 9
        await eventually(work_depth(broker, 9), "nine messages in the work queue")
        await asyncio.sleep(0.3)
        assert (await broker.queue_depths())[broker.topology.work_queue("push")] == 9
        for delivery in lost + more:
            assert (await trail(log, delivery)).count(("republished", SWEPT)) == 1
        # Claimed: the due time moved on, so not overdue again before another grace.
        for delivery in lost + more:
            record = await log.get_delivery(delivery.id)
            assert record is not None
            assert record.updated_at >= started
    finally:
        await other_host.aclose()


async def test_the_worker_role_sweeps_a_lost_retry_and_the_recipient_gets_it_once(
    start_gateway: StartGateway, push_receiver: PushReceiver, test_broker: BrokerSite
) -> None:
    push_receiver.script = [503]
    gw = await start_gateway(
        push={DISTRICT: push_receiver.url},
        env={
            "LGSP_BROKER__RETRY_DELAYS_S": "3",
            "LGSP_DELIVERY__SWEEP_INTERVAL_S": "0.3",
            "LGSP_DELIVERY__SWEEP_GRACE_S": "1",
        },
    )
    signed = gw.sign(new_package(DEPARTMENT, [DISTRICT], number="1/SWEEP"), DEPARTMENT)
    status, answer = await gw.submit(signed, DEPARTMENT)
    assert status == 202, answer
    await gw.wait_for(answer["id"], DEPARTMENT, lambda v: states(v) == {DISTRICT: "retrying"})
    # The retry copy is lost before its 3 s are over (as to a broker failure).
    retry_queue = f"{gw.settings.broker.prefix}.retry.push.3s"
    connection = await aio_pika.connect(test_broker.url)
    async with connection, connection.channel() as channel:
        queue = await channel.get_queue(retry_queue)
        assert queue.declaration_result.message_count == 1, retry_queue
        await queue.purge()
    await gw.wait_for(answer["id"], DEPARTMENT, lambda v: states(v) == {DISTRICT: "delivered"})
    keys = [headers["Idempotency-Key"] for headers, _ in push_receiver.received]
    assert len(keys) == 2  # the 503, then the swept message
    assert len(set(keys)) == 1
    assert len(push_receiver.delivered) == 1
    view = await gw.admin_view(answer["id"])
    assert _swept_events(view) == 1
    async with gw.session.get(gw.metrics_url, headers=METRICS_HEADERS) as r:
        text = await r.text()
    assert re.search(r'^lgsp_deliveries_swept_total\{adapter="push"\} 1\.0$', text, re.M), text
    async with gw.session.get(f"{gw.base_url}/readyz") as r:
        ready = await r.json()
    assert "delivery-sweep" in str(ready)


def _swept_events(view: dict[str, Any]) -> int:
    return sum(
        1
        for event in view["trace"]
        if event["kind"] == EventKind.REPUBLISHED.value and event["outcome"] == SWEPT
    )
