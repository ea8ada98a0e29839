"""``create_app(settings)``: the intake HTTP application, its routes and its resources."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from gateway.api import admin, documents, health, inbox
from gateway.api.middleware import request_context
from gateway.broker import Broker
from gateway.console.setup import setup_console
from gateway.core.directory import DirectoryHolder
from gateway.core.errors import LgspError
from gateway.core.loops import supervise
from gateway.core.metrics import Metrics
from gateway.core.settings import Settings
from gateway.dispatch.outbox import relay_forever
from gateway.evidence.components import build_checkpointer, checkpoint_forever
from gateway.national.southbound import setup_southbound
from gateway.service.components import (
    build_dispatcher,
    build_intake,
    delivery_methods,
    open_directory,
    watch_directory,
)
from gateway.store import DeliveryLog
from gateway.store.counters import Counters
from gateway.store.participants import StoredDirectory
from gateway.store.statistics import keep_statistics
from gateway.web.keys import (
    BROKER,
    DELIVERY_LOG,
    DIRECTORY,
    DISPATCHER,
    INTAKE,
    LIFECYCLE,
    METRICS,
    RATE_LIMITS,
    SETTINGS,
    STORED_DIRECTORY,
    Lifecycle,
)
from gateway.web.rate_limits import RateLimits

log = structlog.get_logger(__name__)
QUEUE_DEPTHS_STOP_S = 5.0


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    store = app[SETTINGS].store
    app[DELIVERY_LOG] = delivery_log = await DeliveryLog.open(
        store.url, batch_max=store.batch_max, batch_wait_s=store.batch_wait_ms / 1000
    )
    app[RATE_LIMITS] = RateLimits.from_settings(
        Counters(lambda: delivery_log.engines), app[SETTINGS].rate_limit
    )
    yield
    await app[DELIVERY_LOG].aclose()


async def _broker_ctx(app: web.Application) -> AsyncIterator[None]:
    conf = app[SETTINGS].broker
    broker = await Broker.connect(
        conf.urls,
        prefix=conf.prefix,
        retry_delays_s=conf.retry_delays_s,
        loops=app[METRICS].loops,
    )
    try:
        await broker.declare_topology()
    except LgspError:
        await broker.aclose()
        raise
    app[BROKER] = broker
    yield
    await broker.aclose()


async def _intake_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[DISPATCHER] = build_dispatcher(settings, app[BROKER], app[DELIVERY_LOG])
    app[INTAKE] = build_intake(
        settings,
        directory=app[DIRECTORY],
        delivery_log=app[DELIVERY_LOG],
        dispatcher=app[DISPATCHER],
        metrics=app[METRICS],
        national_fallback=settings.national.enabled,
        delivery_methods=delivery_methods(settings),
    )
    yield


async def _cancel_on_cleanup(task: asyncio.Task[None]) -> AsyncIterator[None]:
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _relay_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(
        relay_forever(
            app[DISPATCHER],
            app[DELIVERY_LOG],
            interval_s=app[SETTINGS].broker.outbox_interval_s,
            older_than_s=app[SETTINGS].broker.outbox_age_s,
            loops=app[METRICS].loops,
        ),
        name="outbox-relay",
    )
    async for _ in _cancel_on_cleanup(task):
        yield


async def _statistics_ctx(app: web.Application) -> AsyncIterator[None]:
    """PostgreSQL: a growing table never runs without planner statistics (``store.statistics``)."""
    task = asyncio.create_task(
        keep_statistics(app[DELIVERY_LOG].engines, loops=app[METRICS].loops),
        name="store-statistics",
    )
    async for _ in _cancel_on_cleanup(task):
        yield


async def refresh_queue_depths(app: web.Application) -> None:
    """Read the queues' depths every ``metrics.refresh_s`` into the gauge: a scrape of /metrics
    then costs the broker nothing."""

    async def round_() -> None:
        app[METRICS].set_queue_depths(await app[BROKER].queue_depths())

    await supervise(
        "queue-depths", round_, interval_s=app[SETTINGS].metrics.refresh_s, loops=app[METRICS].loops
    )


async def _queue_depths_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(refresh_queue_depths(app), name="queue-depths")
    yield
    task.cancel()
    # A read cancelled mid-RPC closes its channel; a broker that does not answer must not hold
    # the shutdown (the broker connection closes right after).
    await asyncio.wait({task}, timeout=QUEUE_DEPTHS_STOP_S)


async def _directory_ctx(app: web.Application) -> AsyncIterator[None]:
    """The directory from the store (seeded from the file when the store has none), then kept
    current by the watch."""
    await open_directory(app[SETTINGS], app[STORED_DIRECTORY])
    task = asyncio.create_task(
        watch_directory(app[STORED_DIRECTORY], loops=app[METRICS].loops), name="directory-watch"
    )
    async for _ in _cancel_on_cleanup(task):
        yield


async def _checkpoint_ctx(app: web.Application) -> AsyncIterator[None]:
    """Sign (and time-stamp) the chain's head every ``archive.checkpoint_interval_s``."""
    settings = app[SETTINGS]
    task = asyncio.create_task(
        checkpoint_forever(
            build_checkpointer(settings, app[DELIVERY_LOG].engines),
            settings.archive.checkpoint_interval_s,
            app[METRICS].loops,
        ),
        name="checkpoints",
    )
    async for _ in _cancel_on_cleanup(task):
        yield


def create_app(settings: Settings, *, metrics: Metrics | None = None) -> web.Application:
    """The gateway's HTTP application; resources open on startup and close on cleanup."""
    app = web.Application(
        middlewares=[request_context], client_max_size=settings.http.max_body_bytes
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics or Metrics()
    app[LIFECYCLE] = Lifecycle()
    app[DIRECTORY] = DirectoryHolder()  # filled from the store at start (_directory_ctx)
    app[STORED_DIRECTORY] = StoredDirectory(lambda: app[DELIVERY_LOG].engines, app[DIRECTORY])
    app.cleanup_ctx.extend(
        [
            _store_ctx,
            _statistics_ctx,
            _directory_ctx,
            _broker_ctx,
            _intake_ctx,
            _relay_ctx,
            _queue_depths_ctx,
        ]
    )
    if settings.archive.checkpoint_interval_s > 0:
        app.cleanup_ctx.append(_checkpoint_ctx)
    for module in (documents, inbox, admin, health):
        app.add_routes(module.routes)
    setup_console(app)  # the admin web console under /admin
    setup_southbound(app)  # the national SDK protocol under /XrdAdapter/adapter/
    return app
