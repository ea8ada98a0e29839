"""The worker role: one worker per local delivery method, sharing a broker, a log and adapters."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from adapters.base import Adapter
from gateway.broker import Broker
from gateway.core.directory import DirectoryHolder
from gateway.core.metrics import Metrics
from gateway.core.settings import Settings
from gateway.delivery.handler import DeliveryHandler
from gateway.delivery.worker import Worker, WorkerRules
from gateway.dispatch.sweep import Sweeper, SweepRules
from gateway.national.runner import NationalRunner
from gateway.service.components import (
    build_dispatcher,
    build_intake,
    open_directory,
    watch_directory,
)
from gateway.service.registry import build_adapters
from gateway.store import DeliveryLog
from gateway.store.participants import StoredDirectory
from gateway.store.sweep import SweepLog

log = structlog.get_logger(__name__)


class WorkerGroup:
    """Starts the workers of every method that has an adapter; ``stop()`` drains them all."""

    def __init__(
        self, settings: Settings, *, metrics: Metrics | None = None, drain_timeout_s: float = 30.0
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.rules = WorkerRules(
            delays_s=tuple(settings.broker.retry_delays_s),
            max_tries=settings.broker.max_tries,
            prefetch=settings.broker.prefetch,
            drain_timeout_s=drain_timeout_s,
            batch_wait_s=settings.delivery.batch_wait_ms / 1000,
        )
        self._workers: list[Worker] = []
        self._adapters: dict[str, Adapter] = {}
        self._broker: Broker | None = None
        self._log: DeliveryLog | None = None
        self._watch: asyncio.Task[None] | None = None
        self._sweep: asyncio.Task[None] | None = None
        self.sweeper: Sweeper | None = None
        self.national: NationalRunner | None = None

    @property
    def workers(self) -> tuple[Worker, ...]:
        """The running workers, one per method."""
        return tuple(self._workers)

    async def start(self) -> None:
        conf = self.settings.broker
        store = self.settings.store
        self._log = delivery_log = await DeliveryLog.open(
            store.url, batch_max=store.batch_max, batch_wait_s=store.batch_wait_ms / 1000
        )
        stored = StoredDirectory(lambda: delivery_log.engines)
        directory: DirectoryHolder = await open_directory(self.settings, stored)
        self._broker = await Broker.connect(
            conf.urls,
            prefix=conf.prefix,
            retry_delays_s=conf.retry_delays_s,
            loops=self.metrics.loops,
        )
        await self._broker.declare_topology()
        self._adapters = build_adapters(self.settings)
        handler = DeliveryHandler(
            delivery_log=self._log,
            directory=directory,
            adapters=self._adapters,
            metrics=self.metrics,
            max_tries=self.rules.max_tries,
            refresh_directory=stored.refresh,
            delay_for=self.rules.delay_for,
        )
        for method in self._adapters:
            worker = Worker(self._broker, method, self.rules)
            await worker.start(handler)
            self._workers.append(worker)
        self._watch = asyncio.create_task(
            watch_directory(stored, loops=self.metrics.loops), name="directory-watch"
        )
        self._start_sweep(self._broker, delivery_log)
        if self.settings.national.enabled:  # the poller and the agency sync
            intake = build_intake(
                self.settings,
                directory=directory,
                delivery_log=self._log,
                dispatcher=build_dispatcher(self.settings, self._broker, self._log),
                metrics=self.metrics,
                national_fallback=True,
            )
            self.national = NationalRunner(
                self.settings,
                directory=stored,
                delivery_log=self._log,
                intake=intake,
                metrics=self.metrics,
            )
            await self.national.start()
        log.info("workers_started", methods=list(self._adapters))

    def _start_sweep(self, broker: Broker, delivery_log: DeliveryLog) -> None:
        """The ``delivery-sweep`` loop over this group's methods (``[delivery]``; 0: none)."""
        conf = self.settings.delivery
        if conf.sweep_interval_s <= 0 or not self._adapters:
            return
        self.sweeper = Sweeper(
            broker=broker,
            sweep_log=SweepLog(delivery_log.engines),
            dispatcher=build_dispatcher(self.settings, broker, delivery_log),
            rules=SweepRules(
                grace_s=conf.sweep_grace_s,
                delays_s=self.rules.delays_s,
                methods=frozenset(self._adapters),
            ),
            metrics=self.metrics,
        )
        self._sweep = asyncio.create_task(
            self.sweeper.run(interval_s=conf.sweep_interval_s, loops=self.metrics.loops),
            name="delivery-sweep",
        )

    async def stop(self) -> None:
        """Drain every worker, then release adapters, the broker and the store."""
        if self.national is not None:
            await self.national.stop()
        await _cancel(self._sweep)  # first: it publishes
        await asyncio.gather(*(w.stop() for w in self._workers))
        await _cancel(self._watch)
        for adapter in self._adapters.values():
            await adapter.aclose()
        if self._broker is not None:
            await self._broker.aclose()
        if self._log is not None:
            await self._log.aclose()
        log.info("workers_stopped", outcomes={w.method: dict(w.outcomes) for w in self._workers})


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
