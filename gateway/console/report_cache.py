"""The reports' figures per day, agency and role, aggregated in SQL and cached for closed days.

A figure belongs to the day (Vietnam's time) its document was received. For the agency as
**sender**: the documents it sent (by business type), the status packages it sent (by code), and
the deliveries of its documents by state with their delivery time. For the agency as
**recipient**: the documents delivered to it (one per delivery), the status packages it received
(by code), and the same delivery figures. Delivery time is ``delivered_at - received_at`` of a
delivered document, kept as a histogram (``REPORT_TIME_BINS_S``) so days, agencies and levels add.

Closed days are kept in ``report_days``, so a year's report sums at most 366 rows per agency
instead of scanning the log. A cached day goes stale when one of its deliveries changes state
(every change sets ``deliveries.updated_at``, indexed with ``state``): each report first finds the
days changed since they were computed and computes them again. ``computed_at`` is written
``STALE_MARGIN`` early, so a change committed by a slow transaction while the day was being
computed is still seen as newer. Today (and a day closed less than the margin ago) is computed
live and never cached.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

import structlog
from sqlalchemy import (
    ColumnElement,
    RowMapping,
    and_,
    case,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.console.i18n import DISPLAY_TZ
from gateway.core.errors import ConflictError
from gateway.store import DeliveryState
from gateway.store.engine import Engines, transaction
from gateway.store.tables import (
    REPORT_METRICS,
    REPORT_TIME_BINS_S,
    REPORT_TIME_COLUMNS,
    deliveries,
    documents,
    report_days,
)

log = structlog.get_logger(__name__)

STALE_MARGIN = timedelta(minutes=10)
COMPUTE_CHUNK_DAYS = 31
REFRESH_DAYS = 400  # a year's report, and the start of the year before
MARKER = ""
_BUSINESS_TYPE = {None: "new", "0": "new", "1": "revoked", "2": "updated", "3": "replaced"}
_STATE_METRIC = {
    DeliveryState.DELIVERED.value: "delivered",
    DeliveryState.FAILED.value: "failed",
    DeliveryState.DEAD_LETTERED.value: "dead_lettered",
}  # accepted, queued and retrying are "pending"

Figures = Counter[str]  # metric -> value; missing metrics are 0


class Role(StrEnum):
    """Which side of the exchange a report looks at an agency from."""

    SENDER = "sender"
    RECIPIENT = "recipient"


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums over a range of days: per agency, and per day for all agencies together."""

    by_organ: dict[str, Figures]
    by_day: dict[str, Figures]


def day_start(day: date) -> datetime:
    """Midnight starting ``day`` in Vietnam's time."""
    return datetime.combine(day, time(0), DISPLAY_TZ)


