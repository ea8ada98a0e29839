"""Acks of one turn sent together (``ChannelAcks``) on the real broker: one ``basic.ack`` with
``multiple`` for a run of consecutive tags, never covering a message nobody acked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiormq
import pytest

from gateway.broker import Broker, DeliveryMessage
from gateway.broker.consumer import Received, Subscription

MakeMessage = Callable[..., DeliveryMessage]


@pytest.fixture
def sent_acks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """Every ``basic.ack`` the client sends, as (delivery tag, multiple)."""
    sent: list[tuple[int, bool]] = []
    real = aiormq.Channel.basic_ack

    async def spy(
        self: aiormq.Channel, delivery_tag: int, multiple: bool = False, **kw: Any
    ) -> None:
        sent.append((delivery_tag, multiple))
        await real(self, delivery_tag, multiple=multiple, **kw)

    monkeypatch.setattr(aiormq.Channel, "basic_ack", spy)
    return sent


async def _receive(
    broker: Broker, count: int
) -> tuple[Subscription, dict[str, Received], asyncio.Queue[Received]]:
    subscription = await broker.subscribe("push", prefetch=16)
    queue: asyncio.Queue[Received] = asyncio.Queue()

    async def on_received(received: Received) -> None:
        await queue.put(received)

    await subscription.start(on_received)
    got: dict[str, Received] = {}
    while len(got) < count:
        received = await asyncio.wait_for(queue.get(), 15)
        assert received.message is not None
        got[received.message.delivery_id] = received
    return subscription, got, queue


async def _published_and_received(
    broker: Broker, make_message: MakeMessage, count: int
) -> tuple[Subscription, list[Received], asyncio.Queue[Received]]:
    """``count`` messages published and received, in delivery-tag order (tags 1 … count)."""
    await broker.publish_many([make_message(n) for n in range(count)])
    subscription, got, queue = await _receive(broker, count)
    return subscription, sorted(got.values(), key=lambda r: r.raw.delivery_tag or 0), queue


async def _depth_becomes(broker: Broker, count: int) -> None:
    name = broker.topology.work_queue("push")
    for _ in range(500):  # a deadline, not a timing assertion
        if (await broker.queue_depths())[name] == count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} never held {count} messages")


async def test_a_batch_of_acks_is_one_multiple_ack_and_never_covers_a_held_message(
    broker: Broker, make_message: MakeMessage, sent_acks: list[tuple[int, bool]]
) -> None:
    subscription, by_tag, _ = await _published_and_received(broker, make_message, 6)
    held = by_tag[2]  # its worker has not settled it yet

    await asyncio.gather(*(r.ack() for r in by_tag if r is not held))
    # tags 1-2: one ack with multiple; 4-6 lie beyond the held tag 3: one by one
    assert sent_acks == [(2, True), (4, False), (5, False), (6, False)]

    await subscription.close()  # the held message goes back to the queue, the others do not
    await _depth_becomes(broker, 1)
    again, got_again, _ = await _receive(broker, 1)
    [(delivery_id, redelivered)] = got_again.items()
    assert held.message is not None
    assert delivery_id == held.message.delivery_id
    assert redelivered.redelivered
    await redelivered.ack()
    await again.close()
    assert (await broker.queue_depths())[broker.topology.work_queue("push")] == 0


async def test_a_run_of_acks_spans_a_requeued_message_which_comes_back_once(
    broker: Broker, make_message: MakeMessage, sent_acks: list[tuple[int, bool]]
) -> None:
    subscription, by_tag, queue = await _published_and_received(broker, make_message, 4)

    await by_tag[1].requeue()  # tag 2
    await asyncio.gather(by_tag[0].ack(), by_tag[2].ack(), by_tag[3].ack())
    assert sent_acks == [(4, True)]  # covers 1, 3 and 4; 2 was settled by its requeue

    back = await asyncio.wait_for(queue.get(), 15)
    assert back.message == by_tag[1].message
    assert back.redelivered
    await back.ack()  # tag 5: the run goes on above the floor
    assert sent_acks == [(4, True), (5, False)]
    await subscription.close()
    assert (await broker.queue_depths())[broker.topology.work_queue("push")] == 0
