"""Group work of concurrent tasks: what is submitted while one call runs goes into the next one.

Rules of a ``Batcher(run, max_size=n)``:

    submit(item) while no call runs   -> a call starts at once with [item] (a lone item waits
                                         for nothing)
    submit(item) while a call runs    -> the item waits; when the call returns, the next call
                                         takes every waiting item, at most n, in order
    run returns results               -> result i goes to the submitter of item i
    run raises an Exception           -> every submitter of that call gets the exception
    a submitter is cancelled          -> its item still runs (its result is dropped)

So under load the calls grow to the size of what arrived meanwhile (group commit), and calls
never overlap. The calls run in their own task with an empty ``contextvars`` context, so the
log context of whichever task submitted first does not leak into them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Calls ``run`` with the items that ``submit`` collected, one call at a time."""

    def __init__(
        self, run: Callable[[Sequence[T]], Awaitable[Sequence[R]]], *, max_size: int
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._run = run
        self._max_size = max_size
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        self.sizes: Counter[int] = Counter()  # how many calls had how many items

    async def submit(self, item: T) -> R:
        """Run ``item`` with the next call; its result (or the call's exception)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._calls(), context=contextvars.Context())
        return await future

    async def aclose(self) -> None:
        """Cancel the running call, if any (its submitters get ``CancelledError``)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _calls(self) -> None:
        while self._waiting:
            batch = self._waiting[: self._max_size]
            del self._waiting[: self._max_size]
            self.sizes[len(batch)] += 1
            try:
                results = await self._run([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{len(results)} results for {len(batch)} items")
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException:
                for _, future in [*batch, *self._waiting]:
                    future.cancel()
                self._waiting.clear()
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
