"""``lgsp run``: serve the gateway and/or the workers until SIGTERM, then shut down gracefully.

Shutdown order: intake answers 503 + Retry-After for ``drain_grace_s``; the listener closes, the
connections it accepted last are still answered (503) for ``settle_s``, and in-flight requests
finish; workers stop consuming and finish their in-flight deliveries; then the broker and store
connections close. Nothing accepted is lost: what is not delivered stays queued.

Why the settle: aiohttp's ``pre_shutdown`` closes a connection by cancelling the future its
handler task waits on. A connection accepted in the last loop iterations before the listener
closed has no such future yet (its task has not run), so it is not closed; its task then waits
for a request that ``data_received`` drops (the connection is marked closing), and the runner
waits the whole ``shutdown_timeout_s`` for it while the client hangs (seen in
``tests/service/test_shutdown.py`` under load: 29 s of silence after the last delivery).
Closing the listener ourselves and letting those connections start first removes the window.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
from enum import StrEnum

import structlog
from aiohttp import web

from gateway.core.heap import settle_heap
from gateway.core.metrics import Metrics, serve_metrics
from gateway.core.settings import Settings
from gateway.service.app import create_app
from gateway.service.workers import WorkerGroup
from gateway.web.keys import LIFECYCLE

log = structlog.get_logger(__name__)


class Role(StrEnum):
    GATEWAY = "gateway"
    WORKER = "worker"
    ALL = "all"


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    http = settings.http
    if http.tls_cert is None or http.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(http.tls_cert, http.tls_key)
    if http.tls_client_ca is not None:
        context.load_verify_locations(http.tls_client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL  # API-key callers need no certificate
    return context


class Service:
    """The processes' parts for one role, started and stopped in the right order."""

    def __init__(
        self,
        settings: Settings,
        role: Role,
        *,
        drain_grace_s: float = 1.0,
        settle_s: float = 0.25,
        shutdown_timeout_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.role = role
        self.metrics = Metrics()
        self.drain_grace_s = drain_grace_s
        self.settle_s = settle_s
        self.shutdown_timeout_s = shutdown_timeout_s
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self._workers: WorkerGroup | None = None
        self._metrics_runner: web.AppRunner | None = None

    @property
    def workers(self) -> WorkerGroup | None:
        """The delivery workers (roles ``worker`` and ``all``), once started."""
        return self._workers

    async def start(self) -> None:
        if self.role in (Role.GATEWAY, Role.ALL):
            self.app = create_app(self.settings, metrics=self.metrics)
            self._runner = web.AppRunner(
                self.app,
                handle_signals=False,
                shutdown_timeout=self.shutdown_timeout_s,
                access_log=None,
            )
            await self._runner.setup()
            http = self.settings.http
            site = web.TCPSite(
                self._runner,
                http.host,
                http.port,
                ssl_context=_ssl_context(self.settings),
                reuse_port=True,
            )
            await site.start()
            log.info("gateway_listening", host=http.host, port=http.port)
        if self.role in (Role.WORKER, Role.ALL):
            self._workers = WorkerGroup(
                self.settings, metrics=self.metrics, drain_timeout_s=self.shutdown_timeout_s
            )
            await self._workers.start()
        conf = self.settings.metrics
        if conf.port is not None:
            self._metrics_runner = await serve_metrics(self.metrics, conf.host, conf.port)
            log.info("metrics_listening", host=conf.host, port=conf.port)

    async def stop(self) -> None:
        if self.app is not None and self._runner is not None:
            self.app[LIFECYCLE].draining = True
            log.info("gateway_draining", grace_s=self.drain_grace_s)
            await asyncio.sleep(self.drain_grace_s)
            for site in list(self._runner.sites):
                await site.stop()  # no new connections; the accepted ones get their 503
            await asyncio.sleep(self.settle_s)
            await self._runner.cleanup()
        if self._workers is not None:
            await self._workers.stop()
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
        log.info("stopped", role=self.role.value)


async def serve(settings: Settings, role: Role, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set), then shut down gracefully."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    service = Service(settings, role)
    try:
        await service.start()
        settle_heap()
        await stop.wait()
    finally:
        await service.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
