"""Fixed-window counters in the store, shared by every gateway process of a deployment.

``add`` is one statement (an upsert that returns the new count), so a counter costs one small
write however many processes count on it; callers batch (see ``gateway.web.rate_limits``).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete

from gateway.store.engine import Engines, transaction
from gateway.store.tables import rate_counters
from gateway.store.upsert import upsert


class Counters:
    """``rate_counters`` on the delivery log's engines (``Counters(lambda: log.engines)``)."""

    def __init__(self, engines: Callable[[], Engines]) -> None:
        self._engines_of = engines

    async def add(self, key: str, window_start: int, amount: int) -> int:
        """Add ``amount`` to ``key``'s counter of the window starting at ``window_start`` (epoch
        seconds) and return the counter's new value."""
        engines = self._engines_of()
        values = {"key": key, "window_start": window_start, "count": amount}
        target = [rate_counters.c.key, rate_counters.c.window_start]
        grown = {"count": rate_counters.c.count + amount}
        statement = upsert(engines.dialect, rate_counters, values, target, grown).returning(
            rate_counters.c.count
        )
        async with transaction(engines.writer) as conn:
            return int((await conn.execute(statement)).scalar_one())

    async def prune(self, before: int) -> int:
        """Forget the windows that started before ``before``; returns how many rows went."""
        async with transaction(self._engines_of().writer) as conn:
            result = await conn.execute(
                delete(rate_counters).where(rate_counters.c.window_start < before)
            )
            return int(result.rowcount)
