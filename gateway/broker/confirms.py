"""Confirmed publishing on one channel at a time: pipelined, and renewed after a nack.

Messages go out through aiormq's ``basic_publish`` (the AMQP layer aio-pika itself uses) with
properties built by ``DeliveryMessage.amqp_properties``: no aio-pika message per publish, and no
wait for the socket buffer before the confirm. ``publish_each`` puts a whole batch in flight and
gives each message its own outcome: a nack, a return (unroutable, published ``mandatory``) or a
timeout fails that message only.

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
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiormq
import aiormq.exceptions as amqp
import structlog
from aio_pika.abc import AbstractChannel
from aiormq import spec

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
            outcomes = await asyncio.gather(
                *(_publish(slot.channel, item, timeout_s) for item in items),
                return_exceptions=True,
            )
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


async def _publish(channel: AbstractChannel, item: Outgoing, timeout_s: float) -> None:
    """One publish through aiormq (aio-pika's own AMQP layer) without building an aio-pika
    message; returns once the broker confirmed it. ``wait=False``: the caller waits for the
    confirm, not for the frames to leave the socket buffer first."""
    underlay = await channel.get_underlay_channel()
    # ``wait`` is aiormq.Channel's own; another implementation of aiormq's ABC may not take it
    extra = {"wait": False} if isinstance(underlay, aiormq.Channel) else {}
    await underlay.basic_publish(
        item.body,
        exchange=item.exchange,
        routing_key=item.routing_key,
        properties=item.properties,
        mandatory=True,
        timeout=timeout_s,
        **extra,
    )