def today(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(DISPLAY_TZ).date()


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _day_of(column: ColumnElement[datetime], dialect: str) -> ColumnElement[str]:
    """``YYYY-MM-DD`` of a UTC timestamp in Vietnam's time (UTC+7, no daylight saving)."""
    if dialect == "postgresql":
        local = func.timezone("UTC", column) + text("interval '7 hours'")
        return func.to_char(local, "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column, "+7 hours")


def _seconds_between(
    later: ColumnElement[datetime], earlier: ColumnElement[datetime], dialect: str
) -> ColumnElement[float]:
    if dialect == "postgresql":
        seconds: ColumnElement[float] = func.extract("epoch", later - earlier)  # type: ignore[assignment]
        return seconds
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _time_bin(seconds: ColumnElement[float]) -> ColumnElement[int]:
    """The histogram bin of a delivery time (-1: not delivered)."""
    whens = [(seconds <= bound, i) for i, bound in enumerate(REPORT_TIME_BINS_S)]
    return case((seconds.is_(None), -1), *whens, else_=len(REPORT_TIME_BINS_S))


async def compute_days(
    conn: AsyncConnection, dialect: str, first: date, last: date
) -> dict[tuple[str, str, str], Figures]:
    """``(role, day, organ) -> figures`` for the documents received from ``first`` to ``last``."""
    since, until = day_start(first), day_start(last + timedelta(days=1))
    out: dict[tuple[str, str, str], Figures] = {}

    def add(role: Role, day: str, organ: str) -> Figures:
        return out.setdefault((role.value, day, organ), Counter())

    doc_day = _day_of(documents.c.received_at, dialect)
    sent = (
        select(
            doc_day,
            documents.c.sender,
            documents.c.kind,
            documents.c.business_doc_type,
            documents.c.status_code,
            func.count(),
        )
        .where(documents.c.received_at >= since, documents.c.received_at < until)
        .group_by(
            doc_day,
            documents.c.sender,
            documents.c.kind,
            documents.c.business_doc_type,
            documents.c.status_code,
        )
    )
    for day, sender, kind, btype, code, n in await conn.execute(sent):
        figures = add(Role.SENDER, day, sender)
        if kind == "status":
            figures[f"s{code}"] += n
        else:
            figures["documents"] += n
            figures[_BUSINESS_TYPE.get(btype, "new")] += n
    seconds = case(
        (
            deliveries.c.state == DeliveryState.DELIVERED.value,
            _seconds_between(deliveries.c.delivered_at, documents.c.received_at, dialect),
        ),
        else_=None,
    )
    time_bin = _time_bin(seconds)
    columns = (
        doc_day,
        documents.c.sender,
        deliveries.c.recipient,
        documents.c.kind,
        documents.c.business_doc_type,
        documents.c.status_code,
        deliveries.c.state,
        time_bin,
    )
    delivered = (
        select(*columns, func.count())
        .select_from(documents.join(deliveries, deliveries.c.document == documents.c.id))
        .where(documents.c.received_at >= since, documents.c.received_at < until)
        .group_by(*columns)
    )
    for day, sender, recipient, kind, btype, code, state, bin_, n in await conn.execute(delivered):
        if kind == "status":
            add(Role.RECIPIENT, day, recipient)[f"s{code}"] += n
            continue
        received = add(Role.RECIPIENT, day, recipient)
        received["documents"] += n
        received[_BUSINESS_TYPE.get(btype, "new")] += n
        for figures in (add(Role.SENDER, day, sender), received):
            figures["deliveries"] += n
            figures[_STATE_METRIC.get(state, "pending")] += n
            if bin_ is not None and bin_ >= 0:
                figures[REPORT_TIME_COLUMNS[bin_]] += n
    return out


_ROLES = (MARKER, *(r.value for r in Role))  # the ``role`` of every ``report_days`` row


def _sums() -> list[ColumnElement[int]]:
    return [func.coalesce(func.sum(report_days.c[m]), 0).label(m) for m in REPORT_METRICS]


def _figures(row: RowMapping) -> Figures:
    return Counter({m: int(row[m]) for m in REPORT_METRICS if row[m]})


class ReportCache:
    """Report figures from ``report_days`` (closed days, refreshed) and the log (recent days)."""

    def __init__(self, engines: Callable[[], Engines]) -> None:
        self._engines_of = engines  # looked up when first used (the log opens at start-up)

    @property
    def _engines(self) -> Engines:
        return self._engines_of()

    async def totals(
        self,
        role: Role,
        first: date,
        last: date,
        *,
        organ: str | None = None,
        now: datetime | None = None,
    ) -> Totals:
        """Sums for the days ``first`` to ``last`` (both included), one agency or all."""
        now = now or datetime.now(UTC)
        last_closed = today(now - STALE_MARGIN) - timedelta(days=1)
        cached_last = min(last, last_closed)
        by_organ: dict[str, Figures] = {}
        by_day: dict[str, Figures] = {}
        if first <= cached_last:
            await self.refresh(first, cached_last, now=now)
            await self._read(role, first, cached_last, organ, by_organ=by_organ, by_day=by_day)
        live_first = max(first, cached_last + timedelta(days=1))
        if live_first <= last:
            async with transaction(self._engines.reader) as conn:
                live = await compute_days(conn, self._engines.dialect, live_first, last)
            for (row_role, day, row_organ), figures in live.items():
                if row_role == role.value and organ in (None, row_organ):
                    by_organ.setdefault(row_organ, Counter()).update(figures)
                    by_day.setdefault(day, Counter()).update(figures)
        return Totals(by_organ, by_day)

    async def _read(
        self,
        role: Role,
        first: date,
        last: date,
        organ: str | None,
        *,
        by_organ: dict[str, Figures],
        by_day: dict[str, Figures],
    ) -> None:
        where = [
            report_days.c.role == role.value,
            report_days.c.day >= first.isoformat(),
            report_days.c.day <= last.isoformat(),
        ]
        if organ is not None:
            where.append(report_days.c.organ == organ)
        per_organ = (
            select(report_days.c.organ, *_sums()).where(*where).group_by(report_days.c.organ)
        )
        per_day = (
            select(
                report_days.c.day,
                *(
                    func.sum(report_days.c[m]).label(m)
                    for m in ("documents", "deliveries", "delivered")
                ),
            )
            .where(*where)
            .group_by(report_days.c.day)
        )
        async with transaction(self._engines.reader) as conn:
            for row in await conn.execute(per_organ):
                by_organ[row.organ] = _figures(row._mapping)
            for row in await conn.execute(per_day):
                by_day[row.day] = Counter(
                    {k: int(v or 0) for k, v in row._mapping.items() if k != "day"}
                )

    async def refresh(self, first: date, last: date, *, now: datetime | None = None) -> int:
        """Compute the days of ``first..last`` never computed or changed since; how many."""
        computed_at = (now or datetime.now(UTC)) - STALE_MARGIN
        wanted = {d.isoformat() for d in _days(first, last)}
        async with transaction(self._engines.reader) as conn:
            marked = await conn.execute(
                select(report_days.c.day, report_days.c.computed_at).where(
                    report_days.c.role == MARKER,
                    report_days.c.day >= first.isoformat(),
                    report_days.c.day <= last.isoformat(),
                )
            )
            marks: dict[str, datetime] = {day: at for day, at in marked}  # noqa: C416 (rows)
            stale = await self._changed_days(conn, first, last, min(marks.values(), default=None))
        todo = sorted((wanted - marks.keys()) | (stale & marks.keys()))
        for run in _runs([date.fromisoformat(d) for d in todo]):
            await self._compute_and_store(run[0], run[-1], computed_at)
        if marks:  # no other change since: the next refresh looks for changes from now on
            async with transaction(self._engines.writer) as conn:
                await conn.execute(
                    update(report_days)
                    .where(
                        report_days.c.role == MARKER,
                        report_days.c.day >= first.isoformat(),
                        report_days.c.day <= last.isoformat(),
                        report_days.c.computed_at < computed_at,
                    )
                    .values(computed_at=computed_at)
                )
        return len(todo)

    async def _changed_days(
        self, conn: AsyncConnection, first: date, last: date, since: datetime | None
    ) -> set[str]:
        if since is None:
            return set()
        day = _day_of(deliveries.c.received_at, self._engines.dialect)
        query = (
            select(day)
            .distinct()
            .where(
                deliveries.c.state.in_([s.value for s in DeliveryState]),  # the (state, updated_at)
                deliveries.c.updated_at >= since,  # index serves this
                deliveries.c.received_at >= day_start(first),
                deliveries.c.received_at < day_start(last + timedelta(days=1)),
            )
        )
        return {d for (d,) in await conn.execute(query)}

    async def _compute_and_store(self, first: date, last: date, computed_at: datetime) -> None:
        async with transaction(self._engines.reader) as conn:
            figures = await compute_days(conn, self._engines.dialect, first, last)
        days = [d.isoformat() for d in _days(first, last)]
        rows = [
            {
                "role": role,
                "day": day,
                "organ": organ,
                "computed_at": computed_at,
                **{m: values.get(m, 0) for m in REPORT_METRICS},
            }
            for (role, day, organ), values in figures.items()
        ]
        rows += [
            {
                "role": MARKER,
                "day": day,
                "organ": MARKER,
                "computed_at": computed_at,
                **dict.fromkeys(REPORT_METRICS, 0),
            }
            for day in days
        ]
        try:
            async with transaction(self._engines.writer) as conn:
                await conn.execute(
                    delete(report_days).where(
                        # every role a row can have, named: the primary key (role, day, organ)
                        # then serves the days' range (by day alone SQLite scans the table)
                        report_days.c.role.in_(_ROLES),
                        and_(report_days.c.day >= days[0], report_days.c.day <= days[-1]),
                    )
                )
                for start in range(0, len(rows), 1000):
                    await conn.execute(insert(report_days), rows[start : start + 1000])
        except ConflictError:  # another gateway process stored the same days meanwhile
            log.info("report_days_computed_elsewhere", first=days[0], last=days[-1])

    async def refresh_recent(self, days: int = REFRESH_DAYS) -> int:
        """Keep the last ``days`` closed days computed (the console's background loop)."""
        last = today(datetime.now(UTC) - STALE_MARGIN) - timedelta(days=1)
        return await self.refresh(last - timedelta(days=days - 1), last)

    async def forget(self) -> None:
        """Drop every cached day (the next report computes them again)."""
        async with transaction(self._engines.writer) as conn:
            await conn.execute(delete(report_days))


def _runs(days: Iterable[date]) -> list[list[date]]:
    """Consecutive days grouped, each run at most ``COMPUTE_CHUNK_DAYS`` long."""
    runs: list[list[date]] = []
    for day in days:
        if runs and day - runs[-1][-1] == timedelta(days=1) and len(runs[-1]) < COMPUTE_CHUNK_DAYS:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs
