"""Mailbox adapter with an in-memory sink."""

from __future__ import annotations

import pytest

from adapters.base import DeliveryOutcome, OutboundDelivery, TransientDeliveryError
from adapters.mailbox import MailboxAdapter


class MemorySink:
    def __init__(self, *, fail: bool = False) -> None:
        self.items: list[tuple[str, str]] = []
        self.fail = fail

    async def put(self, delivery_id: str, recipient: str) -> None:
        if self.fail:
            raise TransientDeliveryError("store down", code="unavailable.store")
        self.items.append((delivery_id, recipient))


def delivery(delivery_id: str, organ_id: str) -> OutboundDelivery:
    return OutboundDelivery(delivery_id, "doc-1", organ_id, b"<edXMLEnvelope/>", "application/xml")


async def test_each_delivery_lands_in_its_recipients_mailbox() -> None:
    sink = MemorySink()
    async with MailboxAdapter(sink) as adapter:
        first = await adapter.deliver(delivery("d-1", "0101234567"))
        await adapter.deliver(delivery("d-2", "000.00.04.H56"))
    assert first == DeliveryOutcome(True, "in the mailbox of 0101234567", None)
    assert sink.items == [("d-1", "0101234567"), ("d-2", "000.00.04.H56")]


async def test_sink_failures_reach_the_worker_unchanged() -> None:
    adapter = MailboxAdapter(MemorySink(fail=True))
    with pytest.raises(TransientDeliveryError) as info:
        await adapter.deliver(delivery("d-1", "0101234567"))
    assert info.value.retryable
    assert info.value.code == "unavailable.store"
