"""Server-side authentication of protocol calls, shared by the simulator and the southbound.

The signature and timestamp checks are the wire format's (``adapters.national.protocol``); here
is what a server adds: the replay rule of each call kind, an in-process replay memory (the
simulator's; the southbound's is the store's, ``replays.py``) and the authenticator.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from adapters.national.protocol import (
    PLATFORM_TZ,
    HeaderSource,
    Operation,
    SignedRequest,
    SystemCredentials,
    check_timestamp,
    verify_signature,
)
from gateway.core.errors import AuthError


class ReplayRule(StrEnum):
    """What the SDK allows a server to refuse, given that its timestamp is set once per object.

    One SDK object sends byte-identical headers (same hash-header) whenever its header map did not
    change, and keys accumulate in the map (a ``docId`` read once stays in every later call):

    - ``once``: sendEdoc, updateStatus, registerAgency. A legitimate second use only repeats the
      same change (the map holds the same file hash or docid/status), so any earlier use refuses.
    - ``same_operation``: getEdoc. A retry of the same read repeats its headers and must work;
      headers first used by another targeted call (an updateStatus, whose map still holds the
      docId it fetched) are refused, so captured acknowledgements cannot fetch packages.
    - ``repeatable``: list and agency calls. Identical polls are the SDK's normal behaviour and
      their map carries the stale keys of every earlier call, so they are neither refused nor
      remembered (a list's headers equal an earlier getEdoc/updateStatus's, which is remembered).
    """

    ONCE = "once"
    SAME_OPERATION = "same_operation"
    REPEATABLE = "repeatable"


def replay_rule(operation: Operation) -> ReplayRule:
    """How often one signed header set may be used for ``operation``."""
    if operation.changes_state:
        return ReplayRule.ONCE
    if operation is Operation.GET_EDOC:
        return ReplayRule.SAME_OPERATION
    return ReplayRule.REPEATABLE


class ReplayMemory(Protocol):
    """Where the hash-header values already used are remembered (in memory, or the store)."""

    async def first_use(
        self, system_id: str, hash_header: str, operation: Operation
    ) -> Operation | None:
        """Remember ``hash_header`` for ``operation`` if new; else the operation it was first
        used for (``None``: this is its first use)."""
        ...

    async def forget(self, system_id: str, hash_header: str) -> None:
        """Forget ``hash_header`` (its call failed on our side: the SDK's retry must work)."""
        ...


class ReplayCache:
    """An in-process :class:`ReplayMemory` (the simulator's): bounded, each kept ``retention_s``."""

    def __init__(self, *, max_entries: int = 100_000, retention_s: float = 86_400.0) -> None:
        self._seen: OrderedDict[str, tuple[float, Operation]] = OrderedDict()
        self._max_entries = max_entries
        self._retention_s = retention_s

    async def first_use(
        self, system_id: str, hash_header: str, operation: Operation, now_s: float | None = None
    ) -> Operation | None:
        now_s = time.monotonic() if now_s is None else now_s
        while self._seen and next(iter(self._seen.values()))[0] < now_s:
            self._seen.popitem(last=False)
        key = f"{system_id}\n{hash_header}"
        if key in self._seen:
            return self._seen[key][1]
        self._seen[key] = (now_s + self._retention_s, operation)
        if len(self._seen) > self._max_entries:
            self._seen.popitem(last=False)
        return None

    async def forget(self, system_id: str, hash_header: str) -> None:
        self._seen.pop(f"{system_id}\n{hash_header}", None)


async def check_replay(memory: ReplayMemory, signed: SignedRequest, operation: Operation) -> None:
    """``AuthError`` (``auth.replayed``) if ``operation``'s :class:`ReplayRule` refuses these
    headers, given the operation they were first used for."""
    rule = replay_rule(operation)
    if rule is ReplayRule.REPEATABLE:
        return
    first = await memory.first_use(signed.system_id, signed.hash_header, operation)
    if first is None or (rule is ReplayRule.SAME_OPERATION and first is operation):
        return
    raise AuthError(
        f"these signed headers were already used (for {first.value})", code="auth.replayed"
    )


class HeaderAuthenticator:
    """HMAC, the per-system timestamp window, and the replay rule of each call."""

    def __init__(
        self, lookup: Callable[[str], SystemCredentials | None], replays: ReplayMemory | None = None
    ) -> None:
        self._lookup = lookup
        self._replays: ReplayMemory = replays or ReplayCache()

    async def authenticate(
        self,
        headers: HeaderSource,
        operation: Operation,
        now: datetime | None = None,
        admit: Callable[[SignedRequest], None] | None = None,
    ) -> SignedRequest:
        """The verified call; ``admit`` (e.g. a network check) may refuse it before the replay
        memory records its headers."""
        signed, credentials = verify_signature(headers, self._lookup)
        check_timestamp(signed, credentials.timestamp_window_s, now or datetime.now(PLATFORM_TZ))
        if admit is not None:
            admit(signed)
        await check_replay(self._replays, signed, operation)
        return signed

    async def release(self, signed: SignedRequest, operation: Operation) -> None:
        """The call failed on our side (retryable): its headers may be used again. The SDK
        retries with the very same headers, which would otherwise be refused for the life of
        its object."""
        if replay_rule(operation) is not ReplayRule.REPEATABLE:
            await self._replays.forget(signed.system_id, signed.hash_header)
