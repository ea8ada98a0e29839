"""Records to broker messages: one confirmed message per delivery, then ``queued`` in the log.

The one place that turns delivery records into broker messages. Intake publishes what it has just
recorded (with the body, or by claim check above the threshold); the outbox relay, the console's
replay and anything else that republishes pass no body and the worker fetches the package from the
log by its SHA-256 (claim check).
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.broker import Broker, DeliveryMessage
from gateway.edxml.formats import PackageFormat
from gateway.store import DeliveryLog
from gateway.store.records import DeliveryRecord, DocumentRecord


class Dispatcher:
    """Publishes deliveries over one broker and records their publication in one delivery log."""

    def __init__(
        self, *, broker: Broker, delivery_log: DeliveryLog, claim_check_threshold_bytes: int
    ) -> None:
        self._broker = broker
        self._log = delivery_log
        self._claim_check_bytes = claim_check_threshold_bytes

    def messages(
        self, document: DocumentRecord, deliveries: Sequence[DeliveryRecord], body: bytes | None
    ) -> list[DeliveryMessage]:
        """The broker message of each delivery; ``body`` None or too large sends a claim check."""
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
        await self._log.mark_published([d.id for d in deliveries], republished=republished,
                                       actor=actor)
