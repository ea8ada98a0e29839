"""One retry chain per delivery, on the real broker and real stores (SQLite and PostgreSQL).

Every message carries the attempt count the log had when it was made (``x-lgsp-attempts-seen``).
A copy whose count the log has moved past (a retry the broker held back while a sweep published
the delivery again, a copy older than a replay) is acknowledged and not sent; of two copies that
saw the same count and both failed, one attempt is counted and retried. A message without the
header (an older gateway's) is current.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aio_pika
from service_sites import BrokerSite
from sweep_kit import (
    DELAYS_S,
    GRACE_S,
    RULES,
    CountingAdapter,
    eventually,
    is_state,
    late_copy,
    retrying_delivery,
    settled,
    started_worker,
    sweeper,
    trail,
)

from gateway.broker import Broker
from gateway.console.replay import Replayer
from gateway.core.metrics import Metrics
from gateway.dispatch.publishing import Dispatcher
from gateway.store import DeliveryLog, DeliveryRecord, DeliveryState

DEAD, DELIVERED = DeliveryState.DEAD_LETTERED, DeliveryState.DELIVERED
LONG_S = 600.0  # a retry delay that does not end during a test


def attempts_are(
    log: DeliveryLog, delivery: DeliveryRecord, count: int
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        record = await log.get_delivery(delivery.id)
        return record is not None and record.attempts == count

    return check


async def recorded(log: DeliveryLog, delivery: DeliveryRecord) -> tuple[DeliveryState, int]:
    record = await log.get_delivery(delivery.id)
    assert record is not None
    return record.state, record.attempts


async def dead_letters(broker: Broker, test_broker: BrokerSite) -> list[dict[str, object]]:
    """The headers of the push method's dead letters (taken and acknowledged)."""
    connection = await aio_pika.connect(test_broker.url)
    taken: list[dict[str, object]] = []
    async with connection, connection.channel() as channel:
        queue = await channel.get_queue(broker.topology.dead_queue("push"))
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            taken.append(dict(message.headers or {}))
    return taken


async def test_a_held_retry_and_a_swept_copy_of_a_failing_delivery_make_one_retry_chain(
    log: DeliveryLog, broker: Broker, test_broker: BrokerSite
) -> None:
    """The first attempt failed and its retry (attempt 2, count 1) is held by the broker; the
    sweep publishes the delivery again (attempt 2, count 1). The recipient stays down. The held
    retry, let go once the swept copy's attempt is recorded, is not sent: one chain of attempts
    2, 3, 4 ends in one dead letter, instead of two chains doubling the load on the recipient."""
    failing = await retrying_delivery(log, retry_in_s=DELAYS_S[0])  # attempts 1
    held = late_copy(failing, attempt=2, attempts_seen=1)  # what the worker published then
    adapter = CountingAdapter(failing=True)
    metrics = Metrics()
    worker = await started_worker(log, broker, adapter, metrics)
    sweep = sweeper(broker, log, metrics)
    try:
        await asyncio.sleep(DELAYS_S[0] + GRACE_S + 0.1)  # overdue: the retry never came
        assert (await sweep.sweep_once()).published == 1  # attempt 2, count 1
        await eventually(attempts_are(log, failing, 2), "the swept copy's attempt recorded")
        await broker.publish(held)  # the broker lets the held retry go at last
        await eventually(lambda: is_state(log, failing, DEAD), "the one chain dead-lettered")
        await eventually(lambda: settled(worker, "acked", 1), "the held copy acknowledged")
        await eventually(lambda: settled(worker, "dead_lettered", 1), "the dead letter")
    finally:
        await worker.stop()
    assert [call.attempt for call in adapter.calls] == [2, 3, 4]  # the held copy never went out
    assert await recorded(log, failing) == (DEAD, RULES.max_tries)  # 1 + the chain's three
    assert worker.outcomes == {"retried": 2, "dead_lettered": 1, "acked": 1}
    assert metrics.deliveries.labels("push", "stale")._value.get() == 1
    [dead] = await dead_letters(broker, test_broker)
    assert dead["x-lgsp-attempts-seen"] == RULES.max_tries  # a replay of it is current


