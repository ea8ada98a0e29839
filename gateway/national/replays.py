"""The southbound's replay memory in the store (table ``southbound_replays``), durable and shared.

Every gateway process of a deployment writes to the same table, so a signed header set used on
one process is known to the others and after a restart. ``first_use`` inserts the hash-header (or
finds the operation it was first used for) in one write transaction: two processes racing with
the same headers cannot both see a first use. Rows live ``retention_s`` and are deleted, at most
once per ``cleanup_interval_s`` per process, by the next call that writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.national.protocol import Operation
from gateway.store.engine import Engines, transaction
from gateway.store.tables import southbound_replays

DEFAULT_RETENTION_S = 30 * 86_400.0
CLEANUP_INTERVAL_S = 60.0


class StoredReplayMemory:
    """An ``authentication.ReplayMemory`` on the delivery log's engines (looked up when used)."""

    def __init__(
        self,
        engines: Callable[[], Engines],
        *,
        retention_s: float = DEFAULT_RETENTION_S,
        cleanup_interval_s: float = CLEANUP_INTERVAL_S,
    ) -> None:
        self._engines_of = engines
        self._retention = timedelta(seconds=retention_s)
        self._cleanup_interval_s = cleanup_interval_s
        self._next_cleanup_s = 0.0

    async def first_use(
        self, system_id: str, hash_header: str, operation: Operation
    ) -> Operation | None:
        now = datetime.now(UTC)
        table = southbound_replays
        key = (table.c.system_id == system_id) & (table.c.hash_header == hash_header)
        async with transaction(self._engines_of().writer) as conn:
            await self._cleanup_if_due(conn, now)
            dialect_insert = (
                postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            )
            inserted = await conn.execute(
                dialect_insert(table)
                .values(
                    system_id=system_id,
                    hash_header=hash_header,
                    operation=operation.value,
                    first_used_at=now,
                    expires_at=now + self._retention,
                )
                .on_conflict_do_nothing(index_elements=["system_id", "hash_header"])
            )
            if inserted.rowcount == 1:
                return None
            row = (
                await conn.execute(
                    select(table.c.operation, table.c.expires_at).where(key).with_for_update()
                )
            ).one()
            if row.expires_at > now:
                return Operation(row.operation)
            await conn.execute(  # expired but not yet cleaned up: a first use again
                update(table)
                .where(key)
                .values(
                    operation=operation.value, first_used_at=now, expires_at=now + self._retention
                )
            )
            return None

    async def forget(self, system_id: str, hash_header: str) -> None:
        table = southbound_replays
        async with transaction(self._engines_of().writer) as conn:
            await conn.execute(
                delete(table).where(
                    table.c.system_id == system_id, table.c.hash_header == hash_header
                )
            )

    async def _cleanup_if_due(self, conn: AsyncConnection, now: datetime) -> None:
        if time.monotonic() < self._next_cleanup_s:
            return
        self._next_cleanup_s = time.monotonic() + self._cleanup_interval_s
        await conn.execute(delete(southbound_replays).where(southbound_replays.c.expires_at <= now))

    async def count(self) -> int:
        """How many hash-headers are remembered (for tests)."""
        async with transaction(self._engines_of().reader) as conn:
            found = await conn.scalar(select(func.count()).select_from(southbound_replays))
        return int(found or 0)
