"""Confirmed publishing on one channel at a time: pipelined, and renewed after a nack.

``publish_each`` puts a whole batch in flight and gives each message its own outcome: a nack, a
return (unroutable, published ``mandatory``) or a timeout fails that message only. On aiormq's
channel (the AMQP layer aio-pika itself uses) a batch is written as ``basic_publish`` writes one
message, once for all of them: under the channel's lock, each message takes the next delivery
tag and a confirmation future of the channel's (``confirmations``, ``message_id_delivery_tag``:
aiormq's reader settles it on the broker's ack, nack or return, and rejects it if the channel
closes), then the frames of every message (the ``Basic.Publish`` method frame, pamqp's own bytes
kept per exchange and routing key; the content header with the properties that
``DeliveryMessage.amqp_properties`` built; the body in frames of at most the channel's
``max_content_size``) go to the connection's writer as one write, and one deadline covers the
batch. ``tests/broker/test_confirms.py`` holds the bytes to aiormq's ``basic_publish``. No
aio-pika message per publish, and no wait for the socket buffer before the confirms.

RabbitMQ 3.10 has a trap (the cluster notes' gotcha 1): a channel whose first publish to a
quorum queue comes while that queue's leader node has just died keeps the dead node as the
leader, and every later publish on it is nacked until that node is back (minutes or more). So a
nack retires its channel: the nacked message fails (its request answers 503 and the outbox
republishes it), messages already in flight on that channel finish there, the channel is closed
once they have, and later publishes go to a new channel. A channel lost with its connection is
replaced on the link's next connection; an unroutable message (returned) keeps its channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import struct
from asyncio import Future
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

import aiormq
import aiormq.exceptions as amqp
import pamqp.frame
import structlog
from aio_pika.abc import AbstractChannel
from aiormq import spec
from aiormq.abc import ChannelFrame

from gateway.broker.failures import broker_error
from gateway.broker.link import Link
from gateway.core.errors import UnavailableError

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish: its bytes, exchange (``""``: the default one), routing key, AMQP
    properties, and what to call its publication in an error."""

    body: bytes = field(repr=False)
    exchange: str
    routing_key: str
    properties: spec.Basic.Properties = field(repr=False)
    action: str


@dataclass(eq=False, slots=True)
class Confirming:
    """One confirming channel, and how many publishes now wait for its confirms."""

    channel: AbstractChannel
    in_flight: int = 0
    retired: bool = False


def is_nack(exc: BaseException) -> bool:
    """The broker answered ``basic.nack`` (a return, for an unroutable message, is not one)."""
    return isinstance(exc, amqp.DeliveryError) and not isinstance(exc, amqp.PublishError)


class PublishingChannel:
    """Publishes over the current confirming channel of a ``Link``, opening one when needed."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self._current: Confirming | None = None
        self._opening = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self.renewals_after_nack = 0

    async def _current_slot(self, action: str) -> Confirming:
        current = self._current
        if current is None or current.channel.is_closed:
            async with self._opening:
                current = self._current
                if current is None or current.channel.is_closed:
                    channel = await self._link.channel(action, confirms=True)
                    current = self._current = Confirming(channel)
        return current

    async def ready(self, action: str) -> None:
        """Open the channel now (``UnavailableError`` if it cannot be)."""
        await self._current_slot(action)

    async def publish_each(
        self, items: Sequence[Outgoing], *, timeout_s: float
    ) -> list[BaseException | None]:
        """Publish every item ``mandatory`` with its confirm awaited, all in flight at once;
        each item's own error (``UnavailableError``: nacked, returned as unroutable, timed
        out, connection lost) or None once the broker confirmed it."""
        if not items:
            return []
        try:
            slot = await self._current_slot(items[0].action)
        except UnavailableError as exc:
            return [UnavailableError(f"{i.action}: {exc.message}", code=exc.code) for i in items]
        slot.in_flight += len(items)
        try:
            outcomes = await _publish_all(slot.channel, items, timeout_s)
        finally:
            slot.in_flight -= len(items)
        errors: list[BaseException | None] = []
        for item, outcome in zip(items, outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                errors.append(None)
                continue
            if is_nack(outcome):
                self._retire(slot, item.action)
            errors.append(broker_error(item.action, outcome))
        if slot.retired and slot.in_flight == 0:
            self._close_soon(slot.channel)
        return errors

    def _retire(self, slot: Confirming, action: str) -> None:
        if slot.retired:
            return
        slot.retired = True
        if self._current is slot:
            self._current = None
            self.renewals_after_nack += 1
            log.warning("broker.channel_renewed_after_nack", action=action, node=self._link.node)

    def _close_soon(self, channel: AbstractChannel) -> None:
        if channel.is_closed:
            return
        task = asyncio.get_running_loop().create_task(_close_quietly(channel))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        current, self._current = self._current, None
        if current is not None:
            await _close_quietly(current.channel)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


async def _close_quietly(channel: AbstractChannel) -> None:
    """Close a channel that is no longer used; its failure to close changes nothing."""
    with contextlib.suppress(amqp.AMQPError, ConnectionError, OSError, RuntimeError):
        if not channel.is_closed:
            await channel.close()


async def _publish_all(
    channel: AbstractChannel, items: Sequence[Outgoing], timeout_s: float
) -> list[BaseException | None]:
    """Every item's outcome: None once confirmed, else its exception (not yet translated)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    try:
        underlay = await channel.get_underlay_channel()
    except Exception as exc:
        return [exc for _ in items]
    if not (isinstance(underlay, aiormq.Channel) and underlay.publisher_confirms):
        # ``Link.channel(confirms=True)`` makes every publishing channel so: a bug otherwise
        raise TypeError("a publishing channel must be aiormq's, with publisher confirms")
    outcomes: list[BaseException | None] = [None] * len(items)
    going: list[tuple[int, str]] = []  # (index, message id) of what goes out
    frames: list[bytes] = []  # their frames, in the same order
    for index, item in enumerate(items):
        try:
            message_id, encoded = _frames(underlay, item)
        except Exception as exc:  # that message's outcome (a routing key too long)
            outcomes[index] = exc
            continue
        going.append((index, message_id))
        frames.append(encoded)
    if going:
        await _send(underlay, going, frames, outcomes, deadline)
    return outcomes


