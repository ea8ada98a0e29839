"""What the worker loop asks of a handler, and what one delivery attempt can come to.

A ``BatchHandler`` works in three steps, two of them once per batch of concurrent messages::

    check(messages)   one call per batch: which need no delivery (e.g. delivered already) -> an
                      ``Attempt``; the others -> ``Ready`` (with what delivering needs, e.g. the
                      claim-checked bytes)
    deliver(ready)    one call per message, concurrently: returns a DELIVERED ``Attempt``, or
                      raises ``Retry`` / ``Permanent``
    commit(attempts)  one call per batch: records every attempt at once; per attempt, the
                      attempt as recorded: the verdict to settle the message by (DELIVERED may
                      come back ALREADY_DELIVERED when someone else recorded it first, a
                      failure SETTLED when another copy's was recorded first), its message
                      carrying the delivery's attempt count after the commit (what a retry or
                      dead-letter copy carries)

A plain ``async def handler(message)`` (returns: delivered; raises ``Retry``/``Permanent``) is
wrapped as a ``BatchHandler`` that checks and records nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from gateway.broker import DeliveryMessage


class Retry(Exception):  # noqa: N818 - a control-flow signal named by the worker contract
    """The delivery failed for now; try again after ``defer_s`` (None: the next delay)."""

    def __init__(
        self,
        reason: str = "retry requested",
        *,
        defer_s: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.defer_s = defer_s
        self.code = code  # the error's stable code, shown to participants


class Permanent(Exception):  # noqa: N818 - a control-flow signal named by the worker contract
    """The delivery can never succeed; dead-letter it with ``reason``."""

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code  # the error's stable code, shown to participants


class Verdict(StrEnum):
    """How a message is settled."""

    DELIVERED = "delivered"  # the recipient has it: ack
    ALREADY_DELIVERED = "already_delivered"  # delivered before (not sent again): ack
    SETTLED = "settled"  # a stale copy (or one of a dead-lettered or failed delivery): ack
    RETRY = "retry"  # a copy to a retry queue, then ack
    DEAD = "dead"  # a copy to the dead letters with the reason, then ack


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one message: its verdict and the detail (or reason) to record."""

    message: DeliveryMessage
    verdict: Verdict
    detail: str
    defer_s: float | None = None  # RETRY: the delay asked for (None: the schedule's)
    code: str | None = None  # RETRY, DEAD: the error's stable code (``detail`` is for admins)


@dataclass(frozen=True, slots=True)
class Ready:
    """A message to deliver, with its package when the check fetched it (claim check)."""

    message: DeliveryMessage
    package: bytes | None = None


Handler = Callable[[DeliveryMessage], Awaitable[None]]


@runtime_checkable
class BatchHandler(Protocol):
    """The worker loop's handler; see the module docstring."""

    async def check(self, messages: Sequence[DeliveryMessage]) -> Sequence[Attempt | Ready]: ...

    async def deliver(self, ready: Ready) -> Attempt: ...

    async def commit(self, attempts: Sequence[Attempt]) -> Sequence[Attempt]: ...


class PlainHandler:
    """A ``BatchHandler`` around one async function of a message; nothing to check or record."""

    def __init__(self, handle: Handler) -> None:
        self._handle = handle

    async def check(self, messages: Sequence[DeliveryMessage]) -> Sequence[Attempt | Ready]:
        return [Ready(message) for message in messages]

    async def deliver(self, ready: Ready) -> Attempt:
        await self._handle(ready.message)
        return Attempt(ready.message, Verdict.DELIVERED, "handled")

    async def commit(self, attempts: Sequence[Attempt]) -> Sequence[Attempt]:
        return attempts
