"""Consuming a work queue: each received AMQP message as a ``Received``, settled by ack or requeue.

The worker never touches aio-pika: it gets ``Received`` (the parsed ``DeliveryMessage``, or why
it could not be parsed) and settles it with ``ack()`` or ``requeue()``, whose broker failures are
``UnavailableError`` (an unsettled message returns to the queue when its channel closes).
A subscription outlives its channel: after a failover it consumes again on the new connection.

Acks asked for in the same turn of the event loop (a batch settled after its commit) go out
together (``ChannelAcks``): one ``basic.ack`` with ``multiple`` for a run of consecutive delivery
tags that are all asked to be acked, the others one by one. A tag is covered only when its own
``ack()`` asked for it, so no message is acknowledged before its worker says so.

Deliveries are consumed through aiormq's ``basic_consume`` on the channel aio-pika opened: each
runs in the task aiormq makes for it, and aio-pika's ``IncomingMessage`` (~25 us to build) is
made only when a dead letter or a requeue needs it (``Received.raw``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractMessage,
    AbstractQueue,
)
from aio_pika.message import IncomingMessage
from aiormq.abc import AbstractChannel as AmqpChannel
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import ChannelInvalidStateError

from gateway.broker.failures import broker_errors
from gateway.broker.link import MAX_BACKOFF_S, RECONNECT_S, WATCH_S, Link
from gateway.broker.messages import DeliveryMessage
from gateway.core.errors import InputError
from gateway.core.loops import Loops, supervise

log = structlog.get_logger(__name__)
WAIT_UP_S = 60.0  # a round waiting for the link to come back fails after this (and retries)


@dataclass(frozen=True, slots=True)
class Received:
    """One message taken from a queue, not yet settled."""

    message: DeliveryMessage | None  # None: malformed, see ``malformed_reason``
    malformed_reason: str | None
    message_id: str | None
    redelivered: bool
    delivered: DeliveredMessage = field(repr=False)  # as aiormq received it

    acks: ChannelAcks | None = field(default=None, repr=False, compare=False)
    _incoming: list[AbstractIncomingMessage] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    @classmethod
    def of(cls, delivered: DeliveredMessage, acks: ChannelAcks | None = None) -> Received:
        read = _Read(delivered)
        try:
            message: DeliveryMessage | None = DeliveryMessage.from_amqp(
                cast("AbstractMessage", read)  # reads only what ``_Read`` has (tested)
            )
            reason = None
        except InputError as exc:
            message, reason = None, exc.message
        return cls(message, reason, read.message_id, bool(delivered.redelivered), delivered, acks)

    @property
    def raw(self) -> AbstractIncomingMessage:
        """aio-pika's ``IncomingMessage`` of this delivery, made on first use only (a dead
        letter's copy, a requeue): a received message does without it (~25 us each)."""
        if not self._incoming:
            self._incoming.append(IncomingMessage(self.delivered, no_ack=False))
        return self._incoming[0]

    async def ack(self) -> None:
        with broker_errors(f"ack of {self.message_id}"):
            tag = self.delivered.delivery_tag
            if self.acks is None or tag is None:
                await self.raw.ack()
            else:
                await self.acks.ack(tag, self.delivered.channel)

    async def requeue(self) -> None:
        """Give the message back to its queue now (``basic.nack`` with requeue)."""
        with broker_errors(f"requeue of {self.message_id}"):
            await self.raw.nack(requeue=True)
            if self.acks is not None and self.delivered.delivery_tag is not None:
                self.acks.settled(self.delivered.delivery_tag)


class _Read:
    """What ``DeliveryMessage.from_amqp`` reads of a received message, as aio-pika's
    ``IncomingMessage`` gives it (``tests/broker/test_consumer_read.py`` holds the two to the
    same result), read straight from aiormq's ``DeliveredMessage``."""

    __slots__ = ("body", "content_type", "headers", "message_id")

    def __init__(self, delivered: DeliveredMessage) -> None:
        properties = delivered.header.properties
        self.body = delivered.body
        self.headers = properties.headers or {}
        self.content_type = properties.content_type
        self.message_id = properties.message_id


