"""The batched confirmed publish (``broker.confirms``): aiormq's ``basic_publish`` bytes and
bookkeeping, written once for a whole batch, and each message's own outcome on the real broker.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import aio_pika
import aiormq
import aiormq.channel
import pytest
from aio_pika.abc import AbstractRobustConnection
from aiormq import spec
from aiormq.abc import ChannelFrame
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp.header import ContentHeader

from gateway.broker import Broker, DeliveryMessage
from gateway.broker.confirms import Outgoing, _frames, _write
from gateway.core.errors import UnavailableError

MakeMessage = Callable[..., DeliveryMessage]
DrainQueue = Callable[
    [AbstractRobustConnection, str], Awaitable[list[aio_pika.abc.AbstractIncomingMessage]]
]

FRAME_MAX = 131072
MAX_CONTENT = FRAME_MAX - aiormq.channel.Channel.CONTENT_FRAME_SIZE


def _reference(number: int, max_content_size: int, item: Outgoing) -> bytes:
    """What aiormq's ``basic_publish`` puts on the writer's queue for ``item``."""
    channel = SimpleNamespace(max_content_size=max_content_size)
    frames: list[Any] = [
        spec.Basic.Publish(exchange=item.exchange, routing_key=item.routing_key, mandatory=True),
        ContentHeader(properties=item.properties, body_size=len(item.body)),
    ]
    frames += aiormq.channel.Channel._split_body(channel, item.body)  # type: ignore[arg-type]
    return ChannelFrame.marshall(channel_number=number, frames=frames).payload


def _outgoing(body: bytes, routing_key: str = "push.000.00.01.H56", **changes: Any) -> Outgoing:
    message = DeliveryMessage(
        delivery_id=changes.pop("delivery_id", "d-1"),
        document_pk="doc-1",
        recipient="000.00.01.H56",
        method="push",
        body=body or None,
        claim_check_sha256=None if body else "ab" * 32,
        **changes,
    )
    return Outgoing(body, "lgsp.deliveries", routing_key, message.amqp_properties(), "publish")


@pytest.mark.parametrize(
    "size",
    [
        0,
        1,
        4000,
        MAX_CONTENT - 1,
        MAX_CONTENT,
        MAX_CONTENT + 1,
        2 * MAX_CONTENT,
        3 * MAX_CONTENT + 7,
    ],
)
@pytest.mark.parametrize("number", [1, 2, 300])
def test_the_frames_are_basic_publishs(size: int, number: int) -> None:
    item = _outgoing(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    channel = SimpleNamespace(number=number, max_content_size=MAX_CONTENT)
    message_id, frames = _frames(channel, item)  # type: ignore[arg-type]
    assert message_id == "d-1"
    assert frames == _reference(number, MAX_CONTENT, item)


@settings(max_examples=150, deadline=None)
@given(
    body=st.binary(max_size=300),
    max_content=st.integers(1, 64) | st.just(-8),  # -8: frame_max 0, no limit
    routing_key=st.text(max_size=80),
    exchange=st.sampled_from(["", "lgsp.deliveries", "amq.direct"]),
    attempts_seen=st.none() | st.integers(0, 2**40),
)
def test_the_frames_equal_aiormqs_for_any_message(
    body: bytes, max_content: int, routing_key: str, exchange: str, attempts_seen: int | None
) -> None:
    item = _outgoing(body, attempts_seen=attempts_seen)
    item = Outgoing(item.body, exchange, routing_key, item.properties, item.action)
    channel = SimpleNamespace(number=7, max_content_size=max_content)
    _, frames = _frames(channel, item)  # type: ignore[arg-type]
    assert frames == _reference(7, max_content, item)


def test_pamqps_own_properties_and_a_missing_message_id_are_as_basic_publish_makes_them() -> None:
    """A copy of a received message (a dead letter) carries pamqp's ``Properties`` and may
    have no message id: it gets a random UUID-like one, as ``basic_publish`` gives it."""
    properties = aio_pika.Message(
        b"<x/>", headers={"x-other": [1, "a"], "x-f": 1.5}, priority=3, delivery_mode=2
    ).properties
    assert not properties.message_id
    item = Outgoing(b"<x/>", "", "q.dead", properties, "dead-letter")
    channel = SimpleNamespace(number=1, max_content_size=MAX_CONTENT)
    message_id, frames = _frames(channel, item)  # type: ignore[arg-type]
    assert len(message_id) == 32
    assert int(message_id, 16) >> 76 & 0xF == 4
    assert item.properties.message_id == message_id
    assert frames == _reference(1, MAX_CONTENT, item)


def test_a_routing_key_too_long_is_refused_as_aiormq_refuses_it() -> None:
    channel = SimpleNamespace(number=1, max_content_size=MAX_CONTENT)
    with pytest.raises(ValueError, match="Routing key too long"):
        _frames(channel, _outgoing(b"<x/>", routing_key="k" * 256))  # type: ignore[arg-type]


class _StuckQueue:
    async def put(self, _frame: ChannelFrame) -> None:
        await asyncio.sleep(3600)


class _FakeChannel:
    """The parts of an ``aiormq.Channel`` that ``_write`` uses, with a writer that never
    takes the frame (a full queue)."""

    def __init__(self) -> None:
        self.delivery_tag = 41
        self.confirmations: OrderedDict[int, asyncio.Future[object]] = OrderedDict()
        self.message_id_delivery_tag: dict[str, int] = {"other": 41}
        self.write_queue = _StuckQueue()
        self.created: list[asyncio.Future[object]] = []

    @asynccontextmanager
    async def _lock(self) -> AsyncIterator[None]:
        yield

    @property
    def lock(self) -> Any:
        return self._lock()

    def create_future(self) -> asyncio.Future[object]:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.created.append(future)
        return future


async def test_a_batch_the_writer_never_took_gives_its_tags_back() -> None:
    """Timed out (or cancelled) before the writer took the frames: the broker has not seen
    them, so their delivery tags are used again and their bookkeeping is gone."""
    channel = _FakeChannel()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await _write(channel, ["m-1", "m-2"], [b"1", b"2"])  # type: ignore[arg-type]
    assert channel.delivery_tag == 41
    assert not channel.confirmations
    assert channel.message_id_delivery_tag == {"other": 41}
    assert [f.cancelled() for f in channel.created] == [True, True]


@pytest.fixture
async def confirming(broker: Broker) -> aiormq.Channel:
    await broker._publishing.ready("test")
    slot = broker._publishing._current
    assert slot is not None
    underlay = await slot.channel.get_underlay_channel()
    assert isinstance(underlay, aiormq.Channel)
    return underlay


async def test_a_batch_arrives_whole_in_order_with_each_outcome(
    broker: Broker,
    confirming: aiormq.Channel,
    raw_connection: AbstractRobustConnection,
    drain_queue: DrainQueue,
    make_message: MakeMessage,
) -> None:
    """Small and multi-frame bodies, a claim check, an unroutable message and a routing key
    too long in one batch: each hears its own outcome, the others arrive byte for byte."""
    large = bytes(range(256)) * (3 * FRAME_MAX // 256 + 5)
    msgs = [
        make_message(0),
        make_message(1, body=large),
        make_message(2, body=None, claim_check_sha256="cd" * 32),
        make_message(3, method="mailbox"),  # nothing bound: returned
        make_message(4, recipient="x" * 300),  # routing key over 255
        make_message(5),
    ]
    errors = await broker.publish_each(msgs)
    assert [errors[n] for n in (0, 1, 2, 5)] == [None] * 4
    assert isinstance(errors[3], UnavailableError)
    assert "unroutable" in errors[3].message
    assert isinstance(errors[4], ValueError)
    assert "Routing key too long" in str(errors[4])
    got = await drain_queue(raw_connection, broker.topology.work_queue("push"))
    assert [DeliveryMessage.from_amqp(m) for m in got] == [msgs[0], msgs[1], msgs[2], msgs[5]]
    assert got[1].body == large
    assert not confirming.confirmations or all(
        isinstance(c, aiormq.channel.Returning) for c in confirming.confirmations.values()
    )
    assert not confirming.message_id_delivery_tag
    await broker.publish(make_message(6))  # the channel goes on


async def test_confirms_that_do_not_come_time_the_batch_out_and_are_forgotten(
    broker: Broker,
    confirming: aiormq.Channel,
    monkeypatch: pytest.MonkeyPatch,
    make_message: MakeMessage,
) -> None:
    """No confirm within the publish timeout: every message of the batch fails (timed out),
    its confirmation is cancelled and its message id forgotten; confirms arriving later are
    ignored, and the channel keeps publishing."""
    held: list[Any] = []

    async def hold(frame: Any) -> None:
        held.append(frame)

    monkeypatch.setattr(confirming, "_on_confirm_frame", hold)
    monkeypatch.setattr(broker, "publish_timeout_s", 0.3)
    msgs = [make_message(n) for n in range(3)]
    errors = await broker.publish_each(msgs)
    assert all(isinstance(e, UnavailableError) and "timed out" in e.message for e in errors)
    await asyncio.sleep(0)  # the done callbacks
    assert not confirming.message_id_delivery_tag
    assert all(c.cancelled() for c in confirming.confirmations.values())  # type: ignore[union-attr]

    monkeypatch.undo()
    for frame in held:  # the late confirms: ignored
        await confirming._on_confirm_frame(frame)
    for _ in range(500):  # (a confirm the broker had not sent yet comes through the reader)
        if not confirming.confirmations:
            break
        await asyncio.sleep(0.01)
    assert not confirming.confirmations
    await broker.publish(make_message(9))
    assert broker.renewals_after_nack == 0


async def test_a_channel_closed_with_confirms_pending_fails_the_batch(
    broker: Broker,
    confirming: aiormq.Channel,
    monkeypatch: pytest.MonkeyPatch,
    make_message: MakeMessage,
) -> None:
    """The channel closes while the batch waits for its confirms: each message fails at once
    (not at the timeout), and the next publish opens a new channel."""

    async def hold(_frame: Any) -> None:
        return None

    monkeypatch.setattr(confirming, "_on_confirm_frame", hold)
    msgs = [make_message(n) for n in range(4)]
    published = asyncio.ensure_future(broker.publish_each(msgs))
    for _ in range(200):
        if len(confirming.confirmations) == 4:
            break
        await asyncio.sleep(0.01)
    await confirming.close()
    async with asyncio.timeout(5):  # well before the publish timeout (10 s)
        errors = await published
    assert all(isinstance(e, UnavailableError) for e in errors), errors
    await broker.publish(make_message(5))
