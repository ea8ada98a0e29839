"""Reports from a real delivery log (SQLite and PostgreSQL): per agency, role, level and period;
the cache of closed days and how a later change reaches it; the request, levels and percentiles."""

from __future__ import annotations

import math
import secrets
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select, update

from gateway.console.i18n import DISPLAY_TZ, Translator
from gateway.console.report_cache import STALE_MARGIN, ReportCache, Role, today
from gateway.console.report_export import to_csv
from gateway.console.reports import (
    Granularity,
    OrganLevel,
    ReportRequest,
    bucket_of,
    build_report,
    organ_level,
    quantile_s,
    report_request,
)
from gateway.core.errors import InputError
from gateway.edxml.formats import PackageFormat
from gateway.edxml.model import BusinessDocType, PackageKind, StatusCode
from gateway.store import DeliveryLog, DeliveryState, NewDocument
from gateway.store.tables import deliveries, report_days

S, X, Y = "000.00.04.H56", "000.00.15.H56", "000.01.15.H56"


def _noon(day: date) -> datetime:
    return datetime.combine(day, time(12), DISPLAY_TZ).astimezone(UTC)


async def _record(
    log: DeliveryLog,
    sender: str,
    received_at: datetime,
    recipients: list[str],
    *,
    btype: BusinessDocType = BusinessDocType.NEW,
    status: StatusCode | None = None,
) -> list[str]:
    new = NewDocument(
        dedup_key=secrets.token_hex(8),
        kind=PackageKind.STATUS if status else PackageKind.DOCUMENT,
        sender=sender,
        document_id=f"{sender},2026/01/02,{secrets.randbelow(999)}/UBND-VP",
        format=PackageFormat.XML,
        signer_fingerprint="ab" * 32,
        signer_subject="CN=x",
        algorithm="rsa-sha256",
        caller=sender,
        received_at=received_at,
        business_doc_type=None if status else btype,
        status_code=status,
        subject="Công văn",
    )
    routes = [(r, "push") for r in recipients]
    result = await log.record_intake(new, secrets.token_bytes(64), routes)
    ids = [d.id for d in result.deliveries]
    await log.mark_published(ids)
    return ids


async def _end(log: DeliveryLog, delivery_id: str, state: DeliveryState) -> None:
    await log.record_attempt(
        delivery_id, outcome=state.value, detail="HTTP 400", next_state=state, error="HTTP 400"
    )


async def test_report_counts_documents_deliveries_and_statuses_per_role_and_level(
    log: DeliveryLog,
) -> None:
    now_day = today()
    old = now_day - timedelta(days=3)
    a_x, a_y = await _record(log, S, _noon(old), [X, Y])
    [b_x] = await _record(log, S, _noon(old), [X], btype=BusinessDocType.REVOKE)
    [_c_x] = await _record(log, S, datetime.now(UTC), [X])  # today: computed live
    await _record(log, X, _noon(old), [S], status=StatusCode.ACCEPTANCE)
    await _record(log, S, _noon(old - timedelta(days=40)), [X])  # before the range
    await log.mark_delivered(a_x, detail="HTTP 200")
    await _end(log, a_y, DeliveryState.DEAD_LETTERED)
    await _end(log, b_x, DeliveryState.FAILED)
    cache = ReportCache(lambda: log.engines)

    sent = await cache.totals(Role.SENDER, old - timedelta(days=1), now_day)
    got = await cache.totals(Role.RECIPIENT, old - timedelta(days=1), now_day)

    s = sent.by_organ[S]
    assert (s["documents"], s["new"], s["revoked"], s["deliveries"]) == (3, 2, 1, 4)
    assert (s["delivered"], s["failed"], s["dead_lettered"], s["pending"]) == (1, 1, 1, 1)
    assert sent.by_organ[X]["s03"] == 1
    assert sent.by_organ[X]["documents"] == 0
    x, y = got.by_organ[X], got.by_organ[Y]
    assert (x["documents"], x["revoked"], x["delivered"], x["failed"], x["pending"]) == (
        3,
        1,
        1,
        1,
        1,
    )
    assert (y["documents"], y["dead_lettered"]) == (1, 1)
    assert got.by_organ[S]["s03"] == 1  # the answer S received
    assert sum(f["documents"] for f in sent.by_day.values()) == 3
    assert sent.by_day[now_day.isoformat()]["documents"] == 1

    report = build_report(
        ReportRequest(Role.RECIPIENT, Granularity.DAY, old - timedelta(days=1), now_day),
        got,
        {X: "UBND huyện"},
    )
    assert [line.key for line in report.agencies] == [X, Y, S]
    assert report.agencies[0].name == "UBND huyện"
    assert {line.key: line["documents"] for line in report.levels} == {"district": 3, "commune": 1}
    assert report.total["documents"] == 4
    assert report.total["dead_lettered"] == 1
    assert report.status_codes == ("03",)
    assert report.total.median_s == math.inf  # delivered three days after its receipt
    assert [b.documents for b in report.buckets] == [0, 3, 0, 0, 1]
    assert [b.delivered for b in report.buckets] == [0, 1, 0, 0, 0]

    csv_text = to_csv(report, Translator("vi")).decode("utf-8-sig")
    assert csv_text.splitlines()[0].startswith("Mã định danh,Tên đơn vị,Cấp,Văn bản đến")
    assert csv_text.splitlines()[-1].startswith(",Toàn tỉnh,,4,")


