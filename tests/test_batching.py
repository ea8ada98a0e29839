"""``Batcher`` (the worker's batch check and batch commit): what joins a call, and the wait for a
fuller batch (``wait_s``), on a real event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.delivery.batching import Batcher


class Calls:
    """The ``run`` of a batcher: records each call's items and answers each item doubled."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    async def run(self, items: Sequence[int]) -> list[int]:
        self.calls.append(list(items))
        await asyncio.sleep(0.01)
        return [2 * i for i in items]


async def test_without_a_wait_a_lone_item_runs_at_once_and_later_ones_join_the_next_call() -> None:
    calls = Calls()
    batcher: Batcher[int, int] = Batcher(calls.run, max_size=8)
    first = asyncio.ensure_future(batcher.submit(0))
    await asyncio.sleep(0.005)  # its call started at once and runs
    assert await asyncio.gather(*(batcher.submit(i) for i in range(1, 5))) == [2, 4, 6, 8]
    assert await first == 0
    assert calls.calls == [[0], [1, 2, 3, 4]]


async def test_with_a_wait_what_arrives_meanwhile_joins_one_call() -> None:
    calls = Calls()
    batcher: Batcher[int, int] = Batcher(calls.run, max_size=8, wait_s=0.05)

    async def later(i: int) -> int:
        await asyncio.sleep(0.005 * i)
        return await batcher.submit(i)

    assert await asyncio.gather(*(later(i) for i in range(5))) == [0, 2, 4, 6, 8]
    assert calls.calls == [[0, 1, 2, 3, 4]]
    assert batcher.sizes == {5: 1}


async def test_a_full_batch_does_not_wait_and_a_lone_item_waits_at_most_the_wait() -> None:
    calls = Calls()
    slow: Batcher[int, int] = Batcher(calls.run, max_size=4, wait_s=30.0)
    async with asyncio.timeout(5):  # a full batch runs at once, long before 30 s
        assert await asyncio.gather(*(slow.submit(i) for i in range(4))) == [0, 2, 4, 6]
    assert calls.calls == [[0, 1, 2, 3]]

    lone: Batcher[int, int] = Batcher(calls.run, max_size=4, wait_s=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await lone.submit(7) == 14
    assert 0.04 <= loop.time() - started < 5
    assert calls.calls[-1] == [7]


async def test_closing_while_a_batch_waits_cancels_its_submitters_instead_of_leaving_them() -> None:
    calls = Calls()
    batcher: Batcher[int, int] = Batcher(calls.run, max_size=4, wait_s=30.0)
    waiting = [asyncio.ensure_future(batcher.submit(i)) for i in range(2)]
    await asyncio.sleep(0.01)
    await batcher.aclose()
    done, _ = await asyncio.wait(waiting, timeout=5)
    assert len(done) == 2
    assert all(f.cancelled() for f in waiting)
    assert calls.calls == []


def test_a_negative_wait_is_refused() -> None:
    with pytest.raises(ValueError, match="wait_s"):
        Batcher(Calls().run, max_size=4, wait_s=-1)


async def test_a_wait_ends_once_nothing_more_is_coming() -> None:
    """``coming`` says how many items are still on their way: the call runs once they are all
    in, not after ``wait_s``; and ``poke`` ends a wait when the count drops without a submit."""
    calls = Calls()
    on_their_way = [3]
    batcher: Batcher[int, int] = Batcher(
        calls.run, max_size=8, wait_s=30.0, coming=lambda: on_their_way[0]
    )

    async def arrives(i: int) -> int:
        await asyncio.sleep(0.005 * i)
        on_their_way[0] -= 1
        return await batcher.submit(i)

    async with asyncio.timeout(5):  # long before 30 s
        assert await asyncio.gather(*(arrives(i) for i in range(1, 4))) == [2, 4, 6]
    assert calls.calls == [[1, 2, 3]]

    on_their_way[0] = 2  # two more are announced; one arrives, the other turns away
    waiting = asyncio.ensure_future(batcher.submit(4))
    await asyncio.sleep(0.02)
    assert not waiting.done()  # it waits for the one still coming
    on_their_way[0] = 0
    batcher.poke()
    async with asyncio.timeout(5):
        assert await waiting == 8
    assert calls.calls == [[1, 2, 3], [4]]


async def test_while_more_is_coming_a_lone_item_still_waits_at_most_the_wait() -> None:
    calls = Calls()
    batcher: Batcher[int, int] = Batcher(calls.run, max_size=8, wait_s=0.05, coming=lambda: 5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await batcher.submit(1) == 2
    assert 0.04 <= loop.time() - started < 5
