"""Log-in throttling per user name, across addresses: growing delays, never a lockout.

After ``free_failures`` failed log-ins in a row for one name (from any address), each further
attempt for it must wait a delay that doubles with every failure, from ``base_delay_s`` up to
``max_delay_s``; an attempt during the wait is refused (429) without checking the password, so
guessing costs the gateway no hashing either. A success ends it. An anonymous caller can thus
make an operator wait at most ``max_delay_s``, never lock them out; the addresses that fail
too often are refused by the shared per-address limit (``gateway.web.rate_limits``).

Kept in the process's memory: each gateway process delays on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_TRACKED_NAMES = 10_000


@dataclass(slots=True)
class _Failures:
    count: int
    last_at: float


@dataclass
class LoginThrottle:
    free_failures: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    forget_after_s: float = 3600.0  # a name's failures this old no longer count
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, _Failures] = field(default_factory=dict)

    def delay_s(self, failures: int) -> float:
        """The wait after ``failures`` failed log-ins in a row."""
        over = failures - self.free_failures
        if over < 0:
            return 0.0
        return min(self.base_delay_s * 2.0**over, self.max_delay_s)

    def retry_after_s(self, username: str) -> float:
        """Seconds until this name may try again (0: it may now)."""
        entry = self._failures.get(username)
        if entry is None:
            return 0.0
        since_s = self.clock() - entry.last_at
        if since_s >= self.forget_after_s:
            del self._failures[username]
            return 0.0
        return max(self.delay_s(entry.count) - since_s, 0.0)

    def failed(self, username: str) -> None:
        now = self.clock()
        entry = self._failures.get(username)
        if entry is None or now - entry.last_at >= self.forget_after_s:
            self._forget_oldest()
            self._failures[username] = _Failures(1, now)
        else:
            entry.count += 1
            entry.last_at = now

    def succeeded(self, username: str) -> None:
        self._failures.pop(username, None)

    def _forget_oldest(self) -> None:
        """Bound memory: names sprayed by a guesser do not pile up."""
        if len(self._failures) < MAX_TRACKED_NAMES:
            return
        oldest = sorted(self._failures, key=lambda name: self._failures[name].last_at)
        for name in oldest[: len(oldest) // 2]:
            del self._failures[name]
