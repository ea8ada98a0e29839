"""Supervised loops: a bug is logged with its traceback and backed off; the loop goes on."""

from __future__ import annotations

import asyncio
import contextlib

from structlog.testing import capture_logs

from gateway.core.errors import UnavailableError
from gateway.core.loops import Loops, supervise
from gateway.core.metrics import Metrics


async def test_a_crashing_round_is_logged_backed_off_and_the_loop_goes_on() -> None:
    calls: list[float] = []
    stop = asyncio.Event()

    async def round_() -> None:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) == 1:
            raise KeyError("a bug")
        if len(calls) == 2:
            raise UnavailableError("store down", code="unavailable.store")
        if len(calls) == 4:
            stop.set()

    loops = Loops()
    with capture_logs() as logs:
        await asyncio.wait_for(
            supervise("probe", round_, interval_s=0.01, max_backoff_s=0.05, loops=loops, stop=stop),
            timeout=5,
        )
    assert len(calls) == 4
    crashed = [e for e in logs if e["event"] == "loop_round_crashed"]
    assert crashed
    assert crashed[0]["loop"] == "probe"
    assert crashed[0]["exc_info"] is True
    failed = [e for e in logs if e["event"] == "loop_round_failed"]
    assert failed[0]["code"] == "unavailable.store"
    # the waits after the two failures doubled: 0.02 then 0.04 s
    assert calls[2] - calls[1] >= 0.035
    health = loops.snapshot()["probe"]
    assert health["failures"] == 2
    assert health["consecutive_failures"] == 0
    assert health["last_success_age_s"] is not None


async def test_cancellation_ends_the_loop_at_once() -> None:
    async def round_() -> None:
        await asyncio.sleep(10)

    task = asyncio.create_task(supervise("slow", round_, interval_s=1))
    await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_the_metrics_export_each_loops_last_success_and_failures() -> None:
    metrics = Metrics()
    stop = asyncio.Event()
    rounds = 0

    async def round_() -> None:
        nonlocal rounds
        rounds += 1
        if rounds == 1:
            raise RuntimeError("boom")
        stop.set()

    await asyncio.wait_for(
        supervise("outbox-relay", round_, interval_s=0.01, loops=metrics.loops, stop=stop),
        timeout=5,
    )
    text = metrics.render().decode()
    assert 'lgsp_loop_failures_total{loop="outbox-relay"} 1.0' in text
    assert 'lgsp_loop_last_success_timestamp_seconds{loop="outbox-relay"}' in text
