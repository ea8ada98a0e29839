"""Reports per agency and period: the request, the levels OrganIds encode, and the figures shown.

Every line of a report says what it counts: ``documents`` are documents (as sender: sent; as
recipient: received, one per delivery to it), ``deliveries`` and the states are deliveries (one
document to one recipient), status answers are status packages. Level and province lines are sums
of the agency lines; delivery times are percentiles of the summed histograms (linear within a bin,
as Prometheus' ``histogram_quantile`` does), so they are close, not exact.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import TypeVar

from gateway.console.report_cache import Figures, Role, Totals, today
from gateway.core.errors import InputError
from gateway.edxml.model import StatusCode
from gateway.edxml.validate import ORGAN_ID_STRICT
from gateway.store.tables import REPORT_COUNTS, REPORT_TIME_BINS_S, REPORT_TIME_COLUMNS

MAX_RANGE_DAYS = 10 * 366
COUNTED = REPORT_COUNTS  # the report cache's counted columns, in display order
STATUS_CODES = tuple(s.value for s in StatusCode)
_E = TypeVar("_E", bound=StrEnum)


class Granularity(StrEnum):
    DAY = "day"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class OrganLevel(StrEnum):
    """The level an OrganId ``LLL.KK.JJ.XNN`` encodes: the deepest group that is not zeros."""

    PROVINCE = "province"  # 000.00.00.H56: the level-1 agency itself
    DISTRICT = "district"  # 000.00.15.H56: level 2 (a district, or a department)
    COMMUNE = "commune"  # 000.01.15.H56: level 3
    UNIT = "unit"  # 001.01.15.H56: level 4
    OTHER = "other"  # a tax code or a lenient form: no level encoded


def organ_level(organ: str) -> OrganLevel:
    if not ORGAN_ID_STRICT.fullmatch(organ):
        return OrganLevel.OTHER
    l4, l3, l2, _ = organ.split(".")
    if l4 != "000":
        return OrganLevel.UNIT
    if l3 != "00":
        return OrganLevel.COMMUNE
    if l2 != "00":
        return OrganLevel.DISTRICT
    return OrganLevel.PROVINCE


@dataclass(frozen=True, slots=True)
class ReportRequest:
    role: Role
    granularity: Granularity
    first: date
    last: date  # included
    organ: str | None = None


def _date(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InputError(f"{field}: not a date (YYYY-MM-DD)", code="console.bad_date") from exc


def _enum(kind: type[_E], value: str | None, default: _E, field: str) -> _E:
    if not value:
        return default
    try:
        return kind(value)
    except ValueError as exc:
        raise InputError(f"{field}: unknown value {value!r}", code="console.bad_choice") from exc


def report_request(query: Mapping[str, str], now_day: date | None = None) -> ReportRequest:
    """The report form's fields; by default this year so far, by month, agencies as senders."""
    now_day = now_day or today()
    first = _date(query["from"], "from") if query.get("from") else date(now_day.year, 1, 1)
    last = _date(query["to"], "to") if query.get("to") else now_day
    if last < first:
        raise InputError("to: before from", code="console.bad_range")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise InputError("the range is longer than ten years", code="console.bad_range")
    organ = query.get("organ", "").strip() or None
    return ReportRequest(
        role=_enum(Role, query.get("role"), Role.SENDER, "role"),
        granularity=_enum(Granularity, query.get("granularity"), Granularity.MONTH, "granularity"),
        first=first,
        last=last,
        organ=organ,
    )


def bucket_of(day: str, granularity: Granularity) -> str:
    """``YYYY-MM-DD`` -> its day, ``YYYY-MM``, ``YYYY-Qn`` or ``YYYY``."""
    if granularity is Granularity.DAY:
        return day
    if granularity is Granularity.MONTH:
        return day[:7]
    if granularity is Granularity.QUARTER:
        return f"{day[:4]}-Q{(int(day[5:7]) - 1) // 3 + 1}"
    return day[:4]


def quantile_s(figures: Figures, q: float) -> float | None:
    """The ``q`` quantile of the delivery-time histogram (``inf``: over the last bound)."""
    counts = [figures.get(c, 0) for c in REPORT_TIME_COLUMNS]
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            if i == len(REPORT_TIME_BINS_S):
                return math.inf
            lower = REPORT_TIME_BINS_S[i - 1] if i else 0
            return lower + (REPORT_TIME_BINS_S[i] - lower) * (rank - seen) / n
        seen += n
    return math.inf


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a report: an agency, a level, or the whole province."""

    scope: str  # agency | level | total
    key: str  # the OrganId, the level, or "total"
    name: str
    level: OrganLevel | None
    counts: Mapping[str, int]  # COUNTED -> value
    statuses: Mapping[str, int]  # status code -> status packages
    median_s: float | None
    p95_s: float | None

    def __getitem__(self, name: str) -> int:
        return self.counts.get(name, 0)


def _line(scope: str, key: str, name: str, level: OrganLevel | None, figures: Figures) -> Line:
    return Line(
        scope,
        key,
        name,
        level,
        {c: figures.get(c, 0) for c in COUNTED},
        {code: figures.get(f"s{code}", 0) for code in STATUS_CODES},
        quantile_s(figures, 0.5),
        quantile_s(figures, 0.95),
    )


@dataclass(frozen=True, slots=True)
class Bucket:
    label: str
    documents: int
    delivered: int  # deliveries


@dataclass(frozen=True, slots=True)
class Report:
    request: ReportRequest
    agencies: tuple[Line, ...]  # most documents first
    levels: tuple[Line, ...]  # in OrganLevel order, levels with no agency left out
    total: Line
    buckets: tuple[Bucket, ...]  # every bucket of the range, zeros included
    status_codes: tuple[str, ...]  # the codes some line counts


def build_report(request: ReportRequest, totals: Totals, names: Mapping[str, str]) -> Report:
    agencies = sorted(
        (
            _line("agency", organ, names.get(organ, ""), organ_level(organ), figures)
            for organ, figures in totals.by_organ.items()
        ),
        key=lambda line: (-line["documents"], -line["deliveries"], line.key),
    )
    per_level: dict[OrganLevel, Figures] = {}
    total: Figures = Counter()
    for organ, figures in totals.by_organ.items():
        per_level.setdefault(organ_level(organ), Counter()).update(figures)
        total.update(figures)
    levels = tuple(
        _line("level", level.value, "", level, per_level[level])
        for level in OrganLevel
        if level in per_level
    )
    total_line = _line("total", "total", "", None, total)
    return Report(
        request,
        tuple(agencies),
        levels,
        total_line,
        _buckets(request, totals.by_day),
        tuple(c for c in STATUS_CODES if total_line.statuses[c]),
    )


def _buckets(request: ReportRequest, by_day: Mapping[str, Figures]) -> tuple[Bucket, ...]:
    sums: dict[str, Counter[str]] = {}
    day = request.first
    while day <= request.last:  # every bucket, in order, even empty ones
        sums.setdefault(bucket_of(day.isoformat(), request.granularity), Counter())
        day += timedelta(days=1)
    for key, figures in by_day.items():
        bucket = sums.get(bucket_of(key, request.granularity))
        if bucket is not None:
            bucket.update(figures)
    return tuple(Bucket(label, c["documents"], c["delivered"]) for label, c in sums.items())


def export_rows(report: Report) -> Sequence[Line]:
    """Agencies, then levels, then the province: the rows of an export."""
    return (*report.agencies, *report.levels, report.total)
