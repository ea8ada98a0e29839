"""Consuming a work queue: each received AMQP message as a ``Received``, settled by ack or requeue.

The worker never touches aio-pika: it gets ``Received`` (the parsed ``DeliveryMessage``, or why
it could not be parsed) and settles it with ``ack()`` or ``requeue()``, whose broker failures are
``UnavailableError`` (an unsettled message returns to the queue when its channel closes).
A subscription outlives its channel: after a failover it consumes again on the new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
)

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
    raw: AbstractIncomingMessage = field(repr=False)

    @classmethod
    def of(cls, raw: AbstractIncomingMessage) -> Received:
        try:
            message: DeliveryMessage | None = DeliveryMessage.from_amqp(raw)
            reason = None
        except InputError as exc:
            message, reason = None, exc.message
        return cls(message, reason, raw.message_id, bool(raw.redelivered), raw)

    async def ack(self) -> None:
        with broker_errors(f"ack of {self.message_id}"):
            await self.raw.ack()

    async def requeue(self) -> None:
        """Give the message back to its queue now (``basic.nack`` with requeue)."""
        with broker_errors(f"requeue of {self.message_id}"):
            await self.raw.nack(requeue=True)


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
                self.consumer_tag = await queue.consume(self._deliver, no_ack=False)
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

    async def _deliver(self, raw: AbstractIncomingMessage) -> None:
        assert self._on_received is not None
        await self._on_received(Received.of(raw))

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
