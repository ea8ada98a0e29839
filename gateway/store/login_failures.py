"""Failed console log-ins per user name (``login_failures``), shared by every gateway process.

The rules (how long a name waits) are the console's (``gateway.console.throttle``); this module
only counts, in one statement per failure: an upsert that starts the count again when the last
failure is older than ``forget_after_s``, and returns the new count.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import case, delete, select

from gateway.store.engine import Engines, transaction
from gateway.store.tables import login_failures
from gateway.store.upsert import upsert


class LoginFailures:
    """``login_failures`` on the delivery log's engines (``LoginFailures(lambda: log.engines)``)."""

    def __init__(self, engines: Callable[[], Engines]) -> None:
        self._engines_of = engines

    async def get(self, username: str) -> tuple[int, float] | None:
        """``(failures in a row, epoch seconds of the last)`` for this name, if any."""
        async with transaction(self._engines_of().reader) as conn:
            row = (
                await conn.execute(
                    select(login_failures.c.failures, login_failures.c.last_at).where(
                        login_failures.c.username == username
                    )
                )
            ).first()
        return None if row is None else (int(row.failures), float(row.last_at))

    async def failed(self, username: str, now: float, forget_after_s: float) -> int:
        """Count a failure at ``now``; the failures in a row, this one included."""
        engines = self._engines_of()
        table = login_failures
        counted = case((table.c.last_at <= now - forget_after_s, 1), else_=table.c.failures + 1)
        values = {"username": username, "failures": 1, "last_at": now}
        grown = {"failures": counted, "last_at": now}
        target = [table.c.username]
        statement = upsert(engines.dialect, table, values, target, grown).returning(
            table.c.failures
        )
        async with transaction(engines.writer) as conn:
            return int((await conn.execute(statement)).scalar_one())

    async def clear(self, username: str) -> None:
        async with transaction(self._engines_of().writer) as conn:
            await conn.execute(delete(login_failures).where(login_failures.c.username == username))

    async def prune(self, before: float) -> int:
        """Forget the names whose last failure was at ``before`` or earlier; how many went."""
        async with transaction(self._engines_of().writer) as conn:
            result = await conn.execute(
                delete(login_failures).where(login_failures.c.last_at <= before)
            )
            return int(result.rowcount)
