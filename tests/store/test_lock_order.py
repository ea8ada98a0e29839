"""Writers lock delivery rows in one order: worker commits and intake "published" marks never
deadlock on PostgreSQL, however their batches overlap."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable

import pytest

from gateway.core.errors import UnavailableError
from gateway.store import DeliveryLog, DeliveryState, NewDocument
from gateway.store.attempts import AttemptReport
from gateway.store.engine import transaction
from gateway.store.intake_batch import write_batch

PACKAGE = b"<edXML:edXMLEnvelope>locks</edXML:edXMLEnvelope>"
ROUTES = [(f"000.00.{n:02d}.H56", "push") for n in range(1, 9)]
ROUNDS = 25
DOCUMENTS_PER_ROUND = 6

MakeDocument = Callable[..., NewDocument]


async def _published(log: DeliveryLog, ids: list[str]) -> None:
    """The intake's published marks, as the group committer writes them (no intake with them)."""
    async with transaction(log.engines.writer) as conn:
        await conn.run_sync(write_batch, [], ids, lambda: str(uuid.uuid4()))


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
async def test_worker_commits_and_published_marks_over_the_same_rows_never_deadlock(
    store_url: str, make_document: MakeDocument
) -> None:
    """Two processes' worth of engines: a worker batch (successes and failures, in the order its
    messages arrived) and a gateway's published marks (in the order the broker confirmed them)
    over the same deliveries, at the same time, many times over. Every transaction commits."""
    worker_log = await DeliveryLog.open(store_url)
    gateway_log = await DeliveryLog.open(store_url)
    shuffled = random.Random(8)
    deadlocks: list[str] = []
    try:
        for _ in range(ROUNDS):
            intakes = await asyncio.gather(
                *(
                    gateway_log.record_intake(make_document(), PACKAGE, ROUTES)
                    for _ in range(DOCUMENTS_PER_ROUND)
                )
            )
            ids = [d.id for intake in intakes for d in intake.deliveries]
            reports = [
                AttemptReport(i, DeliveryState.DELIVERED, "HTTP 200")
                if shuffled.random() < 0.7
                else AttemptReport(i, DeliveryState.RETRYING, "HTTP 503", "HTTP 503", "http.503")
                for i in shuffled.sample(ids, len(ids))
            ]
            marks = shuffled.sample(ids, len(ids))
            outcomes = await asyncio.gather(
                worker_log.record_attempts(reports),
                _published(gateway_log, marks),
                _published(gateway_log, marks[::-1]),
                worker_log.record_attempts(reports[::-1]),
                return_exceptions=True,
            )
            for outcome in outcomes:
                if isinstance(outcome, UnavailableError) and "deadlock" in outcome.message:
                    deadlocks.append(outcome.message)
                elif isinstance(outcome, BaseException):
                    raise outcome
        assert deadlocks == []
    finally:
        await worker_log.aclose()
        await gateway_log.aclose()
