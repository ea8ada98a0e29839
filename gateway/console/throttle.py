"""Log-in throttling per user name, across addresses: growing delays, never a lockout.

After ``free_failures`` failed log-ins in a row for one name (from any address), each further
attempt for it must wait a delay that doubles with every failure, from ``base_delay_s`` up to
``max_delay_s``; an attempt during the wait is refused (429) without checking the password, so
guessing costs the gateway no hashing either. A success ends it. An anonymous caller can thus
make an operator wait at most ``max_delay_s``, never lock them out; the addresses that fail
too often are refused by the shared per-address limit (``gateway.web.rate_limits``).

The failures are counted in the store (``gateway.store.login_failures``), so every gateway
process delays the same name alike; the clock is the wall clock, which the processes share.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.store.login_failures import LoginFailures

PRUNE_EVERY_S = 60.0


@dataclass
class LoginThrottle:
    failures: LoginFailures
    free_failures: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    forget_after_s: float = 3600.0  # a name's failures this old no longer count
    clock: Callable[[], float] = time.time
    _pruned_at: float | None = None

    def delay_s(self, failures: int) -> float:
        """The wait after ``failures`` failed log-ins in a row."""
        over = failures - self.free_failures
        if over < 0:
            return 0.0
        return min(self.base_delay_s * 2.0**over, self.max_delay_s)

    async def retry_after_s(self, username: str) -> float:
        """Seconds until this name may try again (0: it may now)."""
        found = await self.failures.get(username)
        if found is None:
            return 0.0
        count, last_at = found
        since_s = self.clock() - last_at
        if since_s >= self.forget_after_s:
            return 0.0
        return max(self.delay_s(count) - since_s, 0.0)

    async def failed(self, username: str) -> None:
        now = self.clock()
        await self.failures.failed(username, now, self.forget_after_s)
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now  # names sprayed by a guesser do not pile up
            await self.failures.prune(before=now - self.forget_after_s)

    async def succeeded(self, username: str) -> None:
        await self.failures.clear(username)
