"""Mailbox delivery: the package stays in the gateway's store for the recipient to pull."""

from __future__ import annotations

from typing import Protocol

from adapters.base import Adapter, DeliveryOutcome, OutboundDelivery


class MailboxSink(Protocol):
    """Where mailbox items go: the worker wiring implements it with the delivery log, which
    already keeps the package by its sha256, so only the delivery and its recipient are put."""

    async def put(self, delivery_id: str, recipient: str) -> None: ...


class MailboxAdapter(Adapter):
    """Puts each delivery into the recipient's mailbox; failures of the sink propagate as-is."""

    def __init__(self, sink: MailboxSink) -> None:
        self._sink = sink

    async def deliver(self, delivery: OutboundDelivery) -> DeliveryOutcome:
        await self._sink.put(delivery.delivery_id, delivery.organ_id)
        return DeliveryOutcome(True, f"in the mailbox of {delivery.organ_id}")

    async def aclose(self) -> None:
        """Nothing to release: the sink belongs to the caller."""
