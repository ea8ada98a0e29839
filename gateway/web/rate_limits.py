"""Rate limits per participant and per address for failed authentication (429 + Retry-After).

Counters live in the store (``gateway.store.counters``), so every process of a deployment counts
against the same limit. To keep the store's cost per request low, a process takes *allowances*:
one upsert adds a batch to the shared counter and grants the part of the batch that is still
under the limit; the process then spends it in memory. A process therefore never lets more than
the limit through in a window (unspent allowances make others stop a little early), and once a
window is known to be exhausted, further requests are refused without touching the store.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeAlias

import structlog

from gateway.core.errors import LgspError, RateLimitError, ServiceError
from gateway.core.settings import RateLimitSettings
from gateway.store.counters import Counters

log = structlog.get_logger(__name__)

Refusal: TypeAlias = Callable[[str, float], RateLimitError]  # (message, retry_after_s)

ALLOWANCE_SHARE = 20
"""A process takes at most ``limit / ALLOWANCE_SHARE`` of a window's requests at a time."""
MAX_TRACKED_KEYS = 10_000
"""Past this many keys in memory, allowances of finished windows are forgotten."""


@dataclass(slots=True)
class _Allowance:
    window_start: int
    left: int
    exhausted: bool  # the shared counter reached the limit in this window


@dataclass
class WindowLimit:
    """At most ``limit`` events per key per fixed window of ``window_s``, counted in the store.

    ``limit`` 0 turns the limit off.
    """

    counters: Counters
    limit: int
    window_s: float
    refuse: Refusal = lambda message, retry_after_s: RateLimitError(
        message, retry_after_s=retry_after_s
    )
    clock: Callable[[], float] = time.time
    _allowances: dict[str, _Allowance] = field(default_factory=dict)
    _pruned_window: int = 0
    _claiming: asyncio.Lock = field(default_factory=asyncio.Lock)

    def _window(self) -> tuple[int, float]:
        """The current window's start (epoch seconds) and the seconds until it ends."""
        now = self.clock()
        start = math.floor(now / self.window_s) * self.window_s
        return int(start), start + self.window_s - now

    def blocked_for_s(self, key: str) -> float:
        """Seconds until ``key`` may go on, as far as this process knows (0: not blocked)."""
        start, left_s = self._window()
        allowance = self._allowances.get(key)
        if allowance is None or allowance.window_start != start:
            return 0.0
        return left_s if allowance.exhausted and allowance.left == 0 else 0.0

    def check(self, key: str) -> None:
        """Refuse (``RateLimitError``) if ``key`` is known to be over its limit; no store cost."""
        blocked_s = self.blocked_for_s(key)
        if blocked_s:
            raise self._refusal(key, blocked_s)

    async def take(self, key: str) -> None:
        """Count one event for ``key``; ``RateLimitError`` if the window's limit is reached."""
        if self.limit <= 0:
            return
        start, left_s = self._window()
        allowance = self._current(key, start)
        if _needs_claim(allowance):
            async with self._claiming:  # one claim at a time: concurrent callers share it
                start, left_s = self._window()
                allowance = self._current(key, start)
                if _needs_claim(allowance):
                    allowance = await self._claim(key, start)
        assert allowance is not None
        if allowance.left == 0:
            raise self._refusal(key, left_s)
        allowance.left -= 1

    def _current(self, key: str, start: int) -> _Allowance | None:
        allowance = self._allowances.get(key)
        return allowance if allowance is not None and allowance.window_start == start else None

    async def _claim(self, key: str, start: int) -> _Allowance:
        batch = max(1, self.limit // ALLOWANCE_SHARE)
        await self._forget_old_windows(start)
        try:
            total = await self.counters.add(key, start, batch)
        except (ServiceError, OSError) as exc:  # the store is down: do not refuse because of it
            log.warning("rate_limit_store_unavailable", key=key, error=str(exc))
            return _Allowance(start, 1, exhausted=False)
        granted = max(0, min(batch, self.limit - (total - batch)))
        allowance = _Allowance(start, granted, exhausted=total >= self.limit)
        self._allowances[key] = allowance
        return allowance

    async def _forget_old_windows(self, start: int) -> None:
        """Once per window and process: drop old rows from the store and from memory."""
        if self._pruned_window == start:
            return
        self._pruned_window = start
        if len(self._allowances) > MAX_TRACKED_KEYS:
            self._allowances = {
                k: a for k, a in self._allowances.items() if a.window_start == start
            }
        try:
            await self.counters.prune(before=start - int(self.window_s))
        except LgspError as exc:
            log.warning("rate_limit_prune_failed", error=str(exc))

    def _refusal(self, key: str, retry_after_s: float) -> RateLimitError:
        kind = key.partition(":")[0]
        return self.refuse(
            f"too many {kind} requests; retry in {math.ceil(retry_after_s)} s", retry_after_s
        )


def _participant_refusal(message: str, retry_after_s: float) -> RateLimitError:
    return RateLimitError(message, retry_after_s=retry_after_s, code="rate.participant")


def _failed_auth_refusal(message: str, retry_after_s: float) -> RateLimitError:
    return RateLimitError(message, retry_after_s=retry_after_s, code="rate.failed_auth")


@dataclass
class RateLimits:
    """The gateway's limits: requests per participant, failed authentications per address."""

    participant: WindowLimit
    failed_auth: WindowLimit

    @classmethod
    def from_settings(
        cls, counters: Counters, conf: RateLimitSettings, clock: Callable[[], float] = time.time
    ) -> RateLimits:
        return cls(
            participant=WindowLimit(
                counters, conf.participant_requests, conf.window_s, _participant_refusal, clock
            ),
            failed_auth=WindowLimit(
                counters, conf.failed_auth_per_address, conf.window_s, _failed_auth_refusal, clock
            ),
        )

    def check_address(self, address: str | None) -> None:
        """Refuse at once an address known to have failed authentication too often."""
        self.failed_auth.check(address_key(address))

    async def failed(self, address: str | None) -> None:
        """Count a failed authentication from ``address``; 429 once over the limit."""
        await self.failed_auth.take(address_key(address))

    async def request(self, caller_key: str) -> None:
        """Count an authenticated request of ``caller_key`` (``participant:<OrganId>``,
        ``system:<system id>``); 429 once over the limit."""
        await self.participant.take(caller_key)


def _needs_claim(allowance: _Allowance | None) -> bool:
    """No allowance in this window yet, or one spent while the shared counter has room."""
    return allowance is None or (allowance.left == 0 and not allowance.exhausted)


def address_key(address: str | None) -> str:
    return f"auth:{address or '-'}"
