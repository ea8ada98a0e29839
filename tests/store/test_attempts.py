"""Batch reads and writes of delivery attempts (the worker's side of the log), on both stores."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gateway.core.errors import InputError
from gateway.store import DeliveryLog, DeliveryState, EventKind, NewDocument
from gateway.store.attempts import AttemptReport, AttemptResult, StoredDelivery

PACKAGE = b"<edXML:edXMLEnvelope>batch</edXML:edXMLEnvelope>"
ROUTES = [
    ("000.00.01.H56", "push"),
    ("000.00.02.H56", "push"),
    ("000.00.03.H56", "push"),
    ("0101234567", "mailbox"),
]

MakeDocument = Callable[..., NewDocument]


async def test_one_batch_moves_each_delivery_and_ignores_the_delivered_ones(
    log: DeliveryLog, make_document: MakeDocument
) -> None:
    intake = await log.record_intake(make_document(), PACKAGE, ROUTES)
    ok, busy, gone, done = (d.id for d in intake.deliveries)
    await log.mark_delivered(done, detail="delivered before")

    results = await log.record_attempts(
        [
            AttemptReport(ok, DeliveryState.DELIVERED, "HTTP 200"),
            AttemptReport(busy, DeliveryState.RETRYING, "HTTP 503", "delivery.http_status: 503"),
            AttemptReport(gone, DeliveryState.DEAD_LETTERED, "HTTP 410", "delivery.refused: 410"),
            AttemptReport(done, DeliveryState.DELIVERED, "HTTP 200 again"),
            AttemptReport(ok, DeliveryState.DELIVERED, "a second copy in the same batch"),
            AttemptReport("no-such-delivery", DeliveryState.DELIVERED, "HTTP 200"),
        ]
    )

    assert results == [
        AttemptResult.APPLIED,
        AttemptResult.APPLIED,
        AttemptResult.APPLIED,
        AttemptResult.ALREADY_DELIVERED,
        AttemptResult.ALREADY_DELIVERED,
        AttemptResult.UNKNOWN,
    ]
    view = await log.get_document(intake.document.id)
    assert view is not None
    now = {d.id: (d.state, d.attempts, d.last_error) for d in view.deliveries}
    assert now == {
        ok: (DeliveryState.DELIVERED, 1, None),
        busy: (DeliveryState.RETRYING, 1, "delivery.http_status: 503"),
        gone: (DeliveryState.DEAD_LETTERED, 1, "delivery.refused: 410"),
        done: (DeliveryState.DELIVERED, 1, None),
    }
    assert next(d for d in view.deliveries if d.id == ok).delivered_at is not None
    trail = [
        (e.delivery, e.kind, e.outcome, e.detail.get("ignored"))
        for e in view.events
        if e.actor == "worker"
    ]
    assert sorted(trail, key=str) == sorted(
        [
            (done, EventKind.DELIVERED, "delivered", None),  # mark_delivered, before the batch
            (ok, EventKind.DELIVERED, "delivered", None),
            (busy, EventKind.RETRY_SCHEDULED, "retry", None),
            (gone, EventKind.DEAD_LETTERED, "dead_lettered", None),
            (done, EventKind.ATTEMPT, "delivered", "already delivered"),
            (ok, EventKind.ATTEMPT, "delivered", "already delivered"),
        ],
        key=str,
    )
    [delivered] = [e for e in view.events if e.delivery == ok and e.kind is EventKind.DELIVERED]
    assert delivered.detail == {"message": "HTTP 200", "error": None, "attempt": 1}


async def test_a_late_failure_report_does_not_undo_a_delivery(
    log: DeliveryLog, make_document: MakeDocument
) -> None:
    intake = await log.record_intake(make_document(), PACKAGE, ROUTES[:1])
    [push] = intake.deliveries
    first = await log.record_attempts(
        [
            AttemptReport(push.id, DeliveryState.RETRYING, "timeout", "delivery.timeout"),
            AttemptReport(push.id, DeliveryState.DELIVERED, "HTTP 200"),
        ]
    )
    late = await log.record_attempts(
        [AttemptReport(push.id, DeliveryState.DEAD_LETTERED, "late", "delivery.refused")]
    )

    assert first == [AttemptResult.ALREADY_DELIVERED, AttemptResult.APPLIED]  # success first
    assert late == [AttemptResult.ALREADY_DELIVERED]
    record = await log.get_delivery(push.id)
    assert record is not None
    assert (record.state, record.attempts) == (DeliveryState.DELIVERED, 1)


async def test_batch_reads_answer_for_every_id_at_once(
    log: DeliveryLog, make_document: MakeDocument
) -> None:
    intake = await log.record_intake(make_document(), PACKAGE, ROUTES[:2])
    one, two = (d.id for d in intake.deliveries)
    await log.mark_delivered(two, detail="HTTP 200")

    assert await log.delivery_states([one, two, "no-such-delivery", one]) == {
        one: DeliveryState.ACCEPTED,
        two: DeliveryState.DELIVERED,
    }
    sha = intake.document.package_sha256
    assert await log.packages([sha, "0" * 64]) == {sha: PACKAGE}
    assert (
        await log.delivery_states([]),
        await log.packages([]),
        await log.record_attempts([]),
    ) == ({}, {}, [])


async def test_a_batch_check_reads_states_and_only_the_packages_still_to_deliver(
    log: DeliveryLog, make_document: MakeDocument
) -> None:
    first = await log.record_intake(make_document(), PACKAGE, ROUTES[:1])
    second = await log.record_intake(make_document(), PACKAGE + b" 2", ROUTES[:1])
    (pending,), (done,) = first.deliveries, second.deliveries
    await log.mark_delivered(done.id, detail="HTTP 200")
    claim_checks = {
        pending.id: first.document.package_sha256,
        done.id: second.document.package_sha256,  # delivered: its bytes are not read
        "no-such-delivery": "0" * 64,
    }

    states, packages = await log.check_batch(
        [pending.id, done.id, "no-such-delivery"], claim_checks
    )

    assert states == {
        pending.id: StoredDelivery(DeliveryState.ACCEPTED, 0),
        done.id: StoredDelivery(DeliveryState.DELIVERED, 1),
    }
    assert packages == {first.document.package_sha256: PACKAGE}
    assert await log.check_batch([done.id], {done.id: second.document.package_sha256}) == (
        {done.id: StoredDelivery(DeliveryState.DELIVERED, 1)},
        {},
    )
    assert await log.check_batch([], {}) == ({}, {})


async def test_a_batch_check_without_claim_checks_reads_the_same_states_and_counts(
    log: DeliveryLog, make_document: MakeDocument
) -> None:
    """The small-package case: one statement (on SQLite outside a transaction)."""
    intake = await log.record_intake(make_document(), PACKAGE, ROUTES)
    ok, busy, gone, done = (d.id for d in intake.deliveries)
    await log.mark_delivered(done, detail="HTTP 200")
    await log.record_attempts(
        [
            AttemptReport(busy, DeliveryState.RETRYING, "HTTP 503", attempts_seen=0),
            AttemptReport(gone, DeliveryState.DEAD_LETTERED, "HTTP 410", attempts_seen=0),
        ]
    )

    states, packages = await log.check_batch([gone, ok, busy, done, "no-such", ok], {})

    assert states == {
        ok: StoredDelivery(DeliveryState.ACCEPTED, 0),
        busy: StoredDelivery(DeliveryState.RETRYING, 1),
        gone: StoredDelivery(DeliveryState.DEAD_LETTERED, 1),
        done: StoredDelivery(DeliveryState.DELIVERED, 1),
    }
    assert packages == {}
    assert await log.check_batch(["no-such"], {}) == ({}, {})


def test_an_attempt_leaves_a_delivery_delivered_retrying_or_dead_lettered() -> None:
    with pytest.raises(InputError):
        AttemptReport("d", DeliveryState.ACCEPTED, "no")
    with pytest.raises(InputError):
        AttemptReport("d", DeliveryState.QUEUED, "no")


async def test_of_two_failed_copies_that_saw_one_count_only_the_first_counts(
    log: DeliveryLog, make_document: MakeDocument
) -> None:
    """A failure applies only at the attempt count its message saw: a second copy of the same
    delivery (a held retry beside a swept one) is stale, in the same batch or a later one."""
    intake = await log.record_intake(make_document(), PACKAGE, ROUTES[:1])
    [push] = intake.deliveries

    def failed(state: DeliveryState, seen: int) -> AttemptReport:
        return AttemptReport(push.id, state, "HTTP 503", "HTTP 503", "http.503", attempts_seen=seen)

    twins = await log.record_attempts(
        [failed(DeliveryState.RETRYING, 0), failed(DeliveryState.RETRYING, 0)]
    )
    late = await log.record_attempts([failed(DeliveryState.DEAD_LETTERED, 0)])
    current = await log.record_attempts([failed(DeliveryState.RETRYING, 1)])
    success = await log.record_attempts(  # a success counts whatever its copy saw
        [AttemptReport(push.id, DeliveryState.DELIVERED, "HTTP 200", attempts_seen=0)]
    )

    assert twins == [AttemptResult.APPLIED, AttemptResult.STALE]
    assert late == [AttemptResult.STALE]  # not dead-lettered by a stale copy
    assert current == success == [AttemptResult.APPLIED]
    view = await log.get_document(intake.document.id)
    assert view is not None
    [record] = view.deliveries
    assert (record.state, record.attempts) == (DeliveryState.DELIVERED, 3)
    trail = [
        (e.kind, e.outcome, e.detail.get("attempt"), e.detail.get("ignored"))
        for e in view.events
        if e.actor == "worker"
    ]
    assert trail == [
        (EventKind.RETRY_SCHEDULED, "retry", 1, None),
        (EventKind.ATTEMPT, "retry", None, "stale copy"),
        (EventKind.ATTEMPT, "dead_lettered", None, "stale copy"),
        (EventKind.RETRY_SCHEDULED, "retry", 2, None),
        (EventKind.DELIVERED, "delivered", 3, None),
    ]


async def test_two_workers_failing_copies_of_one_delivery_at_once_count_one_attempt(
    store_url: str, log: DeliveryLog, make_document: MakeDocument
) -> None:
    """Two processes (two pools) commit a failure of the same delivery, seen at the same count,
    at the same time: one counts, the other is stale, whichever commits first."""
    other = await DeliveryLog.open(store_url)
    try:
        intake = await log.record_intake(make_document(), PACKAGE, ROUTES[:1])
        [push] = intake.deliveries
        for seen in range(5):
            report = AttemptReport(
                push.id, DeliveryState.RETRYING, "timeout", "timeout", "x", attempts_seen=seen
            )
            outcomes = await asyncio.gather(
                log.record_attempts([report]), other.record_attempts([report])
            )
            assert sorted(r for [r] in outcomes) == [AttemptResult.APPLIED, AttemptResult.STALE]
        record = await log.get_delivery(push.id)
        assert record is not None
        assert (record.state, record.attempts) == (DeliveryState.RETRYING, 5)
    finally:
        await other.aclose()
