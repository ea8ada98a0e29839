"""Console users in the store (shared by every gateway process): accounts, roles, passwords.

The configuration's ``[[admin.user]]`` entries seed the table when a name is not in it yet (so a
fresh install has its first administrator); once a user is in the store, the store is the truth.
Passwords are argon2id hashes (``passwords``); a new password must be ``MIN_PASSWORD_CHARS`` long.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, insert, select, update

from gateway.console.passwords import StoredHash, hash_password, parse_hash
from gateway.core.errors import ConflictError, InputError, NotFoundError
from gateway.core.settings import ConsoleRole, ConsoleUser
from gateway.store.engine import Engines, transaction
from gateway.store.tables import console_users

MIN_PASSWORD_CHARS = 10
MAX_USERNAME_CHARS = 64
SEEDED_BY = "config"


@dataclass(frozen=True, slots=True)
class Account:
    """A console user from the settings, with the parsed password hash."""

    username: str
    role: ConsoleRole
    password: StoredHash
    disabled: bool = False
    must_change_password: bool = False


@dataclass(frozen=True, slots=True)
class UserRow:
    username: str
    role: ConsoleRole
    disabled: bool
    must_change_password: bool
    created_at: datetime
    updated_at: datetime
    created_by: str


def check_username(username: str) -> str:
    name = username.strip()
    if (
        not name
        or len(name) > MAX_USERNAME_CHARS
        or not all(ch.isalnum() or ch in "._-@" for ch in name)
    ):
        raise InputError(
            "a username is 1-64 letters, digits or . _ - @", code="console.bad_username"
        )
    return name


def check_new_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InputError(
            f"a password needs at least {MIN_PASSWORD_CHARS} characters",
            code="console.weak_password",
        )
    return password


def _row(row: Row[Any]) -> UserRow:
    m = row._mapping
    return UserRow(
        m["username"],
        ConsoleRole(m["role"]),
        bool(m["disabled"]),
        bool(m["must_change_password"]),
        m["created_at"],
        m["updated_at"],
        m["created_by"],
    )


class UserStore:
    """The ``console_users`` table, on the delivery log's engines (looked up when first used)."""

    def __init__(self, engines: Callable[[], Engines]) -> None:
        self._engines_of = engines

    @property
    def _engines(self) -> Engines:
        return self._engines_of()

    async def seed(self, users: tuple[ConsoleUser, ...]) -> list[str]:
        """Add the configured users the store does not have yet; the names added."""
        added = []
        for user in users:
            now = datetime.now(UTC)
            try:
                async with transaction(self._engines.writer) as conn:
                    if (
                        await conn.scalar(
                            select(console_users.c.username).where(
                                console_users.c.username == user.username
                            )
                        )
                        is not None
                    ):
                        continue
                    await conn.execute(
                        insert(console_users).values(
                            username=user.username,
                            password_hash=user.password_hash,
                            role=user.role.value,
                            disabled=False,
                            must_change_password=False,
                            created_at=now,
                            updated_at=now,
                            created_by=SEEDED_BY,
                        )
                    )
            except ConflictError:  # another process seeded it meanwhile
                continue
            added.append(user.username)
        return added

    async def account(self, username: str) -> Account | None:
        """The user's account (disabled ones too), or None."""
        async with transaction(self._engines.reader) as conn:
            found = (
                await conn.execute(
                    select(console_users).where(console_users.c.username == username)
                )
            ).first()
        if found is None:
            return None
        m = found._mapping
        return Account(
            m["username"],
            ConsoleRole(m["role"]),
            parse_hash(m["password_hash"]),
            disabled=bool(m["disabled"]),
            must_change_password=bool(m["must_change_password"]),
        )

    async def accounts_named(self, username: str) -> dict[str, Account]:
        """``{username: account}`` if that user may log in, else ``{}``."""
        account = await self.account(username)
        return {} if account is None or account.disabled else {username: account}

    async def users(self) -> list[UserRow]:
        async with transaction(self._engines.reader) as conn:
            rows = await conn.execute(select(console_users).order_by(console_users.c.username))
            return [_row(r) for r in rows]

    async def create(
        self,
        username: str,
        password: str,
        role: ConsoleRole,
        *,
        actor: str,
        must_change_password: bool = True,
    ) -> UserRow:
        name = check_username(username)
        encoded = await asyncio.to_thread(hash_password, check_new_password(password))
        now = datetime.now(UTC)
        try:
            async with transaction(self._engines.writer) as conn:
                await conn.execute(
                    insert(console_users).values(
                        username=name,
                        password_hash=encoded,
                        role=role.value,
                        disabled=False,
                        must_change_password=must_change_password,
                        created_at=now,
                        updated_at=now,
                        created_by=actor,
                    )
                )
        except ConflictError as exc:
            raise ConflictError(f"a user {name!r} exists", code="console.user_exists") from exc
        return UserRow(name, role, False, must_change_password, now, now, actor)

    async def change(self, username: str, **values: object) -> None:
        """Set ``role``, ``disabled`` or ``must_change_password`` of an existing user."""
        async with transaction(self._engines.writer) as conn:
            done = await conn.execute(
                update(console_users)
                .where(console_users.c.username == username)
                .values(**values, updated_at=datetime.now(UTC))
            )
        if done.rowcount == 0:
            raise NotFoundError(f"no console user {username!r}", code="not_found.console_user")

    async def set_password(
        self, username: str, password: str, *, must_change_password: bool = False
    ) -> None:
        encoded = await asyncio.to_thread(hash_password, check_new_password(password))
        await self.change(
            username, password_hash=encoded, must_change_password=must_change_password
        )

    async def administrators(self) -> list[str]:
        """The enabled administrators' names."""
        async with transaction(self._engines.reader) as conn:
            rows = await conn.execute(
                select(console_users.c.username).where(
                    console_users.c.role == ConsoleRole.ADMINISTRATOR.value,
                    console_users.c.disabled.is_(False),
                )
            )
            return [name for (name,) in rows]
