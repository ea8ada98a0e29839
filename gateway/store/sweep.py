"""The sweep's side of the delivery log: overdue deliveries, each claimed by one sweep only.

A delivery is *due* when its broker message should have reached a worker: a ``queued`` one at its
last change (``updated_at``: the broker confirmed its message then), a ``retrying`` one when its
retry delay is over. That delay is the ``retry_in_s`` its last ``retry_scheduled`` event records
(the worker's schedule, or the recipient's ``Retry-After``); a sweep since (a ``republished``
event) put a message straight on the work queue, so it is due at once. An event without
``retry_in_s`` (written before it existed) counts as the schedule's longest delay. A delivery is
*overdue* ``grace_s`` after it was due.

No column holds the due time (no migration): ``overdue`` narrows the rows in SQL by the shortest
delay each could have had (the schedule's for its attempt count; the ``(state, updated_at)``
index serves the range), then checks each against its last events (the ``(delivery, id)`` index).

``claim`` is a conditional update per delivery, each in a transaction of its own (``WHERE``
its state, ``updated_at`` and ``attempts`` are as read), that sets ``updated_at`` to now: of two
sweeps that read the same row, on SQLite or PostgreSQL, only the first moves it and the second's
update finds nothing (PostgreSQL re-reads the row once the first commits). The claimed delivery
is then due again only after another grace, and its ``attempts`` is the one the sweep read,
which its message carries (``attempts_seen``).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.chain import append_events
from gateway.store.engine import Engines, transaction
from gateway.store.queries import check_page, delivery_items, event_values, utc_now
from gateway.store.records import DeliveryItem, DeliveryRecord, DeliveryState, EventKind
from gateway.store.tables import deliveries, events

SWEPT = "swept"  # the outcome of the ``republished`` event a sweep writes
SWEPT_STATES = (DeliveryState.QUEUED, DeliveryState.RETRYING)
_RETRY_KINDS = (EventKind.RETRY_SCHEDULED.value, EventKind.REPUBLISHED.value)


@dataclass(frozen=True, slots=True)
class Overdue:
    """A delivery whose message is overdue: since when it was due, with its document."""

    item: DeliveryItem
    due_at: datetime


class SweepLog:
    """Finds overdue deliveries, claims them, and records that they were published again."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    async def overdue(
        self,
        *,
        methods: Collection[str],
        grace_s: float,
        delays_s: Sequence[float],
        limit: int = 200,
        now: datetime | None = None,
    ) -> list[Overdue]:
        """Up to ``limit`` deliveries of ``methods`` overdue by ``grace_s``, longest first.

        ``delays_s``: the workers' retry schedule (``broker.retry_delays_s``).
        """
        check_page(limit)
        if not methods:
            return []
        now = now or utc_now()
        cutoff = now - timedelta(seconds=grace_s)
        found: list[Overdue] = []
        after: tuple[datetime, str] | None = None
        async with transaction(self._engines.reader) as conn:
            for _ in range(10):  # pages: long Retry-After delays must not hide the others
                query = (
                    select(deliveries)
                    .where(deliveries.c.method.in_(sorted(methods)), _candidates(cutoff, delays_s))
                    .order_by(deliveries.c.updated_at, deliveries.c.id)
                    .limit(limit)
                )
                if after is not None:
                    at, last_id = after
                    query = query.where(
                        or_(
                            deliveries.c.updated_at > at,
                            and_(deliveries.c.updated_at == at, deliveries.c.id > last_id),
                        )
                    )
                rows = (await conn.execute(query)).all()
                if not rows:
                    break
                items = await delivery_items(conn, rows)
                waits = await _retry_waits(conn, [i.delivery for i in items], delays_s)
                for item in items:
                    due_at = item.delivery.updated_at + timedelta(
                        seconds=waits.get(item.delivery.id, 0.0)
                    )
                    if due_at <= cutoff:
                        found.append(Overdue(item, due_at))
                last = items[-1].delivery
                after = (last.updated_at, last.id)
                if len(found) >= limit or len(rows) < limit:
                    break
        found.sort(key=lambda o: (o.due_at, o.item.delivery.id))
        return found[:limit]

    async def claim(self, seen: Sequence[DeliveryRecord]) -> list[DeliveryRecord]:
        """Claim each delivery as it was read (same state, ``updated_at`` and ``attempts``),
        moving its ``updated_at`` to now; the ones claimed (by this call, not another sweep).

        One short transaction per delivery: a claim never holds two row locks, so it cannot
        deadlock with a worker's batch commit (overdue deliveries are few)."""
        claimed: list[DeliveryRecord] = []
        for record in seen:
            async with transaction(self._engines.writer) as conn:
                moved = (
                    await conn.execute(
                        update(deliveries)
                        .where(
                            deliveries.c.id == record.id,
                            deliveries.c.state == record.state.value,
                            deliveries.c.updated_at == record.updated_at,
                            deliveries.c.attempts == record.attempts,
                        )
                        .values(updated_at=utc_now())
                        .returning(deliveries.c.id)
                    )
                ).first()
            if moved is not None:
                claimed.append(record)
        return claimed

    async def record_swept(self, swept: Sequence[Overdue], *, actor: str = "worker") -> None:
        """The trail entry of each delivery published again (a ``republished`` event, outcome
        ``swept``), appended to the chain last in one transaction."""
        if not swept:
            return
        now = utc_now()
        rows = [
            event_values(
                document=o.item.delivery.document,
                delivery=o.item.delivery.id,
                at=now,
                kind=EventKind.REPUBLISHED,
                outcome=SWEPT,
                detail={
                    "state_before": o.item.delivery.state.value,
                    "attempt": o.item.delivery.attempts + 1,
                    "due_at": o.due_at.isoformat(),
                },
                actor=actor,
            )
            for o in swept
        ]
        async with transaction(self._engines.writer) as conn:
            await conn.run_sync(append_events, rows)  # last: see ``store.chain``