async def _send(
    channel: aiormq.Channel,
    going: list[tuple[int, str]],
    frames: list[bytes],
    outcomes: list[BaseException | None],
    deadline: float,
) -> None:
    """Write ``frames`` and wait for their confirms until ``deadline``; each one's outcome."""
    try:
        async with asyncio.timeout_at(deadline):
            confirmations = await _write(channel, [m for _, m in going], frames)
    except Exception as exc:  # the channel closed, or the lock or the writer timed out
        for index, _ in going:
            outcomes[index] = exc
        return
    loop = asyncio.get_running_loop()
    try:
        _, pending = await asyncio.wait(confirmations, timeout=max(deadline - loop.time(), 0.0))
    except BaseException:  # cancelled: as each publish's own cancellation left its confirmation
        for confirmation in confirmations:
            confirmation.cancel()
        raise
    for (index, _), confirmation in zip(going, confirmations, strict=True):
        if confirmation in pending:
            confirmation.cancel()  # as a publish's own timeout leaves it; the ack is ignored
            outcomes[index] = TimeoutError()
        elif confirmation.cancelled():
            outcomes[index] = asyncio.CancelledError()
        else:
            outcomes[index] = confirmation.exception()


async def _write(
    channel: aiormq.Channel, message_ids: list[str], frames: list[bytes]
) -> list[Future[object]]:
    """``basic_publish``'s own steps for every message at once, one write for all: each takes
    the next delivery tag and a confirmation future, under the channel's lock. ``frames`` is
    emptied once joined (the copies of the bodies are not kept while the confirms come)."""
    confirmations: list[Future[object]] = []
    async with channel.lock:
        first = channel.delivery_tag + 1
        sent = False
        try:
            for message_id in message_ids:
                channel.delivery_tag += 1
                tag = channel.delivery_tag
                confirmation = channel.create_future()
                channel.confirmations[tag] = confirmation
                channel.message_id_delivery_tag[message_id] = tag
                confirmations.append(confirmation)
            payload = b"".join(frames)
            frames.clear()
            await channel.write_queue.put(ChannelFrame(payload=payload, should_close=False))
            sent = True
        finally:
            if not sent:  # the broker has not seen them: their tags are reused, as aiormq does
                for offset, message_id in enumerate(message_ids[: len(confirmations)]):
                    tag = first + offset
                    channel.confirmations.pop(tag, None)
                    if channel.message_id_delivery_tag.get(message_id) == tag:
                        channel.message_id_delivery_tag.pop(message_id)
                    confirmations[offset].cancel()
                channel.delivery_tag = first - 1
    for offset, message_id in enumerate(message_ids):
        confirmations[offset].add_done_callback(
            functools.partial(_forget, channel, message_id, first + offset)
        )
    return confirmations


def _forget(channel: aiormq.Channel, message_id: str, tag: int, _: Future[object]) -> None:
    """``basic_publish``'s ``forget_message_id``: a settled message's id leaves the map."""
    if channel.message_id_delivery_tag.get(message_id) == tag:
        channel.message_id_delivery_tag.pop(message_id)


_FRAME = struct.Struct(">BHI")  # a frame's type, channel and payload size
_CONTENT_HEADER = struct.Struct(">BHIHxxQ")  # ... and a content header's class id, weight, size
_FRAME_END = b"\xce"
_HEADER_FIXED = 12  # the content header's class id, weight and body size, before the properties


@functools.lru_cache(maxsize=4096)
def _method_frame(number: int, exchange: str, routing_key: str) -> bytes:
    """pamqp's ``Basic.Publish`` frame (mandatory) as ``basic_publish`` builds it."""
    if len(routing_key) > 255:  # aiormq's own check, before pamqp's
        raise ValueError("Routing key too long (max 255 bytes)")
    publish = spec.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=True)
    return pamqp.frame.marshal(publish, number)


def _frames(channel: aiormq.Channel, item: Outgoing) -> tuple[str, bytes]:
    """The message id and the frames ``basic_publish`` writes for ``item``: the method frame,
    the content header, the body in frames of at most ``max_content_size`` (none if empty)."""
    number = channel.number
    method = _method_frame(number, item.exchange, item.routing_key)
    properties = item.properties
    if not properties.message_id:  # as basic_publish: a random UUID-like id
        properties.message_id = UUID(int=random.getrandbits(128), version=4).hex
    encoded = properties.marshal()
    body = item.body
    size = len(body)
    parts = [
        method,
        _CONTENT_HEADER.pack(2, number, _HEADER_FIXED + len(encoded), 60, size),
        encoded,
        _FRAME_END,
    ]
    if size:
        step = channel.max_content_size  # frame_max - 8 (frame_max 0, no limit: negative)
        if size < step or step < 0:
            parts += (_FRAME.pack(3, number, size), body, _FRAME_END)
        else:
            for start in range(0, size, step):
                chunk = body[start : start + step]
                parts += (_FRAME.pack(3, number, len(chunk)), chunk, _FRAME_END)
    return properties.message_id, b"".join(parts)
