"""Consuming a work queue: each received AMQP message as a ``Received``, settled by ack or requeue.

The worker never touches aio-pika: it gets ``Received`` (the parsed ``DeliveryMessage``, or why
it could not be parsed) and settles it with ``ack()`` or ``requeue()``, whose broker failures are
``UnavailableError`` (an unsettled message returns to the queue when its channel closes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from gateway.broker.failures import broker_errors
from gateway.broker.messages import DeliveryMessage
from gateway.core.errors import InputError


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
    """A consumer on one queue, on its own channel with bounded prefetch."""

    channel: AbstractChannel
    queue: AbstractQueue
    consumer_tag: str | None = None
    _on_received: ReceivedCallback | None = field(default=None, repr=False)

    async def start(self, on_received: ReceivedCallback) -> None:
        """Start delivering to ``on_received`` (one task per message, manual acks)."""
        self._on_received = on_received
        with broker_errors(f"consume from {self.queue.name}"):
            self.consumer_tag = await self.queue.consume(self._deliver, no_ack=False)

    async def _deliver(self, raw: AbstractIncomingMessage) -> None:
        assert self._on_received is not None
        await self._on_received(Received.of(raw))

    async def cancel(self) -> None:
        """Stop new deliveries; messages already received stay unsettled until settled."""
        if self.consumer_tag is None or self.channel.is_closed:
            return
        tag, self.consumer_tag = self.consumer_tag, None
        with broker_errors(f"cancel consumer on {self.queue.name}"):
            await self.queue.cancel(tag)

    async def close(self) -> None:
        """Close the channel: the broker requeues every message not settled yet."""
        if self.channel.is_closed:
            return
        with broker_errors(f"close channel of {self.queue.name}"):
            await self.channel.close()