async def test_cached_days_are_computed_again_when_a_delivery_changes(log: DeliveryLog) -> None:
    old = today() - timedelta(days=2)
    [a_x] = await _record(log, S, _noon(old), [X])
    await _end(log, a_x, DeliveryState.DEAD_LETTERED)
    async with log.engines.writer.begin() as conn:  # its last change, an hour ago
        await conn.execute(
            update(deliveries).values(updated_at=datetime.now(UTC) - timedelta(hours=1))
        )
    cache = ReportCache(lambda: log.engines)

    first = await cache.totals(Role.RECIPIENT, old, old)
    async with log.engines.reader.connect() as conn:
        cached = await conn.scalar(
            select(func.count())
            .select_from(report_days)
            .where(report_days.c.day == old.isoformat())
        )
    assert first.by_organ[X]["dead_lettered"] == 1
    assert cached == 3  # the marker, S as sender, X as recipient
    assert await cache.refresh(old, old) == 0  # nothing changed: nothing computed

    await log.replay(a_x, "console:test")  # back to accepted
    assert await cache.refresh(old, old) == 1
    again = await cache.totals(Role.RECIPIENT, old, old)
    assert again.by_organ[X]["dead_lettered"] == 0
    assert again.by_organ[X]["pending"] == 1


async def test_a_day_closed_less_than_the_margin_ago_is_not_cached(log: DeliveryLog) -> None:
    now = datetime.now(UTC)
    just_closed = today(now) - timedelta(days=1)
    await _record(log, S, _noon(just_closed), [X])
    cache = ReportCache(lambda: log.engines)
    midnight = datetime.combine(today(now), time(0), DISPLAY_TZ)

    totals = await cache.totals(
        Role.SENDER, just_closed, just_closed, now=midnight + STALE_MARGIN / 2
    )

    assert totals.by_organ[S]["documents"] == 1
    async with log.engines.reader.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(report_days)) == 0


@pytest.mark.parametrize(
    ("organ", "level"),
    [
        ("000.00.00.H56", OrganLevel.PROVINCE),
        ("000.00.04.H56", OrganLevel.DISTRICT),
        ("000.01.15.H56", OrganLevel.COMMUNE),
        ("001.01.15.H56", OrganLevel.UNIT),
        ("0101234567", OrganLevel.OTHER),
        ("00.53.W00", OrganLevel.OTHER),
    ],
)
def test_the_level_is_the_deepest_group_that_is_not_zeros(organ: str, level: OrganLevel) -> None:
    assert organ_level(organ) is level


def test_quantiles_interpolate_within_the_histogram_bins() -> None:
    assert quantile_s(Counter(), 0.5) is None
    assert quantile_s(Counter({"t00": 10}), 0.5) == pytest.approx(0.5)
    # 10 within 1 s, 10 in (1, 2] s: the median is the end of the first bin
    assert quantile_s(Counter({"t00": 10, "t01": 10}), 0.5) == pytest.approx(1.0)
    assert quantile_s(Counter({"t00": 10, "t01": 10}), 0.95) == pytest.approx(1.9)
    assert quantile_s(Counter({"t16": 1}), 0.5) == math.inf


def test_buckets_and_the_request() -> None:
    assert [bucket_of("2026-05-17", g) for g in Granularity] == [
        "2026-05-17",
        "2026-05",
        "2026-Q2",
        "2026",
    ]
    r = report_request({}, now_day=date(2026, 5, 17))
    assert (r.role, r.granularity, r.first, r.last) == (
        Role.SENDER,
        Granularity.MONTH,
        date(2026, 1, 1),
        date(2026, 5, 17),
    )
    for bad in (
        {"from": "2026-05-18", "to": "2026-05-17"},
        {"from": "17/05/2026"},
        {"role": "boss"},
        {"granularity": "week"},
        {"from": "2000-01-01"},
    ):
        with pytest.raises(InputError):
            report_request(bad, now_day=date(2026, 5, 17))
