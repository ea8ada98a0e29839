"""The console's own rows in the delivery log database: sessions and the audit trail.

The audit trail is append-only: this module only ever inserts into ``console_audit`` and reads it.
Sessions live server-side; the browser's cookie holds a random token whose SHA-256 is the key, so
a copy of the table cannot be replayed as cookies, and logging out deletes the row.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, delete, func, insert, select

from gateway.core.errors import InputError
from gateway.store.audit import append_audit
from gateway.store.engine import Engines, create_engines, transaction
from gateway.store.tables import console_audit, console_sessions

MAX_AUDIT_PAGE = 500


@dataclass(frozen=True, slots=True)
class SessionRow:
    username: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One operator action: who, what, on what, when, and the particulars."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: Mapping[str, object]


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


class ConsoleDb:
    """Sessions and audit entries, on the delivery log's engines (``ConsoleDb(lambda:
    log.engines)``, looked up when first used) or on engines of its own
    (``ConsoleDb.open(store_url)``, closed by ``aclose``)."""

    def __init__(self, engines: Callable[[], Engines], *, owns_engines: bool = False) -> None:
        self._engines_of = engines
        self._owns_engines = owns_engines

    @property
    def engines(self) -> Engines:
        return self._engines_of()

    @classmethod
    def open(cls, url: str) -> ConsoleDb:
        """Engines for the store at ``url`` (the delivery log has already migrated it)."""
        engines = create_engines(url)
        return cls(lambda: engines, owns_engines=True)

    async def aclose(self) -> None:
        if self._owns_engines:
            await self.engines.reader.dispose()

    # -- sessions -------------------------------------------------------------------------------

    async def start_session(self, username: str, ttl_s: float) -> tuple[str, SessionRow]:
        """A new session: ``(token for the cookie, its row)``; expired sessions are removed."""
        token = secrets.token_urlsafe(32)
        now = _now()
        row = SessionRow(username, secrets.token_urlsafe(32), now + timedelta(seconds=ttl_s))
        async with transaction(self.engines.writer) as conn:
            await conn.execute(delete(console_sessions).where(console_sessions.c.expires_at < now))
            await conn.execute(
                insert(console_sessions).values(
                    token_sha256=_token_key(token),
                    username=username,
                    csrf_token=row.csrf_token,
                    created_at=now,
                    expires_at=row.expires_at,
                )
            )
        return token, row

    async def session(self, token: str) -> SessionRow | None:
        """The unexpired session of this cookie token, if any."""
        query = select(console_sessions).where(
            console_sessions.c.token_sha256 == _token_key(token),
            console_sessions.c.expires_at > _now(),
        )
        async with transaction(self.engines.reader) as conn:
            found = (await conn.execute(query)).first()
        if found is None:
            return None
        return SessionRow(found.username, found.csrf_token, found.expires_at)

    async def end_session(self, token: str) -> None:
        async with transaction(self.engines.writer) as conn:
            await conn.execute(
                delete(console_sessions).where(console_sessions.c.token_sha256 == _token_key(token))
            )

    # -- audit trail ----------------------------------------------------------------------------

    async def audit(
        self, actor: str, action: str, target: str, detail: Mapping[str, object] | None = None
    ) -> None:
        """Append one entry to the audit trail."""
        await self.audit_many(actor, action, [(target, detail or {})])

    async def audit_many(
        self, actor: str, action: str, targets: Sequence[tuple[str, Mapping[str, object]]]
    ) -> None:
        """Append one entry per ``(target, detail)``, all in one transaction."""
        await append_audit(self.engines, actor, action, targets)

    async def audit_entries(self, *, limit: int, offset: int = 0) -> list[AuditEntry]:
        """Entries, newest first."""
        if not 1 <= limit <= MAX_AUDIT_PAGE or offset < 0:
            raise InputError("bad audit page", code="input.invalid_page")
        query = (
            select(console_audit).order_by(console_audit.c.id.desc()).limit(limit).offset(offset)
        )
        async with transaction(self.engines.reader) as conn:
            return [_audit_entry(row) for row in await conn.execute(query)]

    async def audit_count(self) -> int:
        async with transaction(self.engines.reader) as conn:
            return int(await conn.scalar(select(func.count()).select_from(console_audit)) or 0)


def _audit_entry(row: Row[Any]) -> AuditEntry:
    m = row._mapping
    return AuditEntry(
        id=m["id"],
        at=m["at"],
        actor=m["actor"],
        action=m["action"],
        target=m["target"],
        detail=json.loads(m["detail"]),
    )
