"""Supervised background loops: every failure logged with its traceback, backed off, never fatal.

Every "forever" task of a process (outbox relay, directory watch, national poller and agency
sync, checkpoints) runs through :func:`supervise`, so one set of rules holds for all of them:

- a round that returns normally is a success: its time is recorded, the next round follows after
  ``interval_s``;
- a round that raises one of our errors (``LgspError``) is logged as a warning with its code; any
  other exception is logged with its traceback (a bug must be visible, never end the loop);
- after a failure the wait doubles, from ``interval_s`` up to ``max_backoff_s``, and returns to
  ``interval_s`` after the next success;
- ``stop`` (an ``asyncio.Event``) ends the loop between rounds; cancellation ends it at once.

Each loop's last success and its failure count are kept in a :class:`LoopHealth` of a shared
:class:`Loops` registry, which ``/readyz`` shows and the metrics export
(``lgsp_loop_last_success_timestamp_seconds{loop}``, ``lgsp_loop_failures_total{loop}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from gateway.core.errors import LgspError

log = structlog.get_logger(__name__)

Round = Callable[[], Awaitable[object]]


@dataclass
class LoopHealth:
    """What one loop last did: wall-clock time of its last success, failures, last error code."""

    name: str
    interval_s: float
    last_success_at: float | None = None
    failures: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None

    def snapshot(self, now_s: float | None = None) -> dict[str, object]:
        now_s = time.time() if now_s is None else now_s
        age_s = None if self.last_success_at is None else round(now_s - self.last_success_at, 3)
        return {
            "last_success_age_s": age_s,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
        }


@dataclass
class Loops:
    """The loops of one process, by name (the registry ``/readyz`` and the metrics read)."""

    loops: dict[str, LoopHealth] = field(default_factory=dict)
    on_change: Callable[[LoopHealth, bool], None] | None = None  # (health, failed)

    def register(self, name: str, interval_s: float) -> LoopHealth:
        health = self.loops.setdefault(name, LoopHealth(name, interval_s))
        health.interval_s = interval_s
        return health

    def snapshot(self) -> dict[str, dict[str, object]]:
        now_s = time.time()
        return {name: health.snapshot(now_s) for name, health in sorted(self.loops.items())}

    def record(self, health: LoopHealth, *, failed: bool) -> None:
        if self.on_change is not None:
            self.on_change(health, failed)


async def supervise(
    name: str,
    round_: Round,
    *,
    interval_s: float,
    max_backoff_s: float | None = None,
    loops: Loops | None = None,
    stop: asyncio.Event | None = None,
    first_delay_s: float = 0.0,
) -> None:
    """Run ``round_`` every ``interval_s`` until ``stop`` is set or the task is cancelled."""
    registry = loops if loops is not None else Loops()
    health = registry.register(name, interval_s)
    ceiling_s = max(interval_s, max_backoff_s if max_backoff_s is not None else 60 * interval_s)
    delay_s = first_delay_s
    while True:
        if await _wait(delay_s, stop):
            return
        try:
            await round_()
        except asyncio.CancelledError:
            raise
        except LgspError as exc:
            _failed(registry, health, exc.code)
            log.warning("loop_round_failed", loop=name, code=exc.code, error=exc.message)
        except Exception as exc:  # a bug: logged with its traceback, the loop goes on
            _failed(registry, health, type(exc).__name__)
            log.exception("loop_round_crashed", loop=name)
        else:
            health.last_success_at = time.time()
            health.consecutive_failures = 0
            health.last_error = None
            registry.record(health, failed=False)
            delay_s = interval_s
            continue
        delay_s = min(ceiling_s, interval_s * 2 ** min(health.consecutive_failures, 16))


def _failed(registry: Loops, health: LoopHealth, error: str) -> None:
    health.failures += 1
    health.consecutive_failures += 1
    health.last_error = error
    registry.record(health, failed=True)


async def _wait(delay_s: float, stop: asyncio.Event | None) -> bool:
    """Sleep ``delay_s`` (0: just yield); True if ``stop`` is set by the end of it."""
    if stop is None:
        await asyncio.sleep(delay_s)
        return False
    if stop.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=delay_s)
    return stop.is_set()
