"""The worker loop on the real broker: ack, retry via TTL queues, dead letters, graceful drain."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection
from structlog.testing import capture_logs

from gateway.broker import Broker, DeliveryMessage
from gateway.core.errors import ConfigError
from gateway.delivery.worker import (
    Attempt,
    Permanent,
    Ready,
    Retry,
    Verdict,
    Worker,
    WorkerRules,
)

MakeMessage = Callable[..., DeliveryMessage]
RULES = WorkerRules(delays_s=(0.2, 0.5), max_tries=3, prefetch=8, drain_timeout_s=5)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, limit_s: float = 15) -> None:
    """Poll ``check`` until it holds; fail the test if it never does."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.02)


class Recorder:
    """A handler that records every message and does what ``act`` says for it."""

    def __init__(self, act: Callable[[DeliveryMessage], Awaitable[None]] | None = None) -> None:
        self.seen: list[DeliveryMessage] = []
        self.act = act

    async def __call__(self, msg: DeliveryMessage) -> None:
        self.seen.append(msg)
        if self.act is not None:
            await self.act(msg)

    def attempts(self, delivery_id: str) -> list[int]:
        return [m.attempt for m in self.seen if m.delivery_id == delivery_id]


async def run_until(
    broker: Broker,
    handler: Callable[[DeliveryMessage], Awaitable[None]],
    outcome: str,
    count: int,
    what: str,
    *,
    rules: WorkerRules = RULES,
) -> Worker:
    """A push worker on ``handler``, stopped once ``count`` messages had ``outcome``."""
    worker = Worker(broker, "push", rules)
    await worker.start(handler)
    await eventually(settled(worker, outcome, count), what)
    await worker.stop()
    return worker


