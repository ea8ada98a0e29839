"""Group commit: the concurrent intakes of one process share one write transaction.

One writer task per process (per ``DeliveryLog``) owns the intake writes: requests queue their
``IntakeWrite`` and wait for their own outcome. The writer takes what is queued, up to
``max_batch``; if that is less, it waits at most ``max_wait_s`` for more (0: never), so a lone
request is slowed by that wait at most. While one batch commits, the next one gathers, so under
load batches form without any wait. A batch is one transaction (``intake_batch.write_batch``): on
SQLite the writer takes the process's write lock once per batch, not once per request.

A request's outcome is its own: a duplicate with other bytes is that request's
``conflict.duplicate_document``; if the batch's transaction as a whole hits a constraint (a race
the batch SQL did not foresee), each write is retried on its own so that one bad request does
not fail its neighbours. An unavailable store fails the batch's requests (nothing was committed).

**Published marks.** After the broker confirmed a delivery's message, ``mark_published`` queues
its id: it is moved ``accepted -> queued`` (with its ``published`` event) by the next batch's
transaction, or, when no intake comes, by a transaction of its own after ``marks_delay_s``. So
the bookkeeping costs no transaction per request. The outbox rule stays as it was and covers the
gap: a delivery still ``accepted`` ``outbox_age_s`` after its last change was either never
confirmed (a nack, a timeout, a crash between commit and publish) or confirmed with the mark lost
in a crash before it was written; the relay republishes both. The second is a duplicate message
under the same delivery id, which the worker's idempotency absorbs (a delivered delivery is
never sent again; a push carries the same ``Idempotency-Key``). Marks still queued at
``aclose`` are written then.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from gateway.core.errors import ConflictError, LgspError, UnavailableError
from gateway.store.engine import Engines, run_transaction
from gateway.store.intake_batch import write_batch
from gateway.store.kept_connection import KeptConnection
from gateway.store.records import IntakeResult, IntakeWrite, Outcome

log = structlog.get_logger(__name__)

DEFAULT_MAX_BATCH = 64
DEFAULT_MAX_WAIT_S = 0.002
DEFAULT_MARKS_DELAY_S = 0.005


@dataclass(slots=True)
class _Queued:
    write: IntakeWrite
    answer: asyncio.Future[IntakeResult] = field(repr=False)


class GroupCommitter:
    """The intake writer of one ``DeliveryLog`` in one process (started on first use)."""

    def __init__(
        self,
        engines: Engines,
        new_id: Callable[[], str],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        marks_delay_s: float = DEFAULT_MARKS_DELAY_S,
        kept: KeptConnection | None = None,
    ) -> None:
        self._engines = engines
        self._kept = kept  # the writer's kept connection (``kept_connection``), if any
        self._new_id = new_id
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.marks_delay_s = marks_delay_s
        self._queue: deque[_Queued] = deque()
        self._marks: list[str] = []
        self._marks_due = False  # marks waited marks_delay_s for an intake: write them anyway
        self._marks_timer: asyncio.TimerHandle | None = None
        self._wake: asyncio.Event | None = None
        self._more: asyncio.Future[None] | None = None  # a gathering batch's wait
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0  # transactions written (for tests and figures)
        self.largest_batch = 0

    async def record(self, write: IntakeWrite) -> IntakeResult:
        """Queue ``write`` into the next batch; its result, or its own error, once committed."""
        wake = self._started()
        answer: asyncio.Future[IntakeResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(write, answer))
        more = self._more
        if more is not None and len(self._queue) >= self.max_batch and not more.done():
            more.set_result(None)  # the gathering batch is full: its wait is over
        wake.set()
        return await answer

    def mark_published(self, delivery_ids: Sequence[str]) -> None:
        """Record, in a coming transaction, that the broker confirmed these deliveries."""
        self._started()
        self._marks.extend(delivery_ids)
        if self._marks and self._marks_timer is None:
            self._marks_timer = asyncio.get_running_loop().call_later(
                self.marks_delay_s, self._marks_waited
            )

    def _marks_waited(self) -> None:
        self._marks_timer = None
        self._marks_due = True
        if self._wake is not None:
            self._wake.set()

    async def aclose(self) -> None:
        """Stop the writer; queued marks are written first (best effort: the outbox covers)."""
        task, self._task = self._task, None
        if self._marks_timer is not None:
            self._marks_timer.cancel()
            self._marks_timer = None
        if task is None or self._loop is not asyncio.get_running_loop():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._marks:
            marks, self._marks = self._marks, []
            try:
                await self._transaction([], marks)
            except LgspError as exc:
                log.warning("published_marks_lost", deliveries=len(marks), code=exc.code)
        self._fail_queued(UnavailableError("the delivery log is closing", code="unavailable.store"))

    def _started(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._task is None or self._loop is not loop or self._wake is None:
            self._loop, self._wake = loop, asyncio.Event()
            self._task = loop.create_task(self._run(self._wake), name="group-commit")
        return self._wake

    async def _run(self, wake: asyncio.Event) -> None:
        while True:
            await wake.wait()
            wake.clear()
            if not self._queue and not (self._marks_due and self._marks):
                continue
            if self._queue and len(self._queue) < self.max_batch and self.max_wait_s > 0:
                await self._gather_more()
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch))]
            batch = [q for q in batch if not q.answer.done()]  # cancelled while queued
            marks, self._marks, self._marks_due = self._marks, [], False
            if self._marks_timer is not None:
                self._marks_timer.cancel()
                self._marks_timer = None
            try:
                await self._commit(batch, marks)
            except asyncio.CancelledError:  # closing: these requests are told, not left waiting
                self._fail(
                    batch, UnavailableError("the delivery log is closing", code="unavailable.store")
                )
                self._marks[:0] = marks
                raise
            if self._queue:
                wake.set()

    async def _gather_more(self) -> None:
        """Wait ``max_wait_s`` for more requests, or less if the batch fills (``record`` ends the
        wait then): one timer and one wake-up per batch, not a wake-up and a new wait at each
        request (``wait_for``'s task, timer and cancellation cost a batch of one request about
        a tenth of its CPU)."""
        loop = asyncio.get_running_loop()
        more = self._more = loop.create_future()
        timer = loop.call_later(self.max_wait_s, _settle, more)
        try:
            await more
        finally:
            timer.cancel()
            self._more = None

    async def _commit(self, batch: list[_Queued], marks: list[str]) -> None:
        try:
            outcomes = await self._transaction([q.write for q in batch], marks)
        except ConflictError as exc:
            if exc.code != "conflict.constraint" or len(batch) <= 1:
                self._fail(batch, exc)
                return
            log.warning("group_commit_split", requests=len(batch), error=exc.message)
            for queued in batch:
                await self._commit([queued], [])
            return
        except LgspError as exc:
            self._fail(batch, exc)
            if marks:  # the marks were not written: keep them for a later transaction
                self._marks[:0] = marks
                self.mark_published(())
            return
        except Exception as exc:  # a bug must fail these requests, not hang them or the writer
            log.exception("group_commit_failed", requests=len(batch))
            self._fail(
                batch,
                UnavailableError(f"the intake writer failed: {exc!r}", code="unavailable.store"),
            )
            return
        for queued, outcome in zip(batch, outcomes, strict=True):
            if queued.answer.done():
                continue
            if isinstance(outcome, LgspError):  # this request's own refusal
                queued.answer.set_exception(outcome)
            else:
                queued.answer.set_result(outcome)

    async def _transaction(self, writes: list[IntakeWrite], marks: list[str]) -> list[Outcome]:
        new_id = self._new_id
        outcomes = await run_transaction(
            self._engines.writer, lambda conn: write_batch(conn, writes, marks, new_id), self._kept
        )
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(writes))
        return outcomes

    @staticmethod
    def _fail(batch: Sequence[_Queued], error: BaseException) -> None:
        for queued in batch:
            if not queued.answer.done():
                queued.answer.set_exception(error)

    def _fail_queued(self, error: BaseException) -> None:
        queued, self._queue = list(self._queue), deque()
        self._fail(queued, error)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
