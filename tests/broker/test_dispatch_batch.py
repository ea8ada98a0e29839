"""Intake's batched publish on the real broker and store: one pipelined publish, own outcomes."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime

from gateway.broker import Broker
from gateway.core.errors import UnavailableError
from gateway.dispatch.publishing import Dispatcher
from gateway.edxml.formats import PackageFormat
from gateway.edxml.model import PackageKind
from gateway.store import DeliveryLog, DeliveryState, IntakeResult, NewDocument


def _new(n: int) -> NewDocument:
    return NewDocument(
        dedup_key=f"k-{n}-{secrets.token_hex(4)}",
        kind=PackageKind.DOCUMENT,
        sender="000.00.00.H56",
        document_id=f"DOC-{n}",
        format=PackageFormat.XML,
        signer_fingerprint="ab" * 32,
        signer_subject="CN=test",
        algorithm="rsa-sha256",
        caller="000.00.00.H56",
        received_at=datetime.now(UTC),
    )


async def test_a_nack_in_a_batch_fails_only_its_own_request(
    broker: Broker, log: DeliveryLog
) -> None:
    """The broker fixture binds only 'push': a 'mailbox' message is returned unroutable, the
    way ``test_publish`` provokes a refused publish; its request alone hears of it."""
    dispatcher = Dispatcher(broker=broker, delivery_log=log, claim_check_threshold_bytes=256 * 1024)
    routes = {n: [("000.00.01.H56", "mailbox" if n == 3 else "push")] for n in range(8)}
    bodies = {n: f"<edXML n='{n}'/>".encode() for n in routes}
    recorded: list[IntakeResult] = await asyncio.gather(
        *(log.record_intake(_new(n), bodies[n], routes[n]) for n in routes)
    )
    batches = dispatcher.batches

    outcomes = await asyncio.gather(
        *(
            dispatcher.publish_accepted(r.document, r.deliveries, bodies[n])
            for n, r in zip(routes, recorded, strict=True)
        ),
        return_exceptions=True,
    )

    assert dispatcher.batches == batches + 1, "one pipelined publish for the whole batch"
    failed = [n for n, o in zip(routes, outcomes, strict=True) if o is not None]
    assert failed == [3]
    error = outcomes[3]
    assert isinstance(error, UnavailableError)
    assert error.code == "unavailable.broker"
    assert "1 of 1 publishes failed" in error.message
    depths = await broker.queue_depths()
    assert depths[broker.topology.work_queue("push")] == 7

    # the confirmed are marked queued by the next group commit; the refused one waits for the
    # outbox relay, still accepted
    await log.record_intake(_new(99), b"<edXML n='99'/>", [("000.00.01.H56", "push")])
    states = {
        n: (await log.get_delivery(r.deliveries[0].id)).state  # type: ignore[union-attr]
        for n, r in zip(routes, recorded, strict=True)
    }
    assert states == {n: DeliveryState.ACCEPTED if n == 3 else DeliveryState.QUEUED for n in routes}
    pending = await log.pending_publication(older_than_s=0, limit=10)
    assert {p.delivery.id for p in pending} >= {recorded[3].deliveries[0].id}
    assert recorded[0].deliveries[0].id not in {p.delivery.id for p in pending}
