"""A broker node dies under the gateway: it fails over to the next node and loses nothing.

On a real 3-node cluster (``conftest.py``), with quorum queues replicated on every node:

- the RabbitMQ 3.10 trap: after the queue leader's node dies, a channel whose first publish comes
  before the new leader is known nacks every publish; the nacked publish fails, and the gateway's
  next publishes (on a new channel) succeed;
- a running gateway (intake and workers in one process, both connected to node 1, which also
  leads the queues) whose node is SIGKILLed mid-burst: requests in the fault window may get 503,
  then it accepts again; every document is delivered, under one delivery id each.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest
from cluster_site import Cluster
from service.service_kit import (
    DEPARTMENT,
    DISTRICT,
    TEST_ENV,
    Gateway,
    PushReceiver,
    demo_pushing_to,
    new_document,
)
from service_sites import BrokerSite

from gateway.broker import Broker, DeliveryMessage, Topology
from gateway.core.errors import UnavailableError
from gateway.core.redact import mask_url
from gateway.core.settings import load_settings
from gateway.service.runner import Role, Service
from gateway.web.keys import BROKER

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.timeout(900),  # the first one brings the cluster up (minutes on a busy machine)
]

FAST_OUTBOX = {"LGSP_BROKER__OUTBOX_INTERVAL_S": "0.5", "LGSP_BROKER__OUTBOX_AGE_S": "1"}
SENDERS = 4
BEFORE_KILL = 12  # answers before the node is killed
ACCEPTED_AFTER = 12  # consecutive 202s, all sent after the kill, end the burst
BURST_LIMIT_S = 90.0


def message(n: int) -> DeliveryMessage:
    return DeliveryMessage(
        delivery_id=f"c-{n:04d}",
        document_pk="doc",
        recipient="000.00.01.H56",
        method="push",
        body=b"<x/>",
    )


async def queued_ids(url: str, queue: str) -> list[str]:
    """Every message id in ``queue`` (taken off it), read through the node at ``url``."""
    ids: list[str] = []
    connection = await aio_pika.connect(url)
    async with connection, connection.channel() as channel:
        q = await channel.get_queue(queue, ensure=True)
        while (got := await q.get(no_ack=True, fail=False)) is not None:
            ids.append(got.message_id or "")
    return ids


async def test_after_the_leader_dies_a_nacked_channel_is_replaced(
    cluster: Cluster, cluster_prefix: str
) -> None:
    """Node 2 leads the queue and dies while node 3 is stopped (no quorum: every publish is
    refused, deterministically); once node 3 is back, nodes 1 and 3 elect a leader and the
    gateway's publishes succeed again, though node 2 stays dead. Without a new channel after
    the nack, every publish would be nacked until node 2 came back."""
    names = {"prefix": cluster_prefix, "methods": ("push",), "retry_delays_s": (0.2,)}
    work = Topology(cluster_prefix, ("push",), (0.2,)).work_queue("push")
    async with await Broker.connect(cluster.url(2), **names) as declaring:  # type: ignore[arg-type]
        await declaring.declare_topology()  # client-local placement: node 2 leads
    assert cluster.leader(work) == cluster.node_name(2)

    broker = await Broker.connect(cluster.urls, **names)  # type: ignore[arg-type]
    async with broker:
        assert broker.link.node == mask_url(cluster.url(1))
        await cluster.stop_app(3)
        await cluster.kill(2)
        with pytest.raises(UnavailableError) as refused:
            await broker.publish(message(0))  # the channel's first publish to the queue
        assert "not confirmed" in refused.value.message
        assert broker.renewals_after_nack >= 1

        await cluster.start_app(3)
        confirmed: list[str] = []
        deadline = time.monotonic() + 60
        n = 1
        while not confirmed:
            assert time.monotonic() < deadline, "no publish succeeded after the election"
            try:
                await broker.publish(message(n))
                confirmed.append(message(n).delivery_id)
            except UnavailableError:
                await asyncio.sleep(0.2)  # no leader yet: this channel is renewed too
            n += 1
        for m in range(n, n + 20):  # the next publishes all succeed
            await broker.publish(message(m))
            confirmed.append(message(m).delivery_id)
        assert broker.link.connections == 1  # node 1 never failed: only channels were renewed

    ids = await queued_ids(cluster.url(1), work)
    assert set(confirmed) <= set(ids)
    assert message(0).delivery_id not in ids


@pytest.fixture
async def cluster_gateway(
    cluster: Cluster, cluster_prefix: str, tmp_path: Path, push_receiver: PushReceiver
) -> AsyncIterator[Gateway]:
    """A demo gateway (intake + workers, one process) on the cluster's three nodes, node 1
    first; its district takes pushes at ``push_receiver``."""
    site = BrokerSite(cluster.url(1), cluster_prefix)
    setup = demo_pushing_to(tmp_path, site, push_receiver.url, "g")
    env = {**TEST_ENV, **FAST_OUTBOX, "LGSP_BROKER__URL": ",".join(cluster.urls)}
    settings = load_settings(setup.config_path, env=env)
    assert settings.broker.urls == cluster.urls
    service = Service(settings, Role.ALL, drain_grace_s=0.3, shutdown_timeout_s=15)
    await service.start()
    gateway = Gateway(setup, settings, service, aiohttp.ClientSession())
    try:
        yield gateway
    finally:
        await gateway.session.close()
        await service.stop()


class Burst:
    """Concurrent submissions, each signed as it is sent, until told to stop."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.bodies: list[bytes] = []
        self.answers: dict[int, tuple[int, dict[str, Any]]] = {}
        self.sent_after_kill: list[int] = []
        self.answered_at: dict[int, float] = {}
        self.killed_at = 0.0
        self.killed = asyncio.Event()
        self.stop = asyncio.Event()

    def accepted_after_kill(self) -> int:
        """How many of the latest answered submissions sent after the kill were 202, in a row."""
        run = 0
        for i in sorted((i for i in self.sent_after_kill if i in self.answers), reverse=True):
            if self.answers[i][0] != 202:
                break
            run += 1
        return run

    async def sender(self) -> None:
        while not self.stop.is_set():
            i = len(self.bodies)
            package = new_document(DEPARTMENT, [DISTRICT], number=f"{i}/FO")
            self.bodies.append(self.gw.sign(package, DEPARTMENT))
            if self.killed.is_set():
                self.sent_after_kill.append(i)
            self.answers[i] = await self.gw.submit(self.bodies[i], DEPARTMENT)
            self.answered_at[i] = time.monotonic()
            if self.accepted_after_kill() >= ACCEPTED_AFTER:
                self.stop.set()


