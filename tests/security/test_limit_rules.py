"""The rules behind the limits, on a real store and a controlled clock: fixed windows shared by
processes, allowances, pruning; the console's growing delays (counted in the store too)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from gateway.console.throttle import LoginThrottle
from gateway.core.errors import RateLimitError
from gateway.store import DeliveryLog
from gateway.store.counters import Counters
from gateway.store.login_failures import LoginFailures
from gateway.store.tables import login_failures, rate_counters
from gateway.web.rate_limits import WindowLimit


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_processes_share_a_window_and_the_next_window_starts_afresh(store_url: str) -> None:
    log = await DeliveryLog.open(store_url)
    try:
        clock = Clock(999_980.0)  # 20 s into the 60 s window starting at 999,960
        counters = Counters(lambda: log.engines)
        first, second = (WindowLimit(counters, 3, 60.0, clock=clock) for _ in range(2))
        await first.take("participant:A")
        await second.take("participant:A")
        await first.take("participant:A")
        with pytest.raises(RateLimitError) as refused:
            await second.take("participant:A")
        assert refused.value.retry_after_s == 40
        assert refused.value.http_status == 429
        second.check("participant:B")  # other keys are not affected
        await second.take("participant:B")

        clock.now += 60  # the next window
        await second.take("participant:A")
        async with log.engines.reader.connect() as conn:
            windows = (await conn.execute(select(func.count()).select_from(rate_counters))).scalar()
        assert windows == 3  # the old window stays one window long, then is pruned
        clock.now += 120
        await first.take("participant:A")
        async with log.engines.reader.connect() as conn:
            left = (await conn.execute(select(rate_counters.c.window_start))).scalars().all()
        assert left == [999_960 + 180]
    finally:
        await log.aclose()


async def test_a_known_exhausted_window_is_refused_without_the_store(store_url: str) -> None:
    log = await DeliveryLog.open(store_url)
    try:
        clock = Clock(60.0)
        limit = WindowLimit(Counters(lambda: log.engines), 1, 60.0, clock=clock)
        await limit.take("auth:10.0.0.1")
        with pytest.raises(RateLimitError):
            await limit.take("auth:10.0.0.1")
        await log.aclose()  # no store any more: the refusal is answered from memory
        with pytest.raises(RateLimitError):
            limit.check("auth:10.0.0.1")
        with pytest.raises(RateLimitError):
            await limit.take("auth:10.0.0.1")
    finally:
        await log.aclose()


async def test_console_delays_grow_per_name_up_to_a_ceiling_and_end_on_success(
    store_url: str,
) -> None:
    log = await DeliveryLog.open(store_url)
    try:
        clock = Clock(0.0)
        throttle = LoginThrottle(LoginFailures(lambda: log.engines), clock=clock)
        waits = []
        for _ in range(12):
            await throttle.failed("operator")
            waits.append(await throttle.retry_after_s("operator"))
        assert waits == [0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
        assert await throttle.retry_after_s("viewer") == 0
        clock.now += 30
        assert await throttle.retry_after_s("operator") == 30  # never more: no lockout
        await throttle.succeeded("operator")
        assert await throttle.retry_after_s("operator") == 0
    finally:
        await log.aclose()


async def test_console_failures_are_forgotten_after_an_hour(store_url: str) -> None:
    log = await DeliveryLog.open(store_url)
    try:
        clock = Clock(0.0)
        throttle = LoginThrottle(LoginFailures(lambda: log.engines), clock=clock)
        for name in ("viewer", *["operator"] * 5):
            await throttle.failed(name)
        clock.now += 3600
        assert await throttle.retry_after_s("operator") == 0
        await throttle.failed("operator")
        assert await throttle.retry_after_s("operator") == 0  # counting starts again
        async with log.engines.reader.connect() as conn:  # and old names are pruned
            names = (await conn.execute(select(login_failures.c.username))).scalars().all()
        assert names == ["operator"]  # the viewer's hour-old failure went
    finally:
        await log.aclose()


async def test_concurrent_requests_share_one_claim_instead_of_each_taking_a_batch(
    store_url: str,
) -> None:
    """A cold start under a burst: one upsert serves them all (each taking a batch would use up
    the window's whole limit at once and refuse the rest)."""
    log = await DeliveryLog.open(store_url)
    try:
        limit = WindowLimit(Counters(lambda: log.engines), 1000, 60.0, clock=Clock(30.0))
        await asyncio.gather(*(limit.take("participant:A") for _ in range(200)))
        async with log.engines.reader.connect() as conn:
            counted = (await conn.execute(select(rate_counters.c.count))).scalars().all()
        assert counted == [200]  # four batches of 50, claimed one after the other
    finally:
        await log.aclose()