def settled(worker: Worker, outcome: str, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return worker.outcomes[outcome] >= count

    return check


def depth(broker: Broker, queue: str, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await broker.queue_depths())[queue] == count

    return check


def test_rules_pick_the_schedule_or_the_smallest_delay_long_enough() -> None:
    rules = WorkerRules(delays_s=(5, 30, 120))
    assert [rules.delay_for(a, None) for a in (1, 2, 3, 4, 9)] == [5, 30, 120, 120, 120]
    assert rules.delay_for(1, 31) == 120
    assert rules.delay_for(3, 1) == 5
    assert rules.delay_for(1, 1_000_000) == 120
    with pytest.raises(ConfigError):
        WorkerRules(delays_s=())
    with pytest.raises(ConfigError):
        WorkerRules(max_tries=0)


async def test_a_worker_needs_retry_queues_for_its_delays(broker: Broker) -> None:
    with pytest.raises(ConfigError):
        Worker(broker, "push", WorkerRules(delays_s=(0.2, 7)))
    with pytest.raises(ConfigError):
        Worker(broker, "soap", RULES)  # not in this broker's topology


async def test_success_is_acked_and_logged_with_the_delivery_id(
    broker: Broker, make_message: MakeMessage
) -> None:
    msgs = [make_message(n) for n in range(5)]
    await broker.publish_many(msgs)
    handler = Recorder()
    with capture_logs() as logs:
        await run_until(broker, handler, "acked", 5, "5 acks")
    assert sorted(m.delivery_id for m in handler.seen) == sorted(m.delivery_id for m in msgs)
    assert {m.delivery_id: m for m in handler.seen} == {m.delivery_id: m for m in msgs}
    assert set((await broker.queue_depths()).values()) == {0}
    lines = [e for e in logs if e["event"].startswith("delivery.")]
    assert len(lines) == 5
    assert {e["delivery_id"] for e in lines} == {m.delivery_id for m in msgs}


class OneAlreadyDelivered:
    """A batch handler whose check finds ``done`` delivered already; it records each commit."""

    def __init__(self, done: str) -> None:
        self.done = done
        self.commits: list[list[str]] = []

    async def check(self, messages: Sequence[DeliveryMessage]) -> Sequence[Attempt | Ready]:
        return [
            Attempt(m, Verdict.ALREADY_DELIVERED, "in the log")
            if m.delivery_id == self.done
            else Ready(m)
            for m in messages
        ]

    async def deliver(self, ready: Ready) -> Attempt:
        return Attempt(ready.message, Verdict.DELIVERED, "handled")

    async def commit(self, attempts: Sequence[Attempt]) -> Sequence[Attempt]:
        self.commits.append([a.message.delivery_id for a in attempts])
        return attempts


async def test_batches_do_not_wait_for_deliveries_that_cannot_come(
    broker: Broker, make_message: MakeMessage
) -> None:
    """With a batch wait far longer than the test: the check runs once ``prefetch`` messages are
    in, and the commit once no other message is being checked or delivered while the window is
    still full (the other one was found delivered already: it needs no commit, and its ack is
    still on its way)."""
    first, second = make_message(1), make_message(2)
    await broker.publish_many([first, second])
    handler = OneAlreadyDelivered(second.delivery_id)
    rules = WorkerRules(delays_s=(0.2, 0.5), prefetch=2, drain_timeout_s=5, batch_wait_s=600)
    worker = Worker(broker, "push", rules)
    await worker.start(handler)
    try:
        await eventually(settled(worker, "acked", 2), "both acked long before the wait ends")
    finally:
        await worker.stop()
    assert handler.commits == [[first.delivery_id]]


async def test_retry_goes_through_the_retry_queue_and_returns_with_the_next_attempt(
    broker: Broker,
    make_message: MakeMessage,
    raw_connection: AbstractRobustConnection,
    drain_queue,
) -> None:
    msg = make_message(1)
    await broker.publish(msg)

    async def fail(_: DeliveryMessage) -> None:
        raise Retry("remote said 503")

    # stopped after the retry: the copy comes back to the work queue after 0.2 s, unconsumed
    await run_until(broker, Recorder(fail), "retried", 1, "one retry")

    work = broker.topology.work_queue("push")
    await eventually(depth(broker, work, 1), "the retry back in the work queue")
    [back] = await drain_queue(raw_connection, work)
    assert back.message_id == msg.delivery_id
    assert back.body == msg.body
    assert back.headers["x-lgsp-attempt"] == 2
    [death] = back.headers["x-death"]
    assert death["queue"] == broker.topology.retry_queue("push", 0.2)
    assert death["reason"] == "expired"


async def test_defer_s_picks_the_smallest_delay_at_least_that_long(
    test_broker, prefix: str, make_message: MakeMessage
) -> None:
    async with await Broker.connect(
        test_broker.url, prefix=prefix, methods=("push",), retry_delays_s=(0.2, 0.5, 600)
    ) as broker:
        await broker.declare_topology()
        await broker.publish(make_message(1))

        async def later(_: DeliveryMessage) -> None:
            raise Retry("busy", defer_s=60)

        await run_until(
            broker, later, "retried", 1, "one retry", rules=WorkerRules(delays_s=(0.2, 0.5, 600))
        )
        depths = await broker.queue_depths()
        assert depths[broker.topology.retry_queue("push", 600)] == 1
        assert depths[broker.topology.work_queue("push")] == 0


async def test_retry_then_success(broker: Broker, make_message: MakeMessage) -> None:
    msg = make_message(1)
    await broker.publish(msg)

    async def flaky(m: DeliveryMessage) -> None:
        if m.attempt == 1:
            raise Retry(defer_s=0.3)  # -> the 0.5 s queue

    handler = Recorder(flaky)
    await run_until(broker, handler, "acked", 1, "success on attempt 2")
    assert handler.attempts(msg.delivery_id) == [1, 2]
    assert set((await broker.queue_depths()).values()) == {0}


async def test_max_tries_dead_letters_with_reason_and_attempts(
    broker: Broker,
    make_message: MakeMessage,
    raw_connection: AbstractRobustConnection,
    drain_queue,
) -> None:
    msg = make_message(1)
    await broker.publish(msg)

    async def always(_: DeliveryMessage) -> None:
        raise Retry("remote said 503")

    handler = Recorder(always)
    with capture_logs() as logs:
        await run_until(broker, handler, "dead_lettered", 1, "a dead letter")
    assert handler.attempts(msg.delivery_id) == [1, 2, 3]
    [dead] = await drain_queue(raw_connection, broker.topology.dead_queue("push"))
    assert dead.message_id == msg.delivery_id
    assert dead.body == msg.body
    assert dead.headers["x-lgsp-dead-reason"] == "max_tries 3 reached: remote said 503"
    assert dead.headers["x-lgsp-attempts"] == 3
    assert datetime.fromisoformat(str(dead.headers["x-lgsp-dead-at"])).tzinfo is not None
    dead_lines = [e for e in logs if e["event"] == "delivery.dead_lettered"]
    assert [e["delivery_id"] for e in dead_lines] == [msg.delivery_id]


async def test_permanent_dead_letters_at_once(
    broker: Broker,
    make_message: MakeMessage,
    raw_connection: AbstractRobustConnection,
    drain_queue,
) -> None:
    msg = make_message(1)
    await broker.publish(msg)

    async def refuse(_: DeliveryMessage) -> None:
        raise Permanent("recipient answered 410 Gone")

    handler = Recorder(refuse)
    await run_until(broker, handler, "dead_lettered", 1, "a dead letter")
    assert handler.attempts(msg.delivery_id) == [1]
    [dead] = await drain_queue(raw_connection, broker.topology.dead_queue("push"))
    assert dead.headers["x-lgsp-dead-reason"] == "recipient answered 410 Gone"
    assert dead.headers["x-lgsp-attempts"] == 1
    assert DeliveryMessage.from_amqp(dead) == msg


async def test_an_unexpected_exception_is_logged_and_retried(
    broker: Broker, make_message: MakeMessage
) -> None:
    msg = make_message(1)
    await broker.publish(msg)

    async def buggy(m: DeliveryMessage) -> None:
        if m.attempt == 1:
            raise KeyError("surprise")

    handler = Recorder(buggy)
    with capture_logs() as logs:
        await run_until(broker, handler, "acked", 1, "success on attempt 2")
    assert handler.attempts(msg.delivery_id) == [1, 2]
    [error] = [e for e in logs if e["event"] == "delivery.handler_error"]
    assert error["delivery_id"] == msg.delivery_id
    assert error["log_level"] == "error"


async def test_a_malformed_message_goes_to_the_dead_letters(
    broker: Broker,
    raw_connection: AbstractRobustConnection,
    drain_queue,
) -> None:
    async with raw_connection.channel() as channel:
        bad = aio_pika.Message(b"<junk/>", message_id="no-headers", headers={"x-lgsp-attempt": 1})
        await channel.default_exchange.publish(bad, broker.topology.work_queue("push"))
    handler = Recorder()
    with capture_logs() as logs:
        await run_until(broker, handler, "dead_lettered", 1, "a dead letter")
    assert handler.seen == []
    [dead] = await drain_queue(raw_connection, broker.topology.dead_queue("push"))
    assert dead.body == b"<junk/>"
    assert dead.message_id == "no-headers"
    assert str(dead.headers["x-lgsp-dead-reason"]).startswith("malformed: header x-lgsp-")
    assert dead.headers["x-lgsp-attempts"] == 0
    assert any(
        e["event"] == "delivery.malformed" and e["delivery_id"] == "no-headers" for e in logs
    )


async def test_a_failed_retry_publish_requeues_instead_of_losing(
    broker: Broker, make_message: MakeMessage, raw_connection: AbstractRobustConnection
) -> None:
    async with raw_connection.channel() as channel:  # the retry queue disappears
        await channel.queue_delete(broker.topology.retry_queue("push", 0.2))
    msg = make_message(1)
    await broker.publish(msg)
    calls = 0

    async def once(_: DeliveryMessage) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Retry("first failure")

    handler = Recorder(once)
    worker = await run_until(broker, handler, "acked", 1, "success after the requeue")
    assert handler.attempts(msg.delivery_id) == [1, 1]  # requeued as it was
    assert worker.outcomes["requeued"] == 1
    assert worker.outcomes["retried"] == 0


async def test_a_failed_dead_letter_publish_requeues_instead_of_losing(
    broker: Broker, make_message: MakeMessage, raw_connection: AbstractRobustConnection
) -> None:
    async with raw_connection.channel() as channel:
        await channel.queue_delete(broker.topology.dead_queue("push"))
    msg = make_message(1)
    await broker.publish(msg)
    calls = 0

    async def once(_: DeliveryMessage) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Permanent("no such recipient")

    worker = await run_until(broker, Recorder(once), "acked", 1, "success after the requeue")
    assert worker.outcomes["requeued"] == 1
    assert worker.outcomes["dead_lettered"] == 0


async def test_graceful_stop_during_a_burst_loses_nothing(
    broker: Broker, make_message: MakeMessage
) -> None:
    n = 200
    await broker.publish_many([make_message(i) for i in range(n)])

    async def slow(_: DeliveryMessage) -> None:
        await asyncio.sleep(0.005)

    handler = Recorder(slow)
    worker = Worker(broker, "push", WorkerRules(delays_s=(0.2, 0.5), prefetch=16))
    await worker.start(handler)
    await eventually(settled(worker, "acked", 40), "40 acks")
    await worker.stop()

    handled = [m.delivery_id for m in handler.seen]
    assert len(handled) == len(set(handled)), "a message was handled twice"
    assert worker.outcomes["acked"] == len(handled), "a handled message was not acked"
    assert len(handled) < n, "the burst finished before the stop: nothing was tested"
    await eventually(
        depth(broker, broker.topology.work_queue("push"), n - len(handled)),
        "handled + remaining == N",
    )


async def test_stop_cancels_handlers_that_outlive_the_drain_timeout(
    broker: Broker, make_message: MakeMessage
) -> None:
    await broker.publish(make_message(1))
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def stuck(_: DeliveryMessage) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    worker = Worker(broker, "push", WorkerRules(delays_s=(0.2,), drain_timeout_s=0.2))
    await worker.start(stuck)
    await asyncio.wait_for(started.wait(), 15)
    await worker.stop()
    assert cancelled.is_set()
    assert sum(worker.outcomes.values()) == 0
    await eventually(depth(broker, broker.topology.work_queue("push"), 1), "the message back")


async def test_a_message_unacked_when_its_connection_dies_is_delivered_again(
    broker: Broker, test_broker, prefix: str, make_message: MakeMessage
) -> None:
    msg = make_message(1)
    await broker.publish(msg)
    started = asyncio.Event()

    async def dies(_: DeliveryMessage) -> None:
        started.set()
        await asyncio.Event().wait()

    doomed_broker = await Broker.connect(
        test_broker.url, prefix=prefix, methods=("push",), retry_delays_s=(0.2, 0.5)
    )
    doomed = Worker(doomed_broker, "push", WorkerRules(delays_s=(0.2,), drain_timeout_s=0.1))
    await doomed.start(dies)
    await asyncio.wait_for(started.wait(), 15)
    await doomed_broker.aclose()  # the worker "crashes" before its ack

    handler = Recorder()
    with capture_logs() as logs:
        await run_until(broker, handler, "acked", 1, "the redelivery")
    await doomed.stop()
    assert handler.seen == [msg]
    [line] = [e for e in logs if e["event"] == "delivery.settled"]
    assert line["delivery_id"] == msg.delivery_id
    assert line["redelivered"] is True


async def test_run_returns_after_sigterm(broker: Broker, make_message: MakeMessage) -> None:
    await broker.publish(make_message(1))
    handler = Recorder()
    worker = Worker(broker, "push", RULES)
    worker.install_signal_handlers()
    running = asyncio.create_task(worker.run(handler))
    await eventually(settled(worker, "acked", 1), "one ack")
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(running, 15)
    assert len(handler.seen) == 1
    await worker.stop()  # idempotent