class ChannelAcks:
    """The acks of one consuming channel, sent together once per turn of the event loop.

    Delivery tags on a channel count 1, 2, 3, ... (AMQP 0-9-1); every tag up to ``_floor`` is
    settled. A flush acks the run of tags right above the floor that are asked to be acked (or
    settled otherwise, e.g. requeued) with ONE ``basic.ack(highest, multiple=True)``, which
    covers exactly the unsettled tags of that run: the ones asked for. A tag not seen, or seen
    and not settled, ends the run; asked-for tags beyond it are acked one by one."""

    def __init__(self) -> None:
        self._floor = 0  # every tag <= floor is settled
        self._above: set[int] = set()  # tags > floor settled one by one (acked or requeued)
        self._asked: dict[int, asyncio.Future[None]] = {}
        self._channel: AmqpChannel | None = None
        self._flushing: asyncio.Task[None] | None = None

    async def ack(self, tag: int, channel: AmqpChannel) -> None:
        """Ack ``tag`` (received on ``channel``) with the others asked for in this turn; raises
        what ``basic.ack`` does (``ChannelInvalidStateError`` at once on a closed channel)."""
        if channel.is_closed:
            raise ChannelInvalidStateError(f"{channel} is closed")
        future = asyncio.get_running_loop().create_future()
        self._asked[tag] = future
        self._channel = channel
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        await future

    def settled(self, tag: int) -> None:
        """``tag`` was settled otherwise (requeued): a run of acks may cover it."""
        if tag > self._floor:
            self._above.add(tag)

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the acks of this turn gather
        while self._asked and self._channel is not None:
            asked, self._asked = self._asked, {}
            top = self._floor
            while top + 1 in asked or top + 1 in self._above:
                top += 1
            run = [tag for tag in asked if tag <= top]
            singles = [tag for tag in asked if tag > top]
            self._floor = top
            self._above = {tag for tag in self._above if tag > top} | set(singles)
            sends = [(max(run), len(run) > 1, run)] if run else []
            sends += [(tag, False, [tag]) for tag in singles]
            try:
                for tag, multiple, covered in sends:
                    await self._send(self._channel, tag, multiple, [asked[t] for t in covered])
            except BaseException:  # cancelled: no future waits forever
                for future in [*asked.values(), *self._asked.values()]:
                    future.cancel()
                raise

    @staticmethod
    async def _send(
        channel: AmqpChannel, tag: int, multiple: bool, waiting: list[asyncio.Future[None]]
    ) -> None:
        try:
            await channel.basic_ack(tag, multiple=multiple)
        except Exception as exc:
            for future in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        for future in waiting:
            if not future.done():
                future.set_result(None)


ReceivedCallback = Callable[[Received], Awaitable[None]]


@dataclass(slots=True)
class Subscription:
    """A consumer on one queue, on its own channel with bounded prefetch, that follows the
    broker link: when its channel is lost (its node failed), it consumes again on the link's
    next connection. Messages received on the lost channel cannot be settled any more (their
    ``ack`` raises ``UnavailableError``); the broker delivers them again."""

    link: Link
    queue_name: str
    prefetch: int
    loops: Loops | None = None
    channel: AbstractChannel | None = None
    queue: AbstractQueue | None = None
    consumer_tag: str | None = None
    resumed: int = 0  # how many times consuming started again after a lost channel
    _on_received: ReceivedCallback | None = field(default=None, repr=False)
    _keeper: asyncio.Task[None] | None = field(default=None, repr=False)

    async def start(self, on_received: ReceivedCallback) -> None:
        """Start delivering to ``on_received`` (one task per message, manual acks); then keep
        consuming across lost connections until ``cancel`` or ``close``."""
        if self._on_received is not None:
            raise RuntimeError(f"subscription to {self.queue_name} already started")
        self._on_received = on_received
        await self._consume()
        self._keeper = asyncio.create_task(
            supervise(
                f"consume-{self.queue_name}",
                self._keep_consuming,
                interval_s=RECONNECT_S,
                max_backoff_s=MAX_BACKOFF_S,
                loops=self.loops,
            ),
            name=f"consume-{self.queue_name}",
        )

    async def _consume(self) -> None:
        action = f"consume from {self.queue_name}"
        channel = await self.link.channel(action, confirms=False)
        with broker_errors(action):
            try:
                await channel.set_qos(prefetch_count=self.prefetch)
                queue = await channel.get_queue(self.queue_name, ensure=True)
                acks = ChannelAcks()  # this channel's delivery tags

                async def deliver(delivered: DeliveredMessage) -> None:
                    await self._deliver(delivered, acks)

                # aiormq's own consumer: each delivery runs in the task aiormq makes for it,
                # without aio-pika's IncomingMessage and second task (``Queue.consume``)
                underlay = await channel.get_underlay_channel()
                consumed = await underlay.basic_consume(self.queue_name, deliver, no_ack=False)
                self.consumer_tag = consumed.consumer_tag
            except BaseException:
                if not channel.is_closed:
                    await channel.close()
                raise
        self.channel, self.queue = channel, queue

    async def _keep_consuming(self) -> None:
        """One round: watch the channel for a while; once it is lost, consume again as soon as
        the link is up (``UnavailableError`` otherwise: the loop backs off and tries again)."""
        channel = self.channel
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(channel.closed(), WATCH_S)
            if not channel.is_closed:
                return
        if channel is not None:
            self.channel, self.queue, self.consumer_tag = None, None, None
            log.warning("broker.consumer_lost", queue=self.queue_name, node=self.link.node)
        await self.link.wait_up(WAIT_UP_S)  # resumes as soon as the link is up again
        await self._consume()
        self.resumed += 1
        log.info("broker.consumer_resumed", queue=self.queue_name, node=self.link.node)

    async def _deliver(self, delivered: DeliveredMessage, acks: ChannelAcks) -> None:
        assert self._on_received is not None
        await self._on_received(Received.of(delivered, acks))

    async def _stop_keeping(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def cancel(self) -> None:
        """Stop new deliveries; messages already received stay unsettled until settled."""
        await self._stop_keeping()
        channel, queue, tag = self.channel, self.queue, self.consumer_tag
        self.consumer_tag = None
        if tag is None or queue is None or channel is None or channel.is_closed:
            return
        with broker_errors(f"cancel consumer on {self.queue_name}"):
            await queue.cancel(tag)

    async def close(self) -> None:
        """Close the channel: the broker requeues every message not settled yet."""
        await self._stop_keeping()
        channel, self.channel = self.channel, None
        if channel is None or channel.is_closed:
            return
        with broker_errors(f"close channel of {self.queue_name}"):
            await channel.close()
