"""The RabbitMQ topology: names, arguments and an idempotent declaration of exchange and queues.

    <p>.deliveries                  durable topic exchange, routing key ``<method>.<OrganId>``
    <p>.q.<method>                  quorum work queue, bound ``<method>.#`` (OrganIds contain dots)
    <p>.retry.<method>.<delay>s     quorum TTL queue per delay; expired messages dead-letter back
                                    to ``<p>.q.<method>`` through the default exchange
    <p>.dead.<method>               quorum dead-letter queue; messages keep x-lgsp-dead-* headers

Retry queues are quorum queues too: RabbitMQ 3.10 added message TTL for quorum queues and
at-least-once dead-lettering (``x-dead-letter-strategy``, which needs ``x-overflow:
reject-publish`` and the ``stream_queue`` feature flag), so an expiring retry is not lost if the
broker fails while moving it back. Declaring with the same arguments twice is a no-op; declaring
an existing queue with different arguments is refused by the broker (``config.broker_topology``).
"""

from __future__ import annotations

from dataclasses import dataclass

from aio_pika.abc import AbstractChannel, ExchangeType
from pamqp.common import Arguments, FieldTable

from gateway.broker.messages import METHODS
from gateway.core.errors import ConfigError

DEFAULT_PREFIX = "lgsp"
DEFAULT_RETRY_DELAYS_S: tuple[float, ...] = (5, 30, 120, 600, 3600)
_QUORUM: FieldTable = {"x-queue-type": "quorum"}


def delay_label(delay_s: float) -> str:
    """``5`` -> ``5s``, ``0.2`` -> ``0.2s``: the suffix of a retry queue's name."""
    return f"{delay_s:g}s"


@dataclass(frozen=True, slots=True)
class Topology:
    """Every name and argument of the gateway's exchange and queues, for one prefix."""

    prefix: str = DEFAULT_PREFIX
    methods: tuple[str, ...] = METHODS
    retry_delays_s: tuple[float, ...] = DEFAULT_RETRY_DELAYS_S

    def __post_init__(self) -> None:
        if not self.prefix or any(c in self.prefix for c in "#* "):
            raise ConfigError(f"invalid broker prefix {self.prefix!r}", code="config.invalid")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ConfigError(f"unknown delivery methods {unknown}", code="config.invalid")
        delays = self.retry_delays_s
        if not delays or any(d <= 0 for d in delays) or list(delays) != sorted(set(delays)):
            raise ConfigError(
                f"retry delays must be positive and increasing, got {delays}",
                code="config.invalid",
            )

    @property
    def exchange(self) -> str:
        return f"{self.prefix}.deliveries"

    def work_queue(self, method: str) -> str:
        return f"{self.prefix}.q.{method}"

    def retry_queue(self, method: str, delay_s: float) -> str:
        return f"{self.prefix}.retry.{method}.{delay_label(delay_s)}"

    def dead_queue(self, method: str) -> str:
        return f"{self.prefix}.dead.{method}"

    def binding_key(self, method: str) -> str:
        return f"{method}.#"

    def retry_delay_for(self, wanted_s: float) -> float:
        """The smallest declared delay >= ``wanted_s`` (the longest one if none is long enough)."""
        return next((d for d in self.retry_delays_s if d >= wanted_s), self.retry_delays_s[-1])

    def retry_arguments(self, method: str, delay_s: float) -> Arguments:
        return {
            **_QUORUM,
            "x-message-ttl": round(delay_s * 1000),
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.work_queue(method),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def queue_names(self) -> tuple[str, ...]:
        """Every queue of the topology: work, retry and dead queues of each method."""
        names: list[str] = []
        for method in self.methods:
            names.append(self.work_queue(method))
            names.extend(self.retry_queue(method, d) for d in self.retry_delays_s)
            names.append(self.dead_queue(method))
        return tuple(names)

    async def delete(self, channel: AbstractChannel) -> None:
        """Delete every queue and the exchange (a decommissioned prefix; test teardown).
        Messages still queued are lost: never call it on a prefix in service."""
        for name in self.queue_names():
            await channel.queue_delete(name)
        await channel.exchange_delete(self.exchange)

    async def declare(self, channel: AbstractChannel) -> None:
        """Declare exchange, queues and bindings; safe to call at every start-up."""
        exchange = await channel.declare_exchange(self.exchange, ExchangeType.TOPIC, durable=True)
        for method in self.methods:
            work = await channel.declare_queue(
                self.work_queue(method), durable=True, arguments=dict(_QUORUM)
            )
            await work.bind(exchange, routing_key=self.binding_key(method))
            for delay_s in self.retry_delays_s:
                await channel.declare_queue(
                    self.retry_queue(method, delay_s),
                    durable=True,
                    arguments=self.retry_arguments(method, delay_s),
                )
            await channel.declare_queue(
                self.dead_queue(method), durable=True, arguments=dict(_QUORUM)
            )
