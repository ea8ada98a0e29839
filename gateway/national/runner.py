"""The worker role's national tasks: the agency sync and the poller, when ``[national]`` is enabled.

Two tasks run from start until :meth:`NationalRunner.stop`: the poller (every
``poll_interval_s``, backing off while the platform is down) and the agency sync (at once, then
every ``sync_interval_s``, and on demand when the poller meets a sender the directory does not
know; a platform that is down only delays it). Outbound routing needs no sync: recipients missing
from the directory fall back to the national platform. Packages are injected through the
``Intake`` the worker role builds for them (``build_intake``, national fallback on).
"""

from __future__ import annotations

import asyncio

import structlog

from adapters.national.client import NationalClient
from gateway.core.loops import supervise
from gateway.core.metrics import Metrics
from gateway.core.settings import Settings
from gateway.intake.pipeline import Intake
from gateway.national.agency_sync import AgencySync, SyncReport
from gateway.national.connection import national_client
from gateway.national.poller import NationalPoller
from gateway.national.received import ReceivedLog
from gateway.store import DeliveryLog
from gateway.store.participants import StoredDirectory

log = structlog.get_logger(__name__)

STOP_GRACE_S = 10.0


class NationalRunner:
    """Owns the national client, the ``national_inbox`` log and the two tasks."""

    def __init__(
        self,
        settings: Settings,
        *,
        directory: StoredDirectory,
        delivery_log: DeliveryLog,
        intake: Intake,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self._directory = directory
        self._delivery_log = delivery_log
        self._intake = intake
        self._metrics = metrics
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: NationalClient | None = None
        self._received: ReceivedLog | None = None
        self._sync_lock = asyncio.Lock()
        self.sync: AgencySync | None = None
        self.poller: NationalPoller | None = None

    async def start(self) -> None:
        conf = self.settings.national
        self._client = national_client(conf)
        self._received = ReceivedLog(self._delivery_log.engines)
        self.sync = AgencySync(self._client, self._directory)
        self.poller = NationalPoller(
            client=self._client,
            intake=self._intake,
            directory=self._directory.holder,
            received=self._received,
            metrics=self._metrics,
            interval_s=conf.poll_interval_s,
            max_backoff_s=conf.max_backoff_s,
            on_unknown_sender=self.sync_now,
            concurrency=conf.poll_concurrency,
        )
        self._tasks = [
            asyncio.create_task(self.poller.run(self._stop), name="national-poller"),
            asyncio.create_task(self._sync_forever(), name="national-agency-sync"),
        ]
        log.info("national_started", endpoint=conf.endpoint, system_id=conf.system_id)

    async def sync_now(self) -> SyncReport:
        """One agency sync (never two at once); errors propagate."""
        assert self.sync is not None, "start() first"
        async with self._sync_lock:
            return await self.sync.run_once()

    async def _sync_forever(self) -> None:
        interval_s = self.settings.national.sync_interval_s
        await supervise(
            "national-agency-sync",
            self.sync_now,
            interval_s=interval_s,
            max_backoff_s=interval_s,
            loops=self._metrics.loops,
            stop=self._stop,
        )

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Let the current round finish (cancelled after ``grace_s``), then close everything.

        A round cut short loses nothing: what was not acknowledged is listed again next time.
        """
        self._stop.set()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=grace_s)
            for task in late:
                task.cancel()
            for outcome in await asyncio.gather(*self._tasks, return_exceptions=True):
                if isinstance(outcome, Exception):  # supervised loops do not raise: a bug
                    log.error("national_task_failed", error=repr(outcome))
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
        if self._received is not None:
            await self._received.aclose()
        log.info("national_stopped")
