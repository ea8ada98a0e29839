"""Records to broker messages: one confirmed message per delivery, then ``queued`` in the log.

The one place that turns delivery records into broker messages. Intake publishes what it has just
recorded (with the body, or by claim check above the threshold); the outbox relay, the console's
replay and anything else that republishes pass no body and the worker fetches the package from the
log by its SHA-256 (claim check).

Intake's publishes are batched (``publish_accepted``): the requests that publish in the same turn
of the event loop (those a group commit has just answered together) share one pipelined publish,
and each is told only its own messages' outcome: a nack or a timeout fails that request (503; its
deliveries stay ``accepted`` for the outbox relay), never its neighbours. The confirmed deliveries
are marked ``queued`` by the delivery log's next group commit, not by a transaction of their own
(``gateway.store.group_commit`` states the outbox rule that covers a mark lost in a crash). The
relay and the console's replay use ``publish``, which marks in its own transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.broker import Broker, DeliveryMessage
from gateway.broker.failures import BROKER_UNAVAILABLE
from gateway.core.errors import UnavailableError
from gateway.edxml.formats import PackageFormat
from gateway.store import DeliveryLog
from gateway.store.records import DeliveryRecord, DocumentRecord


@dataclass(slots=True)
class _Waiting:
    """One request's messages in the next batch, and where it hears their outcome."""

    messages: list[DeliveryMessage]
    done: asyncio.Future[None] = field(repr=False)


class Dispatcher:
    """Publishes deliveries over one broker and records their publication in one delivery log."""

    def __init__(
        self, *, broker: Broker, delivery_log: DeliveryLog, claim_check_threshold_bytes: int
    ) -> None:
        self._broker = broker
        self._log = delivery_log
        self._claim_check_bytes = claim_check_threshold_bytes
        self._waiting: list[_Waiting] = []
        self._sending: set[asyncio.Task[None]] = set()
        self.batches = 0  # pipelined publishes made for intake (for tests and figures)

    def messages(
        self, document: DocumentRecord, deliveries: Sequence[DeliveryRecord], body: bytes | None
    ) -> list[DeliveryMessage]:
        """The broker message of each delivery; ``body`` None or too large sends a claim check.
        Each carries its record's ``attempts`` (``attempts_seen``): the worker drops a copy
        whose count the log has moved past."""
        by_reference = body is None or len(body) > self._claim_check_bytes
        return [
            DeliveryMessage(
                delivery_id=d.id,
                document_pk=document.id,
                recipient=d.recipient,
                method=d.method.value,
                body=None if by_reference else body,
                claim_check_sha256=document.package_sha256 if by_reference else None,
                content_type=PackageFormat(document.format).media_type,
                attempts_seen=d.attempts,
            )
            for d in deliveries
        ]

    async def publish(
        self,
        document: DocumentRecord,
        deliveries: Sequence[DeliveryRecord],
        body: bytes | None,
        *,
        republished: bool = False,
        actor: str = "gateway",
    ) -> None:
        """Publish one confirmed message per delivery, then mark them queued in the log."""
        await self._broker.publish_many(self.messages(document, deliveries, body))
        await self._log.mark_published(
            [d.id for d in deliveries], republished=republished, actor=actor
        )

    async def publish_accepted(
        self, document: DocumentRecord, deliveries: Sequence[DeliveryRecord], body: bytes
    ) -> None:
        """Intake: publish in this loop turn's batch; ``UnavailableError`` if any of this
        request's messages was not confirmed. Confirmed ones are marked queued later, in batch."""
        if not deliveries:
            return
        loop = asyncio.get_running_loop()
        waiting = _Waiting(self.messages(document, deliveries, body), loop.create_future())
        if not self._waiting:
            loop.call_soon(self._send_batch)
        self._waiting.append(waiting)
        await waiting.done

    def _send_batch(self) -> None:
        batch, self._waiting = self._waiting, []
        task = asyncio.get_running_loop().create_task(self._send(batch), name="publish-batch")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Waiting]) -> None:
        messages = [m for w in batch for m in w.messages]
        self.batches += 1
        try:
            errors = await self._broker.publish_each(messages)
        except BaseException as exc:  # every request must hear of it, whatever it is
            for waiting in batch:
                if not waiting.done.done():
                    waiting.done.set_exception(exc)
            raise
        self._log.note_published(
            [m.delivery_id for m, e in zip(messages, errors, strict=True) if e is None]
        )
        outcomes = iter(errors)
        for waiting in batch:
            failed = [e for e in (next(outcomes) for _ in waiting.messages) if e is not None]
            if waiting.done.done():
                continue
            if failed:
                waiting.done.set_exception(_unconfirmed(failed, len(waiting.messages)))
            else:
                waiting.done.set_result(None)


def _unconfirmed(failures: list[BaseException], of: int) -> BaseException:
    """One request's publish error, as ``Broker.publish_many`` would have raised it."""
    first = failures[0]
    if not isinstance(first, UnavailableError):
        return first
    error = UnavailableError(
        f"{len(failures)} of {of} publishes failed; first: {first.message}", code=BROKER_UNAVAILABLE
    )
    error.__cause__ = first
    return error
