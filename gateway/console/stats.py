"""The dashboard's figures from the delivery log: states, hourly throughput, failing destinations.

Every query is bounded by ``documents.received_at`` (indexed) or by the delivery state (indexed
with ``updated_at``), so the dashboard stays cheap on a large log. "Delivered per hour" counts the
deliveries of documents received in the last 48 hours by the hour they were delivered (the join
keeps the scan on the ``received_at`` index; ``delivered_at`` has none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.engine import Engines, transaction
from gateway.store.records import DeliveryState
from gateway.store.tables import deliveries, documents

WINDOW = timedelta(hours=24)
FAILING_STATES = (DeliveryState.DEAD_LETTERED, DeliveryState.FAILED, DeliveryState.RETRYING)
TOP_FAILING = 8
_HOUR_FORMAT = "%Y-%m-%dT%H"


@dataclass(frozen=True, slots=True)
class HourCount:
    """Documents received and deliveries completed in the hour starting at ``hour`` (UTC)."""

    hour: datetime
    received: int
    delivered: int


@dataclass(frozen=True, slots=True)
class FailingDestination:
    recipient: str
    failing: int  # deliveries dead-lettered, failed or retrying now
    dead_lettered: int


@dataclass(frozen=True, slots=True)
class Dashboard:
    since: datetime
    documents: int  # received since ``since``
    states: dict[DeliveryState, int]  # their deliveries by state
    hours: tuple[HourCount, ...]  # oldest first, one per hour, zeros included
    failing: tuple[FailingDestination, ...]


def _hour_of(column: ColumnElement[datetime], dialect: str) -> ColumnElement[str]:
    """``YYYY-MM-DDTHH`` of a UTC timestamp column, computed by the database."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24')
    return func.strftime(_HOUR_FORMAT, column)


def _hour_slots(now: datetime) -> list[datetime]:
    last = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [last - timedelta(hours=h) for h in range(23, -1, -1)]


async def dashboard(engines: Engines, now: datetime | None = None) -> Dashboard:
    """The dashboard's figures for the 24 hours before ``now``."""
    now = now or datetime.now(UTC)
    since = now - WINDOW
    async with transaction(engines.reader) as conn:
        count = await conn.scalar(
            select(func.count()).select_from(documents).where(documents.c.received_at >= since)
        )
        states = await _states(conn, since)
        hours = await _hours(conn, engines.dialect, now)
        failing = await _failing(conn)
    return Dashboard(since, int(count or 0), states, hours, failing)


async def _states(conn: AsyncConnection, since: datetime) -> dict[DeliveryState, int]:
    query = (
        select(deliveries.c.state, func.count())
        .select_from(deliveries.join(documents, documents.c.id == deliveries.c.document))
        .where(documents.c.received_at >= since)
        .group_by(deliveries.c.state)
    )
    counts = {DeliveryState(state): int(n) for state, n in await conn.execute(query)}
    return {state: counts.get(state, 0) for state in DeliveryState}


async def _hours(conn: AsyncConnection, dialect: str, now: datetime) -> tuple[HourCount, ...]:
    slots = _hour_slots(now)
    received_hour = _hour_of(documents.c.received_at, dialect)
    received = await conn.execute(
        select(received_hour, func.count())
        .where(documents.c.received_at >= slots[0])
        .group_by(received_hour)
    )
    delivered_hour = _hour_of(deliveries.c.delivered_at, dialect)
    delivered = await conn.execute(
        select(delivered_hour, func.count())
        .select_from(deliveries.join(documents, documents.c.id == deliveries.c.document))
        .where(documents.c.received_at >= slots[0] - WINDOW, deliveries.c.delivered_at >= slots[0])
        .group_by(delivered_hour)
    )
    got_in = {hour: int(n) for hour, n in received}
    got_out = {hour: int(n) for hour, n in delivered}
    return tuple(
        HourCount(slot, got_in.get(key, 0), got_out.get(key, 0))
        for slot in slots
        for key in [slot.strftime(_HOUR_FORMAT)]
    )


async def _failing(conn: AsyncConnection) -> tuple[FailingDestination, ...]:
    dead = func.sum(case((deliveries.c.state == DeliveryState.DEAD_LETTERED.value, 1), else_=0))
    query = (
        select(deliveries.c.recipient, func.count(), dead)
        .where(deliveries.c.state.in_([s.value for s in FAILING_STATES]))
        .group_by(deliveries.c.recipient)
        .order_by(func.count().desc(), deliveries.c.recipient)
        .limit(TOP_FAILING)
    )
    rows: Sequence[tuple[str, int, int | None]] = [tuple(r) for r in await conn.execute(query)]
    return tuple(FailingDestination(r, int(n), int(d or 0)) for r, n, d in rows)
