"""``Broker``: a failover connection, confirmed publishing, consumers, depths and replay.

The connection (``link.Link``) goes to one node of the broker's URL list and, once lost, to the
next; the publishing channel (``confirms``) and every subscription are opened again on it.

``publish`` returns only once the broker confirmed the persistent message; a nack, an unroutable
message (published ``mandatory``) or a lost connection raises ``UnavailableError``
(``unavailable.broker``). ``publish_many`` pipelines confirms: all messages are in flight at
once and the call returns when every one is confirmed; ``publish_each`` does the same and tells
each message's own outcome, so that one nack fails only what it belongs to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    DeliveryMode,
)
from aiormq import spec

from gateway.broker.confirms import Outgoing, PublishingChannel
from gateway.broker.consumer import Received, Subscription
from gateway.broker.failures import BROKER_UNAVAILABLE, broker_errors
from gateway.broker.link import Link
from gateway.broker.messages import (
    H_ATTEMPTS,
    H_ATTEMPTS_SEEN,
    H_DEAD_AT,
    H_DEAD_REASON,
    METHODS,
    DeliveryMessage,
)
from gateway.broker.topology import DEFAULT_PREFIX, DEFAULT_RETRY_DELAYS_S, Topology
from gateway.core.errors import InputError, UnavailableError
from gateway.core.loops import Loops


class Broker:
    """The gateway's RabbitMQ client. Create with ``await Broker.connect(urls, prefix=...)``."""

    def __init__(self, link: Link, topology: Topology, *, publish_timeout_s: float) -> None:
        self._link = link
        self._publishing = PublishingChannel(link)
        self.topology = topology
        self.publish_timeout_s = publish_timeout_s

    @classmethod
    async def connect(
        cls,
        url: str | Sequence[str],
        *,
        prefix: str = DEFAULT_PREFIX,
        methods: Sequence[str] = METHODS,
        retry_delays_s: Sequence[float] = DEFAULT_RETRY_DELAYS_S,
        connect_timeout_s: float = 10.0,
        publish_timeout_s: float = 10.0,
        loops: Loops | None = None,
    ) -> Broker:
        """Connect to the first node of ``url`` (one URL, or a cluster's nodes) that answers,
        failing over to the next when the connection is lost; open the publishing channel."""
        topology = Topology(prefix, tuple(methods), tuple(retry_delays_s))
        urls = (url,) if isinstance(url, str) else tuple(url)
        link = await Link.open(urls, connect_timeout_s=connect_timeout_s, loops=loops)
        broker = cls(link, topology, publish_timeout_s=publish_timeout_s)
        try:
            await broker._publishing.ready("open the publishing channel")
        except UnavailableError:
            await link.aclose()
            raise
        return broker

    @property
    def link(self) -> Link:
        """The connection and which node it reaches (for health, logs and tests)."""
        return self._link

    @property
    def renewals_after_nack(self) -> int:
        """How many times a nack made the publishing channel be replaced."""
        return self._publishing.renewals_after_nack

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._publishing.aclose()
        await self._link.aclose()

    @asynccontextmanager
    async def _scratch_channel(self, action: str) -> AsyncIterator[AbstractChannel]:
        """A short-lived confirming channel: a failed passive declare closes only this one."""
        channel = await self._link.channel(action, confirms=True)
        with broker_errors(action):
            try:
                yield channel
            finally:
                if not channel.is_closed:
                    await channel.close()

    async def declare_topology(self) -> None:
        """Declare exchange, work, retry and dead queues (idempotent)."""
        async with self._scratch_channel("declare the topology") as channel:
            await self.topology.declare(channel)

    async def delete_topology(self) -> None:
        """Delete the exchange and every queue of the prefix, messages included (a demo's
        clean-up, tests): never on a prefix in service."""
        async with self._scratch_channel("delete the topology") as channel:
            await self.topology.delete(channel)

    async def ping(self) -> None:
        """Readiness: the broker answers and our exchange exists; else ``UnavailableError``."""
        async with self._scratch_channel("ping") as channel:
            await channel.get_exchange(self.topology.exchange, ensure=True)

    async def queue_depths(self) -> dict[str, int]:
        """Ready messages per queue of the topology (passive declares)."""
        depths: dict[str, int] = {}
        async with self._scratch_channel("read queue depths") as channel:
            for name in self.topology.queue_names():
                queue = await channel.declare_queue(name, passive=True)
                depths[name] = queue.declaration_result.message_count or 0
        return depths

    async def publish(self, msg: DeliveryMessage) -> None:
        """Publish to the deliveries exchange; returns once the broker confirmed it."""
        [error] = await self.publish_each([msg])
        if error is not None:
            raise error

    async def publish_each(self, msgs: Iterable[DeliveryMessage]) -> list[BaseException | None]:
        """Publish all concurrently (confirms pipelined); each message's error, or None."""
        exchange = self.topology.exchange
        outgoing = [
            Outgoing(
                m.body or b"",
                exchange,
                m.routing_key,
                m.amqp_properties(),
                f"publish {m.delivery_id}",
            )
            for m in msgs
        ]
        return await self._publishing.publish_each(outgoing, timeout_s=self.publish_timeout_s)

    async def publish_many(self, msgs: Iterable[DeliveryMessage]) -> None:
        """Publish all concurrently and wait for every confirm.

        If any fails, raise ``UnavailableError`` naming how many; the others may be queued, so
        the caller republishes the whole batch (deliveries are at-least-once).
        """
        batch = list(msgs)
        failures = [r for r in await self.publish_each(batch) if r is not None]
        if not failures:
            return
        first = failures[0]
        if not isinstance(first, UnavailableError):
            raise first
        raise UnavailableError(
            f"{len(failures)} of {len(batch)} publishes failed; first: {first.message}",
            code=BROKER_UNAVAILABLE,
        ) from first

    async def _publish_to_queue(
        self, body: bytes, properties: spec.Basic.Properties, queue: str, action: str
    ) -> None:
        outgoing = Outgoing(body, "", queue, properties, action)
        [error] = await self._publishing.publish_each([outgoing], timeout_s=self.publish_timeout_s)
        if error is not None:
            raise error

    async def publish_retry(self, msg: DeliveryMessage, delay_s: float) -> float:
        """Park ``msg`` in the retry queue of the smallest delay >= ``delay_s``; return that delay.

        After the queue's TTL the broker moves it back to the method's work queue.
        """
        chosen_s = self.topology.retry_delay_for(delay_s)
        queue = self.topology.retry_queue(msg.method, chosen_s)
        action = f"retry {msg.delivery_id}"
        await self._publish_to_queue(msg.body or b"", msg.amqp_properties(), queue, action)
        return chosen_s

    async def dead_letter(
        self,
        method: str,
        received: Received,
        *,
        reason: str,
        attempts: int,
        attempts_seen: int | None = None,
    ) -> None:
        """Copy a received message, as received, to ``<p>.dead.<method>`` with why and when;
        ``attempts_seen`` (the delivery's count after the dead letter was recorded) replaces
        the message's own, so that a replay of the copy is current."""
        raw = received.raw
        headers = dict(raw.headers or {})
        if attempts_seen is not None:
            headers[H_ATTEMPTS_SEEN] = attempts_seen
        headers[H_DEAD_REASON] = reason
        headers[H_ATTEMPTS] = attempts
        headers[H_DEAD_AT] = datetime.now(UTC).isoformat()
        copy = aio_pika.Message(
            bytes(raw.body),
            headers=headers,
            content_type=raw.content_type,
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=raw.message_id,
            timestamp=raw.timestamp,
        )
        queue = self.topology.dead_queue(method)
        action = f"dead-letter {raw.message_id}"
        await self._publish_to_queue(copy.body, copy.properties, queue, action)

    async def subscribe(self, method: str, *, prefetch: int) -> Subscription:
        """A consumer of ``<p>.q.<method>`` with ``prefetch`` unacked messages at most, on a
        channel of its own; it starts with ``start`` and follows the link's failovers."""
        name = self.topology.work_queue(method)
        return Subscription(self._link, name, prefetch, loops=self._link.loops)

    async def requeue_dead(
        self,
        method: str,
        *,
        delivery_ids: set[str] | None = None,
        attempts_seen: Mapping[str, int] | None = None,
    ) -> int:
        """Move dead letters (all, or those of ``delivery_ids``) back to the work queue.

        Each moves as a fresh message (attempt 1, same delivery_id), confirmed before the dead
        copy is acked; it carries the delivery's count in ``attempts_seen`` (the log's, read by
        the caller) if there, else the dead copy's. Others, and dead letters that cannot be
        parsed, stay dead. Returns how many moved.
        """
        moved = 0
        async with self._scratch_channel(f"requeue dead letters of {method}") as channel:
            dead = await channel.declare_queue(self.topology.dead_queue(method), passive=True)
            held: list[AbstractIncomingMessage] = []  # unacked, so ``get`` moves past them
            while (raw := await dead.get(no_ack=False, fail=False)) is not None:
                fresh = _replayable(raw, delivery_ids, attempts_seen or {})
                if fresh is None:
                    held.append(raw)
                    continue
                await channel.default_exchange.publish(
                    fresh.to_amqp(),
                    self.topology.work_queue(method),
                    mandatory=True,
                    timeout=self.publish_timeout_s,
                )
                await raw.ack()
                moved += 1
            for raw in held:
                await raw.nack(requeue=True)
        return moved


def _replayable(
    raw: AbstractIncomingMessage, wanted: set[str] | None, attempts_seen: Mapping[str, int]
) -> DeliveryMessage | None:
    """The dead letter as a fresh attempt-1 message, or None if it is not to be replayed."""
    if wanted is not None and raw.message_id not in wanted:
        return None
    try:
        msg = DeliveryMessage.from_amqp(raw)
    except InputError:
        return None
    return replace(
        msg, attempt=1, attempts_seen=attempts_seen.get(msg.delivery_id, msg.attempts_seen)
    )
