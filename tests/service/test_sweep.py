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
from datetime import UTC, datetime
from typing import Any

import aio_pika
from service_kit import DEPARTMENT, DISTRICT, METRICS_HEADERS, PushReceiver, StartGateway, states
from service_kit import new_document as new_package
from service_sites import BrokerSite
from sqlalchemy import update
from sweep_kit import (
    DELAYS_S,
    GRACE_S,
    PACKAGE,
    RECIPIENT,
    CountingAdapter,
    eventually,
    is_state,
    late_copy,
    queued_delivery,
    retrying_delivery,
    settled,
    started_worker,
    state_of,
    sweeper,
    trail,
    work_depth,
)

from gateway.broker import Broker, DeliveryMessage
from gateway.core.metrics import Metrics
from gateway.store import DeliveryLog, DeliveryState, EventKind
from gateway.store.attempts import AttemptReport
from gateway.store.engine import transaction
from gateway.store.sweep import SWEPT, SweepLog
from gateway.store.tables import deliveries


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
            lambda: is_state(log, lost, DeliveryState.DELIVERED), "the swept delivery delivered"
        )
        assert adapter.count(lost.id) == 1
        [call] = adapter.calls
        assert (call.package, call.attempt) == (PACKAGE, 2)  # by claim check, the next attempt

        # The retry copy the broker held back arrives after all: acknowledged, not delivered.
        await broker.publish(late_copy(lost, attempt=2))
        await eventually(lambda: settled(worker, "acked", 2), "the late copy acknowledged")
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
        await eventually(lambda: settled(worker, "acked", 1), "the late copy acknowledged")
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
    # The sweep's memory of a backlog runs on this clock, moved only with the sleeps below: a
    # slow purge cannot end the grace between the two rounds that must fall within it.
    now_s = [0.0]
    sweep = sweeper(broker, log, clock=lambda: now_s[0])
    await broker.publish(other)  # a backlog of one: lost's message may be behind it
    await asyncio.sleep(GRACE_S + 0.1)
    now_s[0] += GRACE_S + 0.1
    held = await sweep.sweep_once()
    assert (held.overdue, held.backlogged, held.published) == (1, 1, 0)
    connection = await aio_pika.connect(test_broker.url)
    async with connection, connection.channel() as channel:
        await (await channel.get_queue(broker.topology.work_queue("push"))).purge()
    # Empty now, but the messages a worker took from it may still be in its adapter calls.
    assert (await sweep.sweep_once()).backlogged == 1
    await asyncio.sleep(GRACE_S + 0.1)
    now_s[0] += GRACE_S + 0.1
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


async def test_a_claim_holds_only_at_the_attempt_count_its_message_carries(
    log: DeliveryLog,
) -> None:
    """The swept message carries the count the sweep read (``attempts_seen``): if an attempt was
    counted after the read, even at the same ``updated_at``, the claim fails and nothing is
    published with a count the log has moved past."""
    lost = await retrying_delivery(log, retry_in_s=0.2)
    await asyncio.sleep(0.2 + GRACE_S + 0.1)
    sweep_log = SweepLog(log.engines)
    [seen] = await sweep_log.overdue(methods={"push"}, grace_s=GRACE_S, delays_s=DELAYS_S)
    async with transaction(log.engines.writer) as conn:  # counted meanwhile, same instant
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.id == lost.id)
            .values(attempts=deliveries.c.attempts + 1)
        )
    assert await sweep_log.claim([seen.item.delivery]) == []


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
