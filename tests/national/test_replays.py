"""The southbound's durable replay memory (``southbound_replays``) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from adapters.national.protocol import Operation
from gateway.national.replays import StoredReplayMemory
from gateway.store import DeliveryLog

ACK, FETCH = Operation.UPDATE_STATUS, Operation.GET_EDOC


async def test_a_hash_header_is_remembered_per_system_with_its_first_operation(
    log: DeliveryLog,
) -> None:
    memory = StoredReplayMemory(lambda: log.engines)
    assert await memory.first_use("sys-a", "h1", ACK) is None
    assert await memory.first_use("sys-a", "h1", FETCH) is ACK
    assert await memory.first_use("sys-a", "h1", ACK) is ACK
    assert await memory.first_use("sys-b", "h1", FETCH) is None
    restarted = StoredReplayMemory(lambda: log.engines)  # another process, or after a restart
    assert await restarted.first_use("sys-a", "h1", FETCH) is ACK
    await restarted.forget("sys-a", "h1")  # its call failed on our side
    assert await memory.first_use("sys-a", "h1", ACK) is None
    assert await memory.first_use("sys-b", "h1", ACK) is FETCH  # other systems' kept


async def test_racing_first_uses_of_one_header_have_exactly_one_winner(log: DeliveryLog) -> None:
    processes = [StoredReplayMemory(lambda: log.engines) for _ in range(4)]
    results = await asyncio.gather(*(m.first_use("sys-a", "race", ACK) for m in processes))
    assert results.count(None) == 1
    assert results.count(ACK) == 3


async def test_expired_entries_are_a_first_use_again_and_are_cleaned_up(
    log: DeliveryLog,
) -> None:
    keep = StoredReplayMemory(lambda: log.engines, retention_s=3600)
    assert await keep.first_use("sys-a", "kept", ACK) is None
    brief = StoredReplayMemory(lambda: log.engines, retention_s=0.0, cleanup_interval_s=3600)
    for name in ("x", "y", "z"):
        assert await brief.first_use("sys-a", name, ACK) is None
    assert await brief.count() == 4
    assert await brief.first_use("sys-a", "x", FETCH) is None  # expired: forgotten
    cleaner = StoredReplayMemory(lambda: log.engines, retention_s=3600)
    assert await cleaner.first_use("sys-a", "new", ACK) is None  # its first write cleans up
    assert await cleaner.count() == 2  # "kept" and "new"
    assert await cleaner.first_use("sys-a", "kept", FETCH) is ACK