async def until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s}s: {what}"
        await asyncio.sleep(0.1)


async def test_a_gateway_and_its_workers_ride_out_the_loss_of_their_node(
    cluster: Cluster, cluster_gateway: Gateway, push_receiver: PushReceiver
) -> None:
    gw = cluster_gateway
    intake = gw.service.app[BROKER] if gw.service.app is not None else None
    workers = gw.service.workers
    assert intake is not None
    assert workers is not None
    worker_broker = workers.workers[0].broker
    node1 = mask_url(cluster.url(1))
    assert (intake.link.node, worker_broker.link.node) == (node1, node1)
    queues = cluster.queues(intake.topology.prefix + ".")
    assert set(queues) == set(intake.topology.queue_names())
    every_node = sorted(cluster.node_name(n) for n in (1, 2, 3))
    for name, queue in queues.items():  # quorum queues, replicated on every node
        assert (queue["type"], sorted(queue["members"])) == ("quorum", every_node), name  # type: ignore[arg-type]
    assert queues[intake.topology.work_queue("push")]["leader"] == cluster.node_name(1)

    burst = Burst(gw)

    async def kill_node_1() -> None:
        await until(lambda: len(burst.answers) >= BEFORE_KILL, 60, "the burst under way")
        await cluster.kill(1)
        burst.killed_at = time.monotonic()
        burst.killed.set()

    senders = asyncio.gather(*(burst.sender() for _ in range(SENDERS)))
    await asyncio.wait_for(asyncio.gather(senders, kill_node_1()), BURST_LIMIT_S)

    statuses = {i: status for i, (status, _) in burst.answers.items()}
    assert set(statuses.values()) <= {202, 503}, statuses
    for status, answer in burst.answers.values():
        if status == 503:
            assert (answer["code"], answer["retryable"]) == ("unavailable.broker", True)
    assert burst.accepted_after_kill() >= ACCEPTED_AFTER  # accepting again after the kill
    for broker in (intake, worker_broker):  # both failed over to a surviving node
        assert broker.link.node in {mask_url(cluster.url(2)), mask_url(cluster.url(3))}
        assert broker.link.connections >= 2

    # everything answered is delivered (the 503s by the outbox relay), the 202s included:
    # each document under one delivery id, whatever a redelivery repeated
    bodies = burst.bodies[: len(burst.answers)]
    await until(lambda: set(bodies) <= set(push_receiver.delivered), 90, "every document delivered")
    keys: defaultdict[bytes, set[str]] = defaultdict(set)
    for headers, body in push_receiver.received:
        keys[body].add(headers["Idempotency-Key"])
    for i, (status, answer) in burst.answers.items():
        assert len(keys[bodies[i]]) == 1, (i, keys[bodies[i]])
        if status == 202:
            [delivery] = answer["recipients"]
            assert keys[bodies[i]] == {delivery["delivery_id"]}
            view = await gw.wait_for(
                answer["id"], DEPARTMENT, lambda v: v["recipients"][0]["state"] == "delivered"
            )
            assert view["recipients"][0]["state"] == "delivered"
    repeats = len(push_receiver.received) - len(keys)
    refused = sum(1 for s in statuses.values() if s == 503)
    back_s = min(
        burst.answered_at[i] - burst.killed_at
        for i in burst.sent_after_kill
        if burst.answers.get(i, (0,))[0] == 202
    )
    print(
        f"first 202 after the kill: {back_s:.2f}s; "
        f"sent {len(bodies)} ({len(burst.sent_after_kill)} after the kill): "
        f"{len(bodies) - refused} accepted, {refused} refused (503, relayed by the outbox); "
        f"pushes repeated under the same key: {repeats}"
    )
