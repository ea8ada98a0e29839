"""The confirming channel that publishes go through: renewed after a nack or a lost connection.

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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiormq.exceptions as amqp
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange

from gateway.broker.failures import broker_errors
from gateway.broker.link import Link

log = structlog.get_logger(__name__)


@dataclass(eq=False, slots=True)
class Confirming:
    """One confirming channel, the publishes now waiting on it, and its exchanges."""

    channel: AbstractChannel
    in_flight: int = 0
    retired: bool = False
    _exchanges: dict[str, AbstractExchange] = field(default_factory=dict)

    async def exchange(self, name: str) -> AbstractExchange:
        """The exchange ``name`` (``""``: the default exchange) on this channel, not declared."""
        if name == "":
            return self.channel.default_exchange
        found = self._exchanges.get(name)
        if found is None:
            found = self._exchanges[name] = await self.channel.get_exchange(name, ensure=False)
        return found


def is_nack(exc: BaseException) -> bool:
    """The broker answered ``basic.nack`` (a return, for an unroutable message, is not one)."""
    return isinstance(exc, amqp.DeliveryError) and not isinstance(exc, amqp.PublishError)


class PublishingChannel:
    """Hands out the current confirming channel of a ``Link``, opening one when needed."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self._current: Confirming | None = None
        self._opening = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self.renewals_after_nack = 0

    async def _acquire(self, action: str) -> Confirming:
        current = self._current
        if current is None or current.channel.is_closed:
            async with self._opening:
                current = self._current
                if current is None or current.channel.is_closed:
                    channel = await self._link.channel(action, confirms=True)
                    current = self._current = Confirming(channel)
        current.in_flight += 1
        return current

    @asynccontextmanager
    async def publishing(self, action: str) -> AsyncIterator[Confirming]:
        """The channel to publish on; broker failures inside become ``UnavailableError``, and a
        nack retires the channel (later publishes get a new one)."""
        slot = await self._acquire(action)
        try:
            with broker_errors(action):
                try:
                    yield slot
                except amqp.DeliveryError as exc:
                    if is_nack(exc):
                        self._retire(slot, action)
                    raise
        finally:
            slot.in_flight -= 1
            if slot.retired and slot.in_flight == 0:
                self._close_soon(slot.channel)

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
