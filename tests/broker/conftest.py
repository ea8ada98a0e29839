"""Broker test fixtures on the real RabbitMQ: a fresh topology prefix per test, inside the run's.

The run's site (``test_broker``, whose teardown deletes every name under its prefix) comes from
``tests/conftest.py``.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection
from service_sites import BrokerSite

from gateway.broker import Broker, DeliveryMessage

TEST_DELAYS_S = (0.2, 0.5)


@pytest.fixture
def prefix(test_broker: BrokerSite) -> str:
    return test_broker.new_prefix("t")


@pytest.fixture
async def broker(test_broker: BrokerSite, prefix: str) -> AsyncIterator[Broker]:
    """A connected broker with the topology of one method ('push') and short test delays;
    its queues and exchange are deleted after the test."""
    async with await Broker.connect(
        test_broker.url, prefix=prefix, methods=("push",), retry_delays_s=TEST_DELAYS_S
    ) as connected:
        await connected.declare_topology()
        yield connected
    connection = await aio_pika.connect(test_broker.url)
    async with connection, connection.channel() as channel:
        await connected.topology.delete(channel)


@pytest.fixture
async def raw_connection(test_broker: BrokerSite) -> AsyncIterator[AbstractRobustConnection]:
    """A plain aio-pika connection for looking at queues from the outside."""
    connection = await aio_pika.connect_robust(test_broker.url)
    async with connection:
        yield connection


def _make_message(n: int = 0, **changes: object) -> DeliveryMessage:
    fields: dict[str, object] = {
        "delivery_id": f"d-{n:06d}-{secrets.token_hex(4)}",
        "document_pk": f"doc-{n}",
        "recipient": "000.00.01.H56",
        "method": "push",
        "body": f"<edXML:edXMLEnvelope n='{n}'/>".encode(),
    }
    fields.update(changes)
    return DeliveryMessage(**fields)  # type: ignore[arg-type]


async def _drain_queue(
    connection: AbstractRobustConnection, queue_name: str
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take (and ack) every message currently in ``queue_name``."""
    taken: list[aio_pika.abc.AbstractIncomingMessage] = []
    async with connection.channel() as channel:
        queue = await channel.get_queue(queue_name, ensure=True)
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            await message.ack()
            taken.append(message)
    return taken


MakeMessage = Callable[..., DeliveryMessage]
DrainQueue = Callable[
    [AbstractRobustConnection, str], Awaitable[list[aio_pika.abc.AbstractIncomingMessage]]
]


@pytest.fixture
def make_message() -> MakeMessage:
    """``make_message(n, **changes)``: a valid push message to 000.00.01.H56, unique id."""
    return _make_message


@pytest.fixture
def drain_queue() -> DrainQueue:
    """``await drain_queue(connection, name)``: take and ack every message in a queue."""
    return _drain_queue
