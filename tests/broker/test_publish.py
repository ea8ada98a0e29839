"""Confirmed publishing on the real broker, and the message's AMQP form."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection, DeliveryMode

from gateway.broker import Broker, DeliveryMessage
from gateway.core.errors import InputError, UnavailableError

MakeMessage = Callable[..., DeliveryMessage]


async def test_a_confirmed_publish_arrives_byte_identical_with_headers(
    broker: Broker,
    raw_connection: AbstractRobustConnection,
    drain_queue,
    make_message: MakeMessage,
) -> None:
    body = (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        "<edXML:edXMLEnvelope>Công văn\r\n</edXML:edXMLEnvelope>"
    )
    msg = make_message(7, body=body.encode("utf-8"), document_pk="doc-7", attempt=1)
    await broker.publish(msg)

    [got] = await drain_queue(raw_connection, broker.topology.work_queue("push"))
    assert got.body == body.encode("utf-8")
    assert got.message_id == msg.delivery_id
    assert got.delivery_mode == DeliveryMode.PERSISTENT
    assert got.content_type == "application/xml"
    assert got.routing_key == "push.000.00.01.H56"
    assert got.headers["x-lgsp-document-pk"] == "doc-7"
    assert got.headers["x-lgsp-recipient"] == "000.00.01.H56"
    assert got.headers["x-lgsp-method"] == "push"
    assert got.headers["x-lgsp-attempt"] == 1
    assert "x-lgsp-claim-check-sha256" not in got.headers
    assert DeliveryMessage.from_amqp(got) == msg


async def test_a_claim_check_travels_as_a_reference(
    broker: Broker,
    raw_connection: AbstractRobustConnection,
    drain_queue,
    make_message: MakeMessage,
) -> None:
    digest = hashlib.sha256(b"a large package").hexdigest()
    msg = make_message(1, body=None, claim_check_sha256=digest, content_type="application/jose")
    await broker.publish(msg)

    [got] = await drain_queue(raw_connection, broker.topology.work_queue("push"))
    assert got.body == b""
    assert got.headers["x-lgsp-claim-check-sha256"] == digest
    back = DeliveryMessage.from_amqp(got)
    assert back == msg
    assert back.body is None
    assert back.content_type == "application/jose"


async def test_an_unroutable_publish_raises(
    test_broker, prefix: str, make_message: MakeMessage
) -> None:
    # only 'push' is declared: nothing is bound for 'mailbox.#'
    async with await Broker.connect(test_broker.url, prefix=prefix, methods=("push",)) as broker:
        await broker.declare_topology()
        with pytest.raises(UnavailableError) as caught:
            await broker.publish(make_message(1, method="mailbox"))
        assert caught.value.code == "unavailable.broker"
        assert "unroutable" in caught.value.message
        await broker.publish(make_message(2))  # the channel is still usable afterwards
        assert (await broker.queue_depths())[broker.topology.work_queue("push")] == 1


async def test_publish_without_topology_is_unroutable(
    test_broker, prefix: str, make_message: MakeMessage
) -> None:
    async with await Broker.connect(test_broker.url, prefix=prefix, methods=("push",)) as broker:
        with pytest.raises(UnavailableError):
            await broker.publish(make_message(1))


async def test_publish_many_confirms_every_message(
    broker: Broker,
    raw_connection: AbstractRobustConnection,
    drain_queue,
    make_message: MakeMessage,
) -> None:
    msgs = [make_message(n) for n in range(300)]
    await broker.publish_many(msgs)
    got = await drain_queue(raw_connection, broker.topology.work_queue("push"))
    assert sorted(m.message_id or "" for m in got) == sorted(m.delivery_id for m in msgs)


async def test_publish_many_reports_partial_failure(
    broker: Broker, make_message: MakeMessage
) -> None:
    batch = [make_message(1), make_message(2, method="soap"), make_message(3)]
    with pytest.raises(UnavailableError) as caught:
        await broker.publish_many(batch)
    assert caught.value.message.startswith("1 of 3 publishes failed")
    assert (await broker.queue_depths())[broker.topology.work_queue("push")] == 2


async def test_publish_after_close_is_unavailable(
    test_broker, prefix: str, make_message: MakeMessage
) -> None:
    broker = await Broker.connect(test_broker.url, prefix=prefix, methods=("push",))
    await broker.declare_topology()
    await broker.aclose()
    with pytest.raises(UnavailableError):
        await broker.publish(make_message(1))
    with pytest.raises(UnavailableError):
        await broker.ping()


async def test_requeue_dead_moves_chosen_dead_letters_back_as_attempt_one(
    broker: Broker,
    make_message: MakeMessage,
    raw_connection: AbstractRobustConnection,
    drain_queue,
) -> None:
    msgs = [make_message(n, attempt=3, attempts_seen=2) for n in range(3)]
    dead, work = broker.topology.dead_queue("push"), broker.topology.work_queue("push")
    async with raw_connection.channel() as channel:
        for msg in msgs:
            letter = msg.to_amqp()
            letter.headers.update({"x-lgsp-dead-reason": "refused", "x-lgsp-attempts": 3})
            await channel.default_exchange.publish(letter, dead)
        junk = aio_pika.Message(b"junk", message_id=msgs[0].delivery_id)  # same id, unreadable
        await channel.default_exchange.publish(junk, dead)

    chosen = msgs[0].delivery_id
    # the caller read the delivery's attempt count in the log: the replay carries it
    assert await broker.requeue_dead("push", delivery_ids={chosen}, attempts_seen={chosen: 5}) == 1
    [back] = await drain_queue(raw_connection, work)
    assert back.headers["x-lgsp-attempt"] == 1
    assert "x-lgsp-dead-reason" not in back.headers
    assert DeliveryMessage.from_amqp(back) == replace(msgs[0], attempt=1, attempts_seen=5)
    await dead_depth_becomes(broker, 3)  # the others were given back to the dead queue

    assert await broker.requeue_dead("push") == 2  # the unreadable one stays dead
    others = await drain_queue(raw_connection, work)
    assert sorted(m.message_id or "" for m in others) == sorted(m.delivery_id for m in msgs[1:])
    assert [m.headers["x-lgsp-attempts-seen"] for m in others] == [2, 2]  # the dead copies' own
    await dead_depth_becomes(broker, 1)
    assert await broker.requeue_dead("push") == 0


async def dead_depth_becomes(broker: Broker, count: int) -> None:
    name = broker.topology.dead_queue("push")
    for _ in range(500):
        if (await broker.queue_depths())[name] == count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} never held {count} messages")


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"delivery_id": ""}, "delivery_id"),
        ({"method": "fax"}, "method"),
        ({"attempt": 0}, "attempt"),
        ({"attempts_seen": -1}, "attempts_seen"),
        ({"attempts_seen": True}, "attempts_seen"),
        ({"body": b""}, "body is empty"),
        ({"claim_check_sha256": "ab" * 32}, "empty body"),
        ({"body": None, "claim_check_sha256": "AB" * 32}, "SHA-256"),
        ({"published_at": datetime(2024, 1, 1)}, "timezone"),
    ],
)
def test_invalid_messages_are_refused(
    make_message: MakeMessage, changes: dict[str, object], why: str
) -> None:
    with pytest.raises(InputError) as caught:
        make_message(1, **changes)
    assert caught.value.code == "broker.malformed_message"
    assert why in caught.value.message


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "x-lgsp-document-pk is missing"),
        ({"x-lgsp-attempt": "1"}, "x-lgsp-attempt"),
        ({"x-lgsp-attempts-seen": "2"}, "x-lgsp-attempts-seen is not an integer"),
        ({"x-lgsp-attempts-seen": True}, "x-lgsp-attempts-seen is not an integer"),
        ({"x-lgsp-attempts-seen": -1}, "attempts_seen -1 < 0"),
        ({"x-lgsp-published-at": "yesterday"}, "ISO 8601"),
        ({"x-lgsp-recipient": 5}, "not text"),
    ],
)
def test_from_amqp_refuses_malformed_messages(headers: dict[str, object], why: str) -> None:
    good: dict[str, object] = {
        "x-lgsp-document-pk": "doc-1",
        "x-lgsp-recipient": "000.00.01.H56",
        "x-lgsp-method": "push",
        "x-lgsp-attempt": 1,
        "x-lgsp-published-at": datetime.now(UTC).isoformat(),
    }
    if headers:
        good.update(headers)
    else:
        good = {}
    message = aio_pika.Message(b"<x/>", headers=good, message_id="d-1")  # type: ignore[arg-type]
    with pytest.raises(InputError) as caught:
        DeliveryMessage.from_amqp(message)
    assert why in caught.value.message


async def test_the_fast_path_and_aio_pika_publish_the_same_message(
    broker: Broker,
    raw_connection: AbstractRobustConnection,
    drain_queue,
    make_message: MakeMessage,
) -> None:
    """The broker publishes through aiormq with properties it builds itself; aio-pika's own
    message (``to_amqp``) is the reference: the same message arrives the same either way."""
    by_reference = make_message(
        2, body=None, claim_check_sha256="ab" * 32, content_type="application/jose"
    )
    retried = make_message(3, attempt=4, attempts_seen=3)
    work = broker.topology.work_queue("push")
    async with raw_connection.channel(publisher_confirms=True, on_return_raises=True) as ch:
        exchange = await ch.get_exchange(broker.topology.exchange)
        for msg in (make_message(1), by_reference, retried):
            await broker.publish(msg)
            await exchange.publish(msg.to_amqp(), msg.routing_key, mandatory=True)
            fast, reference = await drain_queue(raw_connection, work)
            assert fast.body == reference.body
            assert fast.properties == reference.properties
            assert msg.amqp_headers().items() <= (fast.headers or {}).items()  # + x-delivery-count
            assert fast.delivery_mode == DeliveryMode.PERSISTENT
            assert (fast.routing_key, fast.exchange) == (reference.routing_key, reference.exchange)
            assert DeliveryMessage.from_amqp(fast) == DeliveryMessage.from_amqp(reference) == msg
