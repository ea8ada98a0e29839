"""The national poller: received packages (``edoc``, ``status``) into the local bus, acknowledged.

One round, per message type (``edoc`` first, then ``status``, one after the other)::

    getReceivedEdocList -> national_inbox rows of the listed docIds (one read)
    -> for each docId, up to ``concurrency`` docIds at once (started in the platform's order;
       each docId goes through its steps in order):
        already in national_inbox?  -> only repeat the updateStatus (the last ack was lost)
        getEdoc -> Intake.submit(caller=national participant), which writes the docId's
                   national_inbox row in the intake's own transaction (refused: a row of its own)
        -> updateStatus done (recorded, or a duplicate of what was) | fail (refused for good)
    -> national_inbox acked_at of every docId acknowledged in the round (one write)

Concurrency changes nothing below: each docId is acknowledged only after its own row, and two
docIds carrying the same package meet in intake's deduplication, which holds for concurrent
submissions too (both get the one document). The rows of refused docIds are written together
(``gateway.delivery.batching``: what arrives while one write runs goes into the next one). The
acked mark only spares a repeated ``updateStatus`` after a crash (the platform no longer lists an
acknowledged docId), so one write per round carries it.

Rounds: a round that acknowledged something is followed at once by the next (at most
``MAX_ROUNDS_AT_ONCE`` in a row): what arrived meanwhile does not wait ``interval_s``, which is
the pause after a round that found nothing to acknowledge.

Who speaks: packages arrive with the *national participant* (the directory's enabled participant
of kind ``national``, e.g. ``000.00.00.G22``) as the caller. For these packages alone it may speak
for any sender (``may_speak_for = ("*",)`` on an in-memory copy): the signature, its trust chain
and its binding to the sender's OrganId are what vouch for the sender. The directory entry itself
is unchanged, so the national participant's own API credentials (and its ACL) gain nothing.
A sender that is not in the directory triggers one agency sync per round, then one more try
(concurrent docIds of that round wait for that one sync, then try again too).

Not lost, not repeated: a docId is acknowledged only after intake recorded it durably (or refused
it for good); a crash in between makes the platform list it again, and the ``national_inbox`` row
or intake's deduplication (same sender, DocumentId and bytes) keeps it from being injected twice.
Refused packages (bad signature, unknown sender, conflicting duplicate…) are acknowledged
``fail``. When the platform or our store/broker is unavailable the round stops (no further docId is
started; those in flight finish) and the next one waits ``interval_s`` doubled per failed
round, up to ``max_backoff_s``. Another error leaves that
docId on the platform for the next round (logged). ``national_poll_lag_s`` is the age of the last
complete round.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import structlog

from adapters.national.client import NationalClient, PlatformRefusedError
from adapters.national.protocol import AckStatus, MessageType
from adapters.national.records import ReceivedItem
from gateway.core.directory import DirectoryHolder, Participant
from gateway.core.errors import ConfigError, ForbiddenError, InputError, LgspError, UnavailableError
from gateway.core.loops import supervise
from gateway.core.metrics import Metrics
from gateway.delivery.batching import Batcher
from gateway.edxml.formats import PackageFormat
from gateway.intake.pipeline import Intake, IntakeOutcome
from gateway.national.received import NewProcessedDoc, ProcessedDoc, ReceivedLog
from gateway.store.records import NationalDoc

log = structlog.get_logger(__name__)

SyncHook = Callable[[], Awaitable[object]]
LOOP_NAME = "national-poller"
GONE_CODES = frozenset({"national.no_such_doc"})  # acknowledged or withdrawn meanwhile
MAX_WRITE_BATCH = 64  # national_inbox rows of refused packages written in one transaction
MAX_ROUNDS_AT_ONCE = 50  # busy rounds in a row before the loop records a success and pauses


@dataclass
class PollReport:
    """What one round did, by docId."""

    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)  # updateStatus accepted (or already gone)


def inbound_caller(directory: DirectoryHolder) -> Participant:
    """The national participant, allowed to speak for any sender (for polled packages only)."""
    national = directory.current.national()
    if national is None:
        raise ConfigError(
            "the directory has no enabled participant of kind 'national'",
            code="config.national_participant",
        )
    return replace(national, may_speak_for=("*",))


class NationalPoller:
    """Polls the platform with ``client`` and injects what it gets through ``intake``."""

    def __init__(
        self,
        *,
        client: NationalClient,
        intake: Intake,
        directory: DirectoryHolder,
        received: ReceivedLog,
        metrics: Metrics,
        interval_s: float,
        max_backoff_s: float,
        on_unknown_sender: SyncHook | None = None,
        concurrency: int = 16,
    ) -> None:
        if concurrency < 1:
            raise ConfigError("the poller's concurrency must be at least 1", code="config.invalid")
        self._client = client
        self._intake = intake
        self._directory = directory
        self._received = received
        self._interval_s = interval_s
        self._max_backoff_s = max(max_backoff_s, interval_s)
        self._on_unknown_sender = on_unknown_sender
        self._round_sync: asyncio.Future[object] | None = None  # this round's agency sync
        self._concurrency = concurrency
        self._records = Batcher(received.record_many, max_size=MAX_WRITE_BATCH)
        self._metrics = metrics
        self._health = metrics.loops.register(LOOP_NAME, interval_s)
        metrics.national_poller_started()

    @property
    def failed_rounds(self) -> int:
        """Rounds failed in a row (0 after a success)."""
        return self._health.consecutive_failures

    def next_delay_s(self) -> float:
        """The pause before the next round: doubled per failed round, capped."""
        if self.failed_rounds == 0:
            return self._interval_s
        return min(self._interval_s * 2.0**self.failed_rounds, self._max_backoff_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set (a supervised loop: failures back off, never end it)."""
        await supervise(
            LOOP_NAME,
            lambda: self._rounds(stop),
            interval_s=self._interval_s,
            max_backoff_s=self._max_backoff_s,
            loops=self._metrics.loops,
            stop=stop,
        )

    async def _rounds(self, stop: asyncio.Event) -> None:
        """Rounds one after another while each acknowledges something (at most
        ``MAX_ROUNDS_AT_ONCE``, and none once ``stop`` is set): what arrived during a busy round
        does not wait ``interval_s``."""
        for _ in range(MAX_ROUNDS_AT_ONCE):
            if not (await self.poll_once()).acked or stop.is_set():
                return

    async def poll_once(self) -> PollReport:
        """One round over both message types; raises ``UnavailableError`` when it had to stop."""
        report = PollReport()
        started = time.monotonic()
        self._round_sync = None
        for kind in (MessageType.EDOC, MessageType.STATUS):
            items = await self._client.get_received_edoc_list(kind)
            await self._process_all(items, kind, report)
        self._metrics.national_poll_succeeded()
        if report.done or report.failed:
            log.info(
                "national_polled",
                done=len(report.done),
                failed=len(report.failed),
                deferred=len(report.deferred),
                round_s=round(time.monotonic() - started, 3),
            )
        return report

    async def _process_all(
        self, items: Sequence[ReceivedItem], kind: MessageType, report: PollReport
    ) -> None:
        """Process ``items``, ``concurrency`` at a time; after a failure start no more of them,
        let those in flight finish, mark the acknowledged ones (one write), then raise the first
        failure."""
        if not items:
            return
        known = await self._received.get_many([item.doc_id for item in items])
        slots = asyncio.Semaphore(self._concurrency)
        failures: list[Exception] = []
        acked_before = len(report.acked)

        async def one(item: ReceivedItem) -> None:
            async with slots:
                if failures:
                    return  # left on the platform for the next round
                # each docId runs in a task of its own (gather): what it and intake bind to the
                # log context stays in that task
                structlog.contextvars.bind_contextvars(national_doc_id=item.doc_id)
                try:
                    await self._process(item, kind, report, known.get(item.doc_id))
                except Exception as exc:  # re-raised below, once the others are done
                    failures.append(exc)

        await asyncio.gather(*(one(item) for item in items))
        if len(report.acked) > acked_before:  # a lost mark costs one repeated updateStatus
            await self._received.mark_acked_many(report.acked[acked_before:])
        if failures:
            raise failures[0]

    async def _process(
        self,
        item: ReceivedItem,
        kind: MessageType,
        report: PollReport,
        processed: ProcessedDoc | None,
    ) -> None:
        if processed is None:
            processed = await self._inject(item, kind)
        if processed is None:
            report.deferred.append(item.doc_id)
            return
        if processed.acked_at is None and await self._acknowledge(processed):
            report.acked.append(item.doc_id)
        (report.done if processed.outcome is AckStatus.DONE else report.failed).append(item.doc_id)

    async def _inject(self, item: ReceivedItem, kind: MessageType) -> ProcessedDoc | None:
        try:
            data = await self._client.get_edoc(item.doc_id)
        except PlatformRefusedError as exc:
            log.warning("national_doc_unavailable", doc_id=item.doc_id, error=exc.message)
            return None
        try:
            outcome = await self._submit(data, NationalDoc(item.doc_id, kind.value))
        except UnavailableError:
            raise
        except InputError as exc:
            log.warning(
                "national_doc_refused", doc_id=item.doc_id, code=exc.code, error=exc.message
            )
            return await self._records.submit(
                NewProcessedDoc(
                    item.doc_id, kind.value, AckStatus.FAIL, None, f"{exc.code}: {exc.message}"
                )
            )
        except LgspError as exc:
            log.error("national_doc_deferred", doc_id=item.doc_id, code=exc.code, error=exc.message)
            return None
        # intake wrote the docId's row in its own transaction (``NationalDoc``)
        detail = "recorded" if outcome.created else "duplicate of a recorded document"
        return ProcessedDoc(
            item.doc_id,
            kind.value,
            AckStatus.DONE,
            outcome.document.id,
            detail,
            processed_at=datetime.now(UTC),
            acked_at=None,
        )

    async def _submit(self, data: bytes, national: NationalDoc) -> IntakeOutcome:
        synced_before = self._round_sync is not None and self._round_sync.done()
        try:
            return await self._intake.submit(
                inbound_caller(self._directory), data, PackageFormat.XML, national=national
            )
        except ForbiddenError as exc:
            if (
                exc.code != "acl.unknown_sender" or self._on_unknown_sender is None or synced_before
            ):  # this try already saw the round's sync
                raise
        if self._round_sync is None:  # the first docId of the round to meet an unknown sender
            self._round_sync = asyncio.ensure_future(self._on_unknown_sender())
        await asyncio.shield(self._round_sync)  # the others wait for the same sync
        return await self._intake.submit(
            inbound_caller(self._directory), data, PackageFormat.XML, national=national
        )

    async def _acknowledge(self, processed: ProcessedDoc) -> bool:
        """``updateStatus``; False if the platform refused it (acknowledged again next round)."""
        try:
            await self._client.update_status(processed.doc_id, processed.outcome)
        except PlatformRefusedError as exc:
            if exc.error_code not in GONE_CODES:
                log.warning("national_ack_refused", doc_id=processed.doc_id, error=exc.message)
                return False
        return True
