"""Failover on the run's one broker: a node list, a lost connection, and a nacked publish.

The node failures of a real cluster are in ``tests/cluster/``; here the same code paths run
against the shared broker: a dead first URL, connections the broker closes (a test user's own),
and a nack provoked by a full queue (a policy on this test's queue only).
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import aio_pika
import pytest
from service_sites import BrokerSite, rabbitmqctl

from gateway.broker import Broker, DeliveryMessage, Received
from gateway.core.errors import UnavailableError
from gateway.core.redact import mask_url

MakeMessage = Callable[..., DeliveryMessage]
TEST_DELAYS_S = (0.2, 0.5)
DEAD = "amqp://guest:dead-secret@127.0.0.1:1/"  # nothing listens on port 1


async def until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s}s: {what}"
        await asyncio.sleep(0.05)


async def test_the_first_node_that_answers_is_used(
    test_broker: BrokerSite, prefix: str, make_message: MakeMessage
) -> None:
    broker = await Broker.connect(
        [DEAD, test_broker.url], prefix=prefix, methods=("push",), connect_timeout_s=5
    )
    async with broker:
        try:
            assert broker.link.node == mask_url(test_broker.url)
            await broker.declare_topology()
            await broker.publish(make_message(1))
            assert (await broker.queue_depths())[broker.topology.work_queue("push")] == 1
        finally:
            await broker.delete_topology()


async def test_no_node_answering_is_unavailable_without_passwords() -> None:
    with pytest.raises(UnavailableError) as caught:
        await Broker.connect([DEAD, "amqp://gw:other-secret@127.0.0.1:2/"], connect_timeout_s=5)
    assert caught.value.code == "unavailable.broker"
    assert "127.0.0.1:1" in caught.value.message
    assert "127.0.0.1:2" in caught.value.message
    assert "secret" not in str(caught.value)


async def test_a_lost_connection_is_replaced_and_consuming_resumes(
    test_broker: BrokerSite, prefix: str, make_message: MakeMessage
) -> None:
    """The broker closes every connection of the test's user: publishes fail fast until the
    link has a new connection; then they succeed and the subscription delivers again."""
    received: asyncio.Queue[Received] = asyncio.Queue()

    async def take(r: Received) -> None:
        await r.ack()
        await received.put(r)

    with test_broker.own_user() as site:
        broker = await Broker.connect(
            site.url, prefix=prefix, methods=("push",), retry_delays_s=TEST_DELAYS_S
        )
        async with broker:
            try:
                await broker.declare_topology()
                subscription = await broker.subscribe("push", prefetch=4)
                await subscription.start(take)
                first, second = make_message(1), make_message(2)
                await broker.publish(first)
                got = await asyncio.wait_for(received.get(), 10)
                assert got.message_id == first.delivery_id

                await asyncio.to_thread(
                    rabbitmqctl, "close_all_user_connections", site.user, "test: failover"
                )
                await until(lambda: broker.link.connections == 2, 30, "a new connection")
                await until(lambda: subscription.resumed == 1, 30, "consuming again")
                await broker.publish(second)
                got = await asyncio.wait_for(received.get(), 10)
                assert got.message_id == second.delivery_id
                await subscription.close()
            finally:
                await broker.delete_topology()


@contextmanager
def full_at(queue: str, max_length: int) -> Iterator[None]:
    """A policy on ``queue`` alone: above ``max_length`` messages, publishes are nacked."""
    definition = json.dumps({"max-length": max_length, "overflow": "reject-publish"})
    pattern = f"^{re.escape(queue)}$"
    rabbitmqctl(
        "set_policy", "--apply-to", "queues", "--priority", "100", queue, pattern, definition
    )
    try:
        yield
    finally:
        rabbitmqctl("clear_policy", queue)


async def test_a_nack_fails_its_message_and_renews_the_publishing_channel(
    broker: Broker, make_message: MakeMessage
) -> None:
    """A nacked publish raises; the next publishes go through a new channel (RabbitMQ 3.10
    can nack every later publish of a channel that saw a dead quorum leader)."""
    work = broker.topology.work_queue("push")
    confirmed: list[str] = []
    nacked: UnavailableError | None = None
    with full_at(work, 1):
        for n in range(200):  # the policy applies a moment after it is set
            msg = make_message(n)
            try:
                await broker.publish(msg)
            except UnavailableError as exc:
                nacked = exc
                break
            confirmed.append(msg.delivery_id)
            await asyncio.sleep(0.05)
        assert nacked is not None, "the full queue never nacked a publish"
        assert nacked.code == "unavailable.broker"
        assert "not confirmed" in nacked.message
        assert broker.renewals_after_nack == 1
    later = make_message(1000)
    await broker.publish(later)  # on the new channel
    assert broker.renewals_after_nack == 1
    depths = await broker.queue_depths()
    assert depths[work] == len(confirmed) + 1


async def test_a_failed_connect_leaves_no_open_connection_behind() -> None:
    """aio-pika's ``Connection.__del__`` schedules ``close()`` on the running loop of whichever
    thread frees it; a connection whose connect failed, freed by the cyclic collector on another
    thread (the store's driver thread, ``to_thread``), left that coroutine never awaited (a CI
    failure). Each failed attempt is closed where it failed, so none is left for ``__del__``."""
    gc.collect()
    gc.disable()  # what the failed attempts leave stays visible until looked at
    try:
        for url in (DEAD, "amqp://guest:wrong-secret@127.0.0.1:5672/"):
            with pytest.raises(UnavailableError):
                await Broker.connect([url], connect_timeout_s=5)
        left = [
            o for o in gc.get_objects() if isinstance(o, aio_pika.Connection) and not o.is_closed
        ]
    finally:
        gc.enable()
    assert left == []
