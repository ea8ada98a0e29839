"""Log-in throttling: too many failed log-ins for one name from one address lock it out a while."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoginThrottle:
    """Per (username, address): ``max_failures`` within ``window_s`` lock out for ``lockout_s``.

    Kept in the process's memory: each gateway process counts on its own, which still bounds
    guessing to ``max_failures`` per window per process.
    """

    max_failures: int = 5
    window_s: float = 300.0
    lockout_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    _locked_until: dict[tuple[str, str], float] = field(default_factory=dict)

    def retry_after_s(self, username: str, address: str) -> float:
        """Seconds until this name may try again from this address (0: it may now)."""
        until = self._locked_until.get((username, address), 0.0)
        return max(until - self.clock(), 0.0)

    def failed(self, username: str, address: str) -> None:
        key, now = (username, address), self.clock()
        recent = [t for t in self._failures.get(key, []) if now - t < self.window_s]
        recent.append(now)
        self._failures[key] = recent
        if len(recent) >= self.max_failures:
            self._locked_until[key] = now + self.lockout_s
            del self._failures[key]

    def succeeded(self, username: str, address: str) -> None:
        self._failures.pop((username, address), None)
        self._locked_until.pop((username, address), None)
