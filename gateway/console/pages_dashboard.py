"""``/admin/``: the dashboard (states, throughput chart, failing destinations, queues, health)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass

from aiohttp import web

from gateway.broker import Broker
from gateway.console.auth import require_user
from gateway.console.chart import throughput_chart
from gateway.console.context import CONSOLE_DB
from gateway.console.render import render
from gateway.console.stats import dashboard
from gateway.core.errors import LgspError
from gateway.web.keys import BROKER, DELIVERY_LOG, METRICS, SETTINGS

routes = web.RouteTableDef()
PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class QueueRow:
    method: str
    work: int
    retry: int
    dead: int


@dataclass(frozen=True, slots=True)
class HealthRow:
    name_key: str
    state: str  # ok | down | not_configured | configured
    detail: str = ""


async def _probe(name_key: str, probe: Awaitable[None]) -> HealthRow:
    try:
        await asyncio.wait_for(probe, PROBE_TIMEOUT_S)
    except (LgspError, TimeoutError, OSError) as exc:
        return HealthRow(name_key, "down", str(exc))
    return HealthRow(name_key, "ok")


async def queue_rows(broker: Broker) -> list[QueueRow]:
    """Ready messages per method: work queue, all retry queues together, dead letters."""
    depths = await broker.queue_depths()
    topology = broker.topology
    return [
        QueueRow(
            method,
            depths.get(topology.work_queue(method), 0),
            sum(depths.get(topology.retry_queue(method, d), 0) for d in topology.retry_delays_s),
            depths.get(topology.dead_queue(method), 0),
        )
        for method in topology.methods
    ]


def _national(request: web.Request) -> HealthRow:
    national = request.config_dict[SETTINGS].national
    if not national.enabled:
        return HealthRow("health.national", "not_configured")
    registry = request.config_dict[METRICS].registry
    lag_s = registry.get_sample_value("lgsp_national_poll_lag_seconds")
    return HealthRow(
        "health.national", "configured", f"{national.endpoint} · {round(lag_s) if lag_s else '-'}"
    )


@routes.get("/")
async def dashboard_page(request: web.Request) -> web.Response:
    await require_user(request)
    config = request.config_dict
    figures = await dashboard(request.app[CONSOLE_DB].engines)
    queues: list[QueueRow] = []
    queue_error = ""
    try:
        queues = await asyncio.wait_for(queue_rows(config[BROKER]), PROBE_TIMEOUT_S)
    except (LgspError, TimeoutError) as exc:
        queue_error = str(exc) or "timeout"
    health = [
        *await asyncio.gather(
            _probe("health.store", config[DELIVERY_LOG].ping()),
            _probe("health.broker", config[BROKER].ping()),
        ),
        _national(request),
    ]
    return render(
        request,
        "dashboard.html",
        figures=figures,
        chart=throughput_chart(figures.hours),
        queues=queues,
        queue_error=queue_error,
        health=health,
    )
