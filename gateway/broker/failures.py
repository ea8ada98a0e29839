"""The broker package's one boundary: aio-pika / aiormq failures become ``UnavailableError``.

Nacked and unroutable publishes, lost connections and channels, and timeouts all mean the same
thing to a caller: the message is not known to be safely queued, try again later
(``unavailable.broker``). A queue or exchange declared with other arguments than ours is a
configuration problem instead (``config.broker_topology``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import aiormq.exceptions as amqp

from gateway.core.errors import ConfigError, UnavailableError

BROKER_UNAVAILABLE = "unavailable.broker"
TOPOLOGY_MISMATCH = "config.broker_topology"

_FAILURES: tuple[type[BaseException], ...] = (
    amqp.AMQPError,
    amqp.ChannelInvalidStateError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)

_TRANSLATED: tuple[type[BaseException], ...] = (amqp.ChannelPreconditionFailed, *_FAILURES)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, amqp.PublishError):
        return f"unroutable (returned by the broker): {exc}"
    if isinstance(exc, amqp.DeliveryError):
        return f"not confirmed by the broker: {exc}"
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def broker_error(action: str, exc: BaseException) -> BaseException:
    """What ``broker_errors`` raises for ``exc`` (``exc`` itself when it is no broker failure),
    for outcomes collected rather than raised (a pipelined publish's)."""
    error: BaseException
    if isinstance(exc, amqp.ChannelPreconditionFailed):
        error = ConfigError(
            f"{action}: the broker refused our topology ({exc}); a queue or exchange exists "
            "with other arguments",
            code=TOPOLOGY_MISMATCH,
        )
    elif isinstance(exc, _FAILURES):
        error = UnavailableError(f"{action}: {_describe(exc)}", code=BROKER_UNAVAILABLE)
    else:
        return exc
    error.__cause__ = exc
    return error


@contextmanager
def broker_errors(action: str) -> Iterator[None]:
    """Run one broker operation, translating dependency exceptions raised inside it."""
    try:
        yield
    except _TRANSLATED as exc:
        raise broker_error(action, exc) from exc
