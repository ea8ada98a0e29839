"""``Broker``: one robust AMQP connection, confirmed publishing, consumers, depths and replay.

``publish`` returns only once the broker confirmed the persistent message; a nack, an unroutable
message (published ``mandatory``) or a lost connection raises ``UnavailableError``
(``unavailable.broker``). ``publish_many`` pipelines confirms: all messages are in flight at
once and the call returns when every one is confirmed; ``publish_each`` does the same and tells
each message's own outcome, so that one nack fails only what it belongs to.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
    DeliveryMode,
)

from gateway.broker.consumer import Received, Subscription
from gateway.broker.failures import BROKER_UNAVAILABLE, broker_errors
from gateway.broker.messages import (
    H_ATTEMPTS,
    H_DEAD_AT,
    H_DEAD_REASON,
    METHODS,
    DeliveryMessage,
)
from gateway.broker.topology import DEFAULT_PREFIX, DEFAULT_RETRY_DELAYS_S, Topology
from gateway.core.errors import InputError, UnavailableError


class Broker:
    """The gateway's RabbitMQ client. Create with ``await Broker.connect(url, prefix=...)``."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        channel: AbstractChannel,
        topology: Topology,
        *,
        publish_timeout_s: float,
    ) -> None:
        self._connection = connection
        self._channel = channel
        self.topology = topology
        self.publish_timeout_s = publish_timeout_s
        self._deliveries: AbstractExchange | None = None

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        methods: Sequence[str] = METHODS,
        retry_delays_s: Sequence[float] = DEFAULT_RETRY_DELAYS_S,
        connect_timeout_s: float = 10.0,
        publish_timeout_s: float = 10.0,
    ) -> Broker:
        """Connect (robust: reconnects by itself) and open a publisher-confirms channel."""
        topology = Topology(prefix, tuple(methods), tuple(retry_delays_s))
        with broker_errors(f"connect to {_safe_url(url)}"):
            connection = await aio_pika.connect_robust(url, timeout=connect_timeout_s)
        try:
            with broker_errors("open the publishing channel"):
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        except UnavailableError:
            await connection.close()
            raise
        return cls(connection, channel, topology, publish_timeout_s=publish_timeout_s)

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
        if not self._connection.is_closed:
            await self._connection.close()

    @asynccontextmanager
    async def _scratch_channel(self, action: str) -> AsyncIterator[AbstractChannel]:
        """A short-lived confirming channel: a failed passive declare closes only this one."""
        if self._connection.is_closed:
            raise UnavailableError(f"{action}: the connection is closed", code=BROKER_UNAVAILABLE)
        with broker_errors(action):
            channel = await self._open_channel(action, confirms=True)
            try:
                yield channel
            finally:
                if not channel.is_closed:
                    await channel.close()

    async def _open_channel(self, action: str, *, confirms: bool) -> AbstractChannel:
        try:
            return await self._connection.channel(
                publisher_confirms=confirms, on_return_raises=confirms
            )
        except RuntimeError as exc:  # aio-pika / aiormq between reconnects: "... closed"
            raise UnavailableError(
                f"{action}: the connection is down ({exc})", code=BROKER_UNAVAILABLE
            ) from exc

    async def declare_topology(self) -> None:
        """Declare exchange, work, retry and dead queues (idempotent)."""
        async with self._scratch_channel("declare the topology") as channel:
            await self.topology.declare(channel)

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

    async def _exchange(self) -> AbstractExchange:
        if self._deliveries is None:
            name = self.topology.exchange
            self._deliveries = await self._channel.get_exchange(name, ensure=False)
        return self._deliveries

    async def publish(self, msg: DeliveryMessage) -> None:
        """Publish to the deliveries exchange; returns once the broker confirmed it."""
        with broker_errors(f"publish {msg.delivery_id}"):
            exchange = await self._exchange()
            await exchange.publish(
                msg.to_amqp(),
                msg.routing_key,
                mandatory=True,
                timeout=self.publish_timeout_s,
            )

    async def publish_each(self, msgs: Iterable[DeliveryMessage]) -> list[BaseException | None]:
        """Publish all concurrently (confirms pipelined); each message's error, or None."""
        results = await asyncio.gather(*(self.publish(m) for m in msgs), return_exceptions=True)
        return [r if isinstance(r, BaseException) else None for r in results]

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

    async def _publish_to_queue(self, message: aio_pika.Message, queue: str, action: str) -> None:
        with broker_errors(action):
            await self._channel.default_exchange.publish(
                message, queue, mandatory=True, timeout=self.publish_timeout_s
            )

    async def publish_retry(self, msg: DeliveryMessage, delay_s: float) -> float:
        """Park ``msg`` in the retry queue of the smallest delay >= ``delay_s``; return that delay.

        After the queue's TTL the broker moves it back to the method's work queue.
        """
        chosen_s = self.topology.retry_delay_for(delay_s)
        queue = self.topology.retry_queue(msg.method, chosen_s)
        await self._publish_to_queue(msg.to_amqp(), queue, f"retry {msg.delivery_id}")
        return chosen_s

    async def dead_letter(
        self, method: str, received: Received, *, reason: str, attempts: int
    ) -> None:
        """Copy a received message, as received, to ``<p>.dead.<method>`` with why and when."""
        raw = received.raw
        headers = dict(raw.headers or {})
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
        await self._publish_to_queue(copy, queue, f"dead-letter {raw.message_id}")

    async def subscribe(self, method: str, *, prefetch: int) -> Subscription:
        """A consumer channel on ``<p>.q.<method>`` with ``prefetch`` unacked messages at most."""
        name = self.topology.work_queue(method)
        if self._connection.is_closed:
            raise UnavailableError(
                f"subscribe to {name}: the connection is closed", code=BROKER_UNAVAILABLE
            )
        with broker_errors(f"subscribe to {name}"):
            channel = await self._open_channel(f"subscribe to {name}", confirms=False)
            await channel.set_qos(prefetch_count=prefetch)
            queue = await channel.get_queue(name, ensure=True)
        return Subscription(channel, queue)

    async def requeue_dead(self, method: str, *, delivery_ids: set[str] | None = None) -> int:
        """Move dead letters (all, or those of ``delivery_ids``) back to the work queue.

        Each moves as a fresh message (attempt 1, same delivery_id), confirmed before the dead
        copy is acked. Others, and dead letters that cannot be parsed, stay dead. Returns how
        many moved.
        """
        moved = 0
        async with self._scratch_channel(f"requeue dead letters of {method}") as channel:
            dead = await channel.declare_queue(self.topology.dead_queue(method), passive=True)
            held: list[AbstractIncomingMessage] = []  # unacked, so ``get`` moves past them
            while (raw := await dead.get(no_ack=False, fail=False)) is not None:
                fresh = _replayable(raw, delivery_ids)
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


def _replayable(raw: AbstractIncomingMessage, wanted: set[str] | None) -> DeliveryMessage | None:
    """The dead letter as a fresh attempt-1 message, or None if it is not to be replayed."""
    if wanted is not None and raw.message_id not in wanted:
        return None
    try:
        msg = DeliveryMessage.from_amqp(raw)
    except InputError:
        return None
    return replace(msg, attempt=1)


def _safe_url(url: str) -> str:
    """The URL without its password, for error messages."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    userinfo, _, host = rest.rpartition("@")
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"
