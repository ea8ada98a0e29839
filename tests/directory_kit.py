"""The participant directory as another process sees it: read or change it in a store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.core.directory import Directory, Participant
from gateway.store import DeliveryLog
from gateway.store.participants import StoredDirectory


@asynccontextmanager
async def directory_in(store_url: str) -> AsyncIterator[StoredDirectory]:
    """The store's directory through engines of its own (as a separate process would)."""
    log = await DeliveryLog.open(store_url)
    try:
        yield StoredDirectory(lambda: log.engines)
    finally:
        await log.aclose()


async def stored_directory(store_url: str) -> Directory:
    """The directory as the store holds it now."""
    async with directory_in(store_url) as stored:
        found = await stored.read()
    assert found is not None, "the store has no directory"
    return found[1]


async def change_directory(store_url: str, *changed: Participant) -> int:
    """Add or replace participants in the store, like another gateway's admin API; the version."""
    async with directory_in(store_url) as stored:
        await stored.save_many(changed, actor="test", action="participant.save")
        return stored.holder.version
