"""The adapter protocol, the records an adapter receives and returns, and its two failure kinds.

An adapter delivers one package to one recipient. It returns a ``DeliveryOutcome`` when the
recipient has the package, and raises otherwise:

- ``TransientDeliveryError`` (``retryable``): try again later, after ``retry_after_s`` if set;
- ``PermanentDeliveryError``: retrying the same delivery cannot succeed.

Why not raise ``gateway.delivery.worker.Retry`` / ``Permanent`` directly: those are the
broker loop's control-flow signals, and importing them would tie every adapter (and every
receiver that only wants ``verify_push_signature``) to the worker and aio-pika. These two errors
belong to the one error tree in ``gateway.core.errors`` instead, so the worker's handler maps any
adapter failure with one rule and no knowledge of adapters::

    except LgspError as exc:
        if exc.retryable:
            raise Retry(str(exc), defer_s=getattr(exc, "retry_after_s", None)) from exc
        raise Permanent(str(exc)) from exc
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Protocol, Self

from gateway.core.errors import ServiceError, UnavailableError

STREAM_BODY_BYTES = 1024 * 1024  # above this, aiohttp wants a stream, not raw bytes


def request_body(data: bytes) -> bytes | io.BytesIO:
    """An HTTP request body for aiohttp: large ones streamed from a buffer, not written at once."""
    return io.BytesIO(data) if len(data) > STREAM_BODY_BYTES else data


@dataclass(frozen=True, slots=True)
class OutboundDelivery:
    """One attempt to hand one package to one recipient.

    ``document_id`` is the gateway's id of the document record; ``package`` is exactly the bytes
    the sender submitted; ``url`` is the recipient's delivery URL, if its method has one.
    """

    delivery_id: str
    document_id: str
    organ_id: str
    package: bytes = field(repr=False)
    content_type: str
    url: str | None = None
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What a successful ``deliver`` reports, for the delivery log."""

    delivered: bool
    detail: str
    status_code: int | None = None


class TransientDeliveryError(UnavailableError):
    """The recipient could not take the package now; the same delivery may succeed later."""

    default_code = "delivery.unavailable"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.status_code = status_code
        self.retry_after_s = retry_after_s


class PermanentDeliveryError(ServiceError):
    """The recipient refused the package; repeating the same delivery will not help."""

    default_code = "delivery.refused"

    def __init__(
        self, message: str, *, code: str | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.status_code = status_code


class Adapter(Protocol):
    """One way of delivering. Use as ``async with adapter: ...`` so that it is closed."""

    async def deliver(self, delivery: OutboundDelivery) -> DeliveryOutcome:
        """Deliver, or raise ``TransientDeliveryError`` / ``PermanentDeliveryError``."""
        ...

    async def aclose(self) -> None:
        """Release connections and other resources; the adapter is not used afterwards."""
        ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
