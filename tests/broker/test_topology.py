"""The topology on the real broker: idempotent declaration, quorum queues, TTL retry arguments."""

from __future__ import annotations

from collections.abc import Callable

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from gateway.broker import Broker, DeliveryMessage, Topology
from gateway.core.errors import ConfigError, UnavailableError


def test_names_follow_the_prefix() -> None:
    topo = Topology("lgsp", ("push", "soap"), (5, 30, 120))
    assert topo.exchange == "lgsp.deliveries"
    assert topo.work_queue("push") == "lgsp.q.push"
    assert topo.retry_queue("push", 30) == "lgsp.retry.push.30s"
    assert topo.retry_queue("soap", 0.2) == "lgsp.retry.soap.0.2s"
    assert topo.dead_queue("soap") == "lgsp.dead.soap"
    assert topo.binding_key("push") == "push.#"
    assert len(topo.queue_names()) == 2 * (1 + 3 + 1)


def test_retry_delay_is_the_smallest_declared_delay_at_least_as_long() -> None:
    topo = Topology(retry_delays_s=(5, 30, 120))
    assert topo.retry_delay_for(0) == 5
    assert topo.retry_delay_for(5) == 5
    assert topo.retry_delay_for(6) == 30
    assert topo.retry_delay_for(10_000) == 120


@pytest.mark.parametrize(
    ("prefix", "methods", "delays"),
    [
        ("", ("push",), (5,)),
        ("a#b", ("push",), (5,)),
        ("lgsp", ("fax",), (5,)),
        ("lgsp", (), (5,)),
        ("lgsp", ("push",), ()),
        ("lgsp", ("push",), (30, 5)),
        ("lgsp", ("push",), (0, 5)),
    ],
)
def test_invalid_topology_is_a_config_error(
    prefix: str, methods: tuple[str, ...], delays: tuple[float, ...]
) -> None:
    with pytest.raises(ConfigError):
        Topology(prefix, methods, delays)


async def test_declaring_twice_is_fine_and_every_queue_is_quorum(broker: Broker, test_broker):
    await broker.declare_topology()  # the fixture declared it once already
    queues = test_broker.list_queues()
    names = broker.topology.queue_names()
    assert names == (
        f"{broker.topology.prefix}.q.push",
        f"{broker.topology.prefix}.retry.push.0.2s",
        f"{broker.topology.prefix}.retry.push.0.5s",
        f"{broker.topology.prefix}.dead.push",
    )
    for name in names:
        assert queues[name]["type"] == "quorum", name


async def test_retry_queues_expire_back_to_the_work_queue(broker: Broker, test_broker):
    topo = broker.topology
    queues = test_broker.list_queues()
    args = queues[topo.retry_queue("push", 0.5)]["arguments"]
    assert args["x-message-ttl"] == 500
    assert args["x-dead-letter-exchange"] == ""
    assert args["x-dead-letter-routing-key"] == topo.work_queue("push")
    assert args["x-dead-letter-strategy"] == "at-least-once"
    assert args["x-overflow"] == "reject-publish"
    assert "x-message-ttl" not in queues[topo.work_queue("push")]["arguments"]


async def test_a_queue_with_other_arguments_is_a_config_error(
    test_broker, prefix: str, raw_connection: AbstractRobustConnection
) -> None:
    async with raw_connection.channel() as channel:
        await channel.declare_queue(f"{prefix}.q.push", durable=True)  # classic, not quorum
    async with await Broker.connect(test_broker.url, prefix=prefix, methods=("push",)) as broker:
        with pytest.raises(ConfigError) as caught:
            await broker.declare_topology()
        assert caught.value.code == "config.broker_topology"
        await broker.ping()  # the connection survived; the exchange was declared before


async def test_queue_depths_count_ready_messages(
    broker: Broker, make_message: Callable[..., DeliveryMessage]
) -> None:
    topo = broker.topology
    assert await broker.queue_depths() == dict.fromkeys(topo.queue_names(), 0)
    await broker.publish_many([make_message(1), make_message(2)])
    depths = await broker.queue_depths()
    assert depths[topo.work_queue("push")] == 2
    assert depths[topo.dead_queue("push")] == 0


async def test_ping_needs_the_declared_exchange(test_broker, prefix: str) -> None:
    async with await Broker.connect(test_broker.url, prefix=prefix, methods=("push",)) as broker:
        with pytest.raises(UnavailableError) as caught:
            await broker.ping()
        assert caught.value.code == "unavailable.broker"
        with pytest.raises(UnavailableError):
            await broker.queue_depths()
        await broker.declare_topology()
        await broker.ping()


async def test_connecting_to_nothing_is_unavailable() -> None:
    with pytest.raises(UnavailableError) as caught:
        await Broker.connect("amqp://guest:secret@127.0.0.1:1/", connect_timeout_s=5)
    assert caught.value.code == "unavailable.broker"
    assert "secret" not in str(caught.value)


async def test_wrong_credentials_are_unavailable(test_broker) -> None:
    url = test_broker.url.replace("guest:guest", "guest:wrong-password")
    with pytest.raises(UnavailableError):
        await Broker.connect(url, connect_timeout_s=5)


async def test_dotted_organ_ids_reach_the_method_queue(
    broker: Broker, raw_connection: AbstractRobustConnection
) -> None:
    """A routing key ``push.<OrganId with dots>`` reaches the push queue through ``push.#``."""
    async with raw_connection.channel(publisher_confirms=True, on_return_raises=True) as ch:
        exchange = await ch.get_exchange(broker.topology.exchange)
        await exchange.publish(aio_pika.Message(b"x"), "push.000.00.01.H56", mandatory=True)
    depths = await broker.queue_depths()
    assert depths[broker.topology.work_queue("push")] == 1
