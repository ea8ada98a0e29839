"""Group work of concurrent tasks: what is submitted while one call runs goes into the next one.

Rules of a ``Batcher(run, max_size=n, wait_s=w, coming=c)``:

    submit(item) while no call runs   -> a call starts with what was submitted meanwhile: once
                                         n items wait, or once c() says no more item is on its
                                         way, or after w seconds (w = 0, the default: at once,
                                         a lone item waits for nothing)
    submit(item) while a call runs    -> the item waits; when the call returns, the next call
                                         takes every waiting item, at most n, in order (after
                                         the same wait, ended by the same three)
    poke()                            -> c() is asked again (its caller saw it change)
    run returns results               -> result i goes to the submitter of item i
    run raises an Exception           -> every submitter of that call gets the exception
    a submitter is cancelled          -> its item still runs (its result is dropped)

So under load the calls grow to the size of what arrived meanwhile (group commit), and calls
never overlap. The wait matters where calls are quick: without it a call's batch is only what
arrived during the previous call, so a faster call makes smaller batches and more calls, each
with its fixed cost (the worker's: a store hop or three and the broker acks; measured in
docs/performance.md, "Issue 8, round 7"). ``coming`` ends the wait as soon as waiting longer
cannot make the batch larger: the worker counts the deliveries that may still reach a stage
(none, once every message it holds has reached it), so a wait is spent only where more can
come (docs/performance.md, "Issue 8, round 8"). The calls run in their own task with an empty
``contextvars`` context, so the log context of whichever task submitted first does not leak
into them.
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
        self,
        run: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        max_size: int,
        wait_s: float = 0.0,
        coming: Callable[[], int] | None = None,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        if wait_s < 0:
            raise ValueError("wait_s must not be negative")
        self._run = run
        self._max_size = max_size
        self._wait_s = wait_s
        self._coming = coming  # how many more items are on their way (None: unknown)
        self._full: asyncio.Event | None = None  # set once the batch is ready (during a wait)
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        self.sizes: Counter[int] = Counter()  # how many calls had how many items

    async def submit(self, item: T) -> R:
        """Run ``item`` with the next call; its result (or the call's exception)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        self.poke()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._calls(), context=contextvars.Context())
        return await future

    def poke(self) -> None:
        """End a wait that can no longer make the batch larger (see ``coming``)."""
        if self._full is not None and self._ready():
            self._full.set()

    def _ready(self) -> bool:
        """Whether the waiting items make a batch now: ``max_size`` of them, or all that come."""
        if len(self._waiting) >= self._max_size:
            return True
        return self._coming is not None and self._coming() <= 0

    async def aclose(self) -> None:
        """Cancel the running call, if any (its submitters get ``CancelledError``)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _gather(self) -> None:
        """Wait up to ``wait_s`` for ``max_size`` items, or for all that come."""
        self._full = asyncio.Event()
        try:
            async with asyncio.timeout(self._wait_s):
                await self._full.wait()
        except TimeoutError:
            pass
        finally:
            self._full = None

    async def _calls(self) -> None:
        while self._waiting:
            if self._wait_s > 0 and not self._ready():
                try:
                    await self._gather()
                except BaseException:  # cancelled while gathering: nobody is left waiting
                    for _, future in self._waiting:
                        future.cancel()
                    self._waiting.clear()
                    raise
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