async def test_two_copies_that_saw_one_count_are_both_sent_but_one_attempt_is_counted(
    log: DeliveryLog, broker: Broker, test_broker: BrokerSite
) -> None:
    """A swept copy and the retry it raced both arrive before either's attempt is recorded:
    both go out (neither is stale yet), and both fail; the commit counts one (the other's
    update finds the count moved: a stale copy, acknowledged) and one retry chain goes on."""
    failing = await retrying_delivery(log, retry_in_s=LONG_S)  # attempts 1
    adapter = CountingAdapter(failing=True, together=2)
    metrics = Metrics()
    await broker.publish_many([late_copy(failing, 2, attempts_seen=1) for _ in range(2)])
    worker = await started_worker(log, broker, adapter, metrics)
    try:
        await eventually(lambda: is_state(log, failing, DEAD), "the one chain dead-lettered")
        await eventually(lambda: settled(worker, "dead_lettered", 1), "the dead letter")
    finally:
        await worker.stop()
    assert [call.attempt for call in adapter.calls] == [2, 2, 3, 4]
    assert await recorded(log, failing) == (DEAD, RULES.max_tries)
    assert worker.outcomes == {"retried": 2, "dead_lettered": 1, "acked": 1}
    assert ("attempt", "retry") in await trail(log, failing)  # the stale copy's, ignored
    assert len(await dead_letters(broker, test_broker)) == 1


async def test_messages_without_the_count_are_current_and_their_retry_carries_one(
    log: DeliveryLog, broker: Broker
) -> None:
    """Two copies published before the upgrade (no ``x-lgsp-attempts-seen``) are both current:
    both are sent. Each takes the log's count, so their failures are counted once, and the one
    retry carries the new count: it is current, and delivered."""
    delivery = await retrying_delivery(log, retry_in_s=LONG_S)  # attempts 1
    adapter = CountingAdapter(failing=True, together=2)
    worker = await started_worker(log, broker, adapter, Metrics())
    try:
        await broker.publish_many([late_copy(delivery, attempt=2) for _ in range(2)])  # no count
        await eventually(attempts_are(log, delivery, 2), "one failed attempt recorded")
        adapter.failing = False  # the recipient is back for the retry
        await eventually(lambda: is_state(log, delivery, DELIVERED), "the retry delivered")
    finally:
        await worker.stop()
    assert [call.attempt for call in adapter.calls] == [2, 2, 3]
    assert await recorded(log, delivery) == (DELIVERED, 3)
    assert worker.outcomes == {"retried": 1, "acked": 2}


async def test_after_a_dead_letter_a_stale_copy_is_not_sent_and_the_replay_is(
    log: DeliveryLog, broker: Broker
) -> None:
    """A delivery dead-letters; an admin replays it (back to ``accepted``, its dead copy moved
    back with the log's count). A copy of its first chain that the broker held back arrives
    just before the replay's: the log is no longer ``dead_lettered``, but the copy's count is
    stale, so it is not sent; the replay's copy is, as attempt 1."""
    delivery = await retrying_delivery(log, retry_in_s=LONG_S)  # attempts 1
    adapter = CountingAdapter(failing=True)
    metrics = Metrics()
    worker = await started_worker(log, broker, adapter, metrics)
    try:
        await broker.publish(late_copy(delivery, RULES.max_tries, attempts_seen=1))  # last try
        await eventually(lambda: settled(worker, "dead_lettered", 1), "the dead letter")
    finally:
        await worker.stop()
    assert await recorded(log, delivery) == (DEAD, 2)

    await broker.publish(late_copy(delivery, attempt=2, attempts_seen=1))  # held back until now
    dispatcher = Dispatcher(broker=broker, delivery_log=log, claim_check_threshold_bytes=0)
    replay = await Replayer(log, broker, dispatcher).replay([delivery.id], "admin")
    assert ([r.id for r in replay.replayed], replay.deferred) == ([delivery.id], frozenset())
    adapter.failing = False
    worker = await started_worker(log, broker, adapter, metrics)
    try:
        await eventually(lambda: is_state(log, delivery, DELIVERED), "the replay delivered")
        await eventually(lambda: settled(worker, "acked", 2), "both copies acknowledged")
    finally:
        await worker.stop()
    assert [call.attempt for call in adapter.calls] == [RULES.max_tries, 1]
    assert await recorded(log, delivery) == (DELIVERED, 3)
    assert metrics.deliveries.labels("push", "stale")._value.get() == 1
