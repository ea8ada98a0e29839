"""Liveness, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from aiohttp import web

from gateway.api.auth import require_metrics_token
from gateway.core.errors import LgspError
from gateway.core.metrics import metrics_response
from gateway.core.resources import schema_path
from gateway.web.keys import BROKER, DELIVERY_LOG, LIFECYCLE, METRICS

routes = web.RouteTableDef()

READY_TIMEOUT_S = 3.0


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def _check(name: str, probe: Awaitable[None]) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe, READY_TIMEOUT_S)
    except (LgspError, TimeoutError, OSError) as exc:
        return name, f"down: {exc}"
    return name, "ok"


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    app = request.app
    checks = dict(
        await asyncio.gather(
            _check("store", app[DELIVERY_LOG].ping()),
            _check("broker", app[BROKER].ping()),
        )
    )
    ready = all(v == "ok" for v in checks.values()) and not app[LIFECYCLE].draining
    if app[LIFECYCLE].draining:
        checks["gateway"] = "draining"
    body = {"ready": ready, "checks": checks, "loops": app[METRICS].loops.snapshot()}
    return web.json_response(body, status=200 if ready else 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Only with a metrics token; queue depths come from the gauge the gateway refreshes in the
    background (``metrics.refresh_s``), so a scrape costs the broker nothing."""
    await require_metrics_token(request)
    return metrics_response(request.app[METRICS])


@routes.get("/api/v1/openapi.json")
async def openapi(_request: web.Request) -> web.Response:
    return web.Response(
        body=schema_path("openapi.json").read_bytes(), content_type="application/json"
    )
