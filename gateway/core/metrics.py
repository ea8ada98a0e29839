"""Prometheus metrics of one gateway process, in a registry of its own (no module globals).

Names (see docs/operations.md and config/grafana-dashboard.json):

    lgsp_documents_accepted_total{kind}            packages accepted at intake (202 or 200)
    lgsp_documents_rejected_total{code}            submissions refused, by error code
    lgsp_deliveries_total{adapter,outcome}         delivered | retry | dead_lettered | redelivered
    lgsp_deliveries_swept_total{adapter}           published again by the workers' sweep
    lgsp_accept_latency_seconds                    intake request to answer (accepted ones)
    lgsp_delivery_latency_seconds{adapter}         published on the broker to delivered
    lgsp_signature_verify_seconds{format}          signature verification of one package
    lgsp_queue_depth{queue}                        messages ready per broker queue (on scrape)
    lgsp_national_poll_lag_seconds                 since the last successful national poll
    lgsp_loop_last_success_timestamp_seconds{loop} a background loop's last successful round
    lgsp_loop_failures_total{loop}                 failed rounds of a background loop
    process_*                                      CPU, memory and file descriptors
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from gateway.core.loops import LoopHealth, Loops

# The classic text format every Prometheus (2.x and 3.x) scrapes, as the API's /metrics sends.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

Refresh = Callable[[], Awaitable[None]]


@dataclass
class Metrics:
    """The metrics the gateway and its workers export on ``/metrics``."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    clock: Callable[[], float] = time.monotonic
    _poll_baseline: float | None = field(default=None, init=False)
    _last_poll: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        r = self.registry
        ProcessCollector(registry=r)
        self.accepted = Counter(
            "lgsp_documents_accepted", "Packages accepted at intake", ["kind"], registry=r
        )
        self.rejected = Counter(
            "lgsp_documents_rejected", "Packages rejected at intake", ["code"], registry=r
        )
        self.deliveries = Counter(
            "lgsp_deliveries",
            "Delivery attempts by adapter and outcome",
            ["adapter", "outcome"],
            registry=r,
        )
        self.swept = Counter(
            "lgsp_deliveries_swept",
            "Deliveries whose overdue broker message the sweep published again",
            ["adapter"],
            registry=r,
        )
        self.accept_latency_s = Histogram(
            "lgsp_accept_latency_seconds",
            "Intake request to 202",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.delivery_latency_s = Histogram(
            "lgsp_delivery_latency_seconds",
            "Broker publication to delivered",
            ["adapter"],
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.verify_latency_s = Histogram(
            "lgsp_signature_verify_seconds",
            "Signature verification time",
            ["format"],
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.queue_depth = Gauge(
            "lgsp_queue_depth", "Messages waiting per queue", ["queue"], registry=r
        )
        self.national_poll_lag_s = Gauge(
            "lgsp_national_poll_lag_seconds",
            "Seconds since the last successful national poll (NaN: no poller in this process)",
            registry=r,
        )
        self.national_poll_lag_s.set_function(self._national_poll_lag_s)
        self.loop_last_success = Gauge(
            "lgsp_loop_last_success_timestamp_seconds",
            "Wall-clock time of a background loop's last successful round",
            ["loop"],
            registry=r,
        )
        self.loop_failures = Counter(
            "lgsp_loop_failures", "Failed rounds of a background loop", ["loop"], registry=r
        )
        self.loops = Loops(on_change=self._loop_changed)

    def _loop_changed(self, health: LoopHealth, failed: bool) -> None:
        if failed:
            self.loop_failures.labels(health.name).inc()
        elif health.last_success_at is not None:
            self.loop_last_success.labels(health.name).set(health.last_success_at)

    # -- national polling: the poller reports, the lag is computed on every scrape ----------

    def national_poller_started(self) -> None:
        """A national poller runs here: until its first success, the lag counts from now."""
        if self._poll_baseline is None:
            self._poll_baseline = self.clock()

    def national_poll_succeeded(self) -> None:
        """A poll of the national platform completed: the lag restarts from zero."""
        self._last_poll = self.clock()

    def _national_poll_lag_s(self) -> float:
        since = self._last_poll if self._last_poll is not None else self._poll_baseline
        return math.nan if since is None else max(self.clock() - since, 0.0)

    # -- queues and rendering -------------------------------------------------------------------

    def set_queue_depths(self, depths: Mapping[str, int]) -> None:
        for queue, depth in depths.items():
            self.queue_depth.labels(queue).set(depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def metrics_response(metrics: Metrics) -> web.Response:
    """The Prometheus text exposition of ``metrics``."""
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})


async def serve_metrics(
    metrics: Metrics, host: str, port: int, refresh: Refresh | None = None
) -> web.AppRunner:
    """A ``GET /metrics`` listener for a process without the HTTP API (``--role worker``).

    ``refresh`` (e.g. reading queue depths) runs before each scrape. Stop it with
    ``await runner.cleanup()``.
    """

    async def scrape(_request: web.Request) -> web.Response:
        if refresh is not None:
            await refresh()
        return metrics_response(metrics)

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
