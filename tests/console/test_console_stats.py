"""The dashboard's figures from a real delivery log (SQLite and PostgreSQL), and their chart."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.console.chart import nice_ceiling, throughput_chart
from gateway.console.db import ConsoleDb
from gateway.console.stats import HourCount, dashboard
from gateway.edxml.formats import PackageFormat
from gateway.edxml.model import PackageKind
from gateway.store import DeliveryLog, DeliveryState, NewDocument

X, Y = "000.00.15.H56", "000.01.15.H56"


@pytest.fixture
async def stores(store_url: str) -> AsyncIterator[tuple[DeliveryLog, ConsoleDb]]:
    log = await DeliveryLog.open(store_url)
    console = ConsoleDb.open(store_url)
    yield log, console
    await console.aclose()
    await log.aclose()


async def _document(log: DeliveryLog, received_at: datetime, recipients: list[str]) -> list[str]:
    new = NewDocument(
        dedup_key=secrets.token_hex(8),
        kind=PackageKind.DOCUMENT,
        sender="000.00.04.H56",
        document_id=f"000.00.04.H56,2026/01/02,{secrets.randbelow(999)}/UBND-VP",
        format=PackageFormat.XML,
        signer_fingerprint="ab" * 32,
        signer_subject="CN=Sở Nội vụ",
        algorithm="rsa-sha256",
        caller="000.00.04.H56",
        received_at=received_at,
        subject="Công văn",
    )
    routes = [(r, "push") for r in recipients]
    result = await log.record_intake(new, secrets.token_bytes(64), routes)
    ids = [d.id for d in result.deliveries]
    await log.mark_published(ids)
    return ids


async def _fail(log: DeliveryLog, delivery_id: str, state: DeliveryState) -> None:
    await log.record_attempt(
        delivery_id, outcome=state.value, detail="HTTP 400", next_state=state, error="HTTP 400"
    )


async def test_states_hours_and_failing_destinations(stores: tuple[DeliveryLog, ConsoleDb]) -> None:
    log, console = stores
    now = datetime.now(UTC)
    a_x, a_y = await _document(log, now - timedelta(hours=1), [X, Y])
    [b_x] = await _document(log, now - timedelta(hours=3), [X])
    [c_x] = await _document(log, now - timedelta(hours=30), [X])  # outside the 24 hours
    await log.mark_delivered(a_x, detail="HTTP 200")
    await _fail(log, a_y, DeliveryState.DEAD_LETTERED)
    await _fail(log, b_x, DeliveryState.RETRYING)
    await _fail(log, c_x, DeliveryState.DEAD_LETTERED)

    figures = await dashboard(console.engines, now=datetime.now(UTC))

    assert figures.documents == 2
    assert figures.states == {
        DeliveryState.ACCEPTED: 0,
        DeliveryState.QUEUED: 0,
        DeliveryState.DELIVERED: 1,
        DeliveryState.RETRYING: 1,
        DeliveryState.FAILED: 0,
        DeliveryState.DEAD_LETTERED: 1,
    }
    assert len(figures.hours) == 24
    by_hour = {h.hour: h for h in figures.hours}
    hour = (now - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    assert by_hour[hour].received == 1
    assert by_hour[hour - timedelta(hours=2)].received == 1
    assert sum(h.received for h in figures.hours) == 2
    assert figures.hours[-1].delivered == 1  # delivered just now
    assert sum(h.delivered for h in figures.hours) == 1
    assert [(f.recipient, f.failing, f.dead_lettered) for f in figures.failing] == [
        (X, 2, 1),
        (Y, 1, 1),
    ]


def test_chart_scales_bars_and_line_to_a_round_maximum() -> None:
    start = datetime(2026, 1, 2, tzinfo=UTC)
    hours = [HourCount(start + timedelta(hours=i), received=i, delivered=i // 2) for i in range(24)]

    chart = throughput_chart(hours)

    assert [nice_ceiling(v) for v in (0, 4, 7, 23, 150, 999)] == [4, 4, 10, 50, 200, 1000]
    assert [t.label for t in chart.y_ticks] == ["0", "12", "25", "37", "50"]
    assert len(chart.bars) == 24
    assert chart.bars[0].height == 0
    tallest = chart.bars[-1]
    assert tallest.height == pytest.approx((chart.bottom - chart.top) * 23 / 50)
    assert tallest.label == "06:00"  # 23:00 UTC is 06:00 in Vietnam
    assert len(chart.polyline.split()) == 24
    assert [t.label for t in chart.x_ticks][:3] == ["07:00", "10:00", "13:00"]
