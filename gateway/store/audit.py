"""Appending to the operators' audit trail (``console_audit``): the console's and the admin API's
changes alike. The trail is append-only; reading it is the console's."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.engine import Engines, transaction
from gateway.store.tables import console_audit


async def append_audit(
    engines: Engines, actor: str, action: str, targets: Sequence[tuple[str, Mapping[str, object]]]
) -> None:
    """One entry per ``(target, detail)``, all in one transaction."""
    if not targets:
        return
    async with transaction(engines.writer) as conn:
        await insert_audit(conn, actor, action, targets)


async def insert_audit(
    conn: AsyncConnection,
    actor: str,
    action: str,
    targets: Sequence[tuple[str, Mapping[str, object]]],
) -> None:
    """The same entries inside the caller's transaction (a change and its entry commit together)."""
    if not targets:
        return
    now = datetime.now(UTC)
    rows = [
        {
            "at": now,
            "actor": actor,
            "action": action,
            "target": target,
            "detail": json.dumps(dict(detail), ensure_ascii=False, default=str),
        }
        for target, detail in targets
    ]
    await conn.execute(insert(console_audit), rows)
