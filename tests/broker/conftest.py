"""Broker test fixtures: a throw-away vhost on the real RabbitMQ, and a fresh prefix per test.

The session creates vhost ``lgsp-test-<random>`` with ``rabbitmqctl`` and deletes it at the end,
so nothing is left on the broker. ``LGSP_TEST_AMQP_URL`` names the broker (default: the local
one); its vhost part is replaced by the test vhost.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from gateway.broker import Broker, DeliveryMessage

BASE_URL = os.environ.get("LGSP_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
TEST_DELAYS_S = (0.2, 0.5)


def rabbitmqctl(*args: str) -> str:
    exe = shutil.which("rabbitmqctl")
    assert exe, "rabbitmqctl is needed to create the test vhost (RabbitMQ must be installed)"
    done = subprocess.run(
        [exe, "-q", *args], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"rabbitmqctl {args}: {done.stderr}"
    return done.stdout


@dataclass(frozen=True)
class BrokerSite:
    """Where the tests' broker lives."""

    vhost: str
    url: str

    def list_queues(self) -> dict[str, dict[str, object]]:
        """Queue name -> {type, arguments: {name: value}, messages}, as the broker reports them."""
        out = rabbitmqctl(
            "list_queues", "-p", self.vhost, "--formatter", "json",
            "name", "type", "arguments", "messages",
        )  # fmt: skip
        queues: dict[str, dict[str, object]] = {}
        for row in json.loads(out):
            row["arguments"] = {name: value for name, _type, value in row["arguments"]}
            queues[row["name"]] = row
        return queues


@pytest.fixture(scope="session")
def test_broker() -> Iterator[BrokerSite]:
    vhost = f"lgsp-test-{secrets.token_hex(4)}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        parts = urlsplit(BASE_URL)
        url = urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))
        yield BrokerSite(vhost, url)
    finally:
        rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def prefix() -> str:
    return f"t{secrets.token_hex(3)}"


@pytest.fixture
async def broker(test_broker: BrokerSite, prefix: str) -> AsyncIterator[Broker]:
    """A connected broker with the topology of one method ('push') and short test delays."""
    async with await Broker.connect(
        test_broker.url, prefix=prefix, methods=("push",), retry_delays_s=TEST_DELAYS_S
    ) as connected:
        await connected.declare_topology()
        yield connected


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