def _candidates(cutoff: datetime, delays_s: Sequence[float]) -> ColumnElement[bool]:
    """Queued since ``cutoff``; retrying since ``cutoff`` minus the shortest delay its attempt
    count allows by the schedule (a sweep or a ``Retry-After`` is checked on its events)."""
    queued = and_(
        deliveries.c.state == DeliveryState.QUEUED.value, deliveries.c.updated_at <= cutoff
    )
    if not delays_s:
        return queued
    attempts, at = deliveries.c.attempts, deliveries.c.updated_at

    def before(delay_s: float) -> datetime:
        return cutoff - timedelta(seconds=delay_s)

    by_attempts: list[ColumnElement[bool]] = [
        and_(attempts == n, at <= before(delays_s[n - 1])) for n in range(1, len(delays_s))
    ]
    by_attempts.append(and_(attempts >= len(delays_s), at <= before(delays_s[-1])))
    by_attempts.append(and_(attempts < 1, at <= before(delays_s[0])))
    retrying = and_(
        deliveries.c.state == DeliveryState.RETRYING.value,
        at <= before(min(delays_s)),
        or_(*by_attempts),
    )
    return or_(queued, retrying)


async def _retry_waits(
    conn: AsyncConnection, records: Sequence[DeliveryRecord], delays_s: Sequence[float]
) -> dict[str, float]:
    """Per retrying delivery, how long after ``updated_at`` its message is due."""
    ids = sorted(r.id for r in records if r.state is DeliveryState.RETRYING)
    if not ids:
        return {}
    last = (
        select(func.max(events.c.id).label("id"))
        .where(events.c.delivery.in_(ids), events.c.kind.in_(_RETRY_KINDS))
        .group_by(events.c.delivery)
        .subquery()
    )
    rows = await conn.execute(
        select(events.c.delivery, events.c.kind, events.c.detail).join(
            last, last.c.id == events.c.id
        )
    )
    longest_s = max(delays_s, default=0.0)
    waits = dict.fromkeys(ids, longest_s)  # no event at all: the longest delay
    for row in rows:
        waits[row.delivery] = _wait_of(row.kind, row.detail, longest_s)
    return waits


def _wait_of(kind: str, detail: str, longest_s: float) -> float:
    if kind == EventKind.REPUBLISHED.value:
        return 0.0
    value: Any = json.loads(detail).get("retry_in_s")
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return longest_s
