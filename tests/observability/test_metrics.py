"""Prometheus metrics scraped over HTTP after real traffic; the Grafana dashboard built on them."""

from __future__ import annotations

import asyncio
import json
import math
import re
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from service.service_kit import (
    DEPARTMENT,
    DISTRICT,
    METRICS_HEADERS,
    PushReceiver,
    StartGateway,
    free_port,
    new_document,
    states,
)

from gateway.core.metrics import Metrics
from gateway.service.runner import Role, Service

# The gateway scenarios run on SQLite: the metrics do not depend on the store.
sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)

DASHBOARD = Path(__file__).resolve().parents[2] / "config" / "grafana-dashboard.json"
UNKNOWN = "000.00.99.H56"
FAST_DEPTHS = {"LGSP_METRICS__REFRESH_S": "0.5"}  # queue depths read twice a second

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str) -> Samples:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=METRICS_HEADERS) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape_until(url: str, name: str, queue: str, expected: float) -> Samples:
    """Scrape until the background refresh shows ``expected`` for ``queue`` (a deadline)."""
    samples: Samples = {}
    for _ in range(100):
        samples = await scrape(url)
        if value(samples, name, queue=queue) == expected:
            break
        await asyncio.sleep(0.1)
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def labelled(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(lbl)[label]: v for (n, lbl), v in samples.items() if n == name}


@sqlite_only
async def test_intake_and_delivery_move_their_counters_and_histograms(
    start_gateway: StartGateway, push_receiver: PushReceiver
) -> None:
    gw = await start_gateway(push={DISTRICT: push_receiver.url}, env=FAST_DEPTHS)
    push_receiver.script = [503]  # the first attempt fails, the retry delivers
    document = new_document(DEPARTMENT, [DISTRICT])
    signed = gw.sign(document, DEPARTMENT)

    assert (await gw.submit(signed, DEPARTMENT))[0] == 202
    status, answer = await gw.submit(signed, DEPARTMENT)  # the same package again
    assert (status, answer["duplicate"]) == (200, True)
    tampered = signed.replace(b"V/v th", b"V/v Th", 1)
    assert (await gw.submit(tampered, DEPARTMENT))[0] == 422
    unknown = gw.sign(new_document(DEPARTMENT, [UNKNOWN]), DEPARTMENT)
    assert (await gw.submit(unknown, DEPARTMENT))[0] == 422
    async with gw.session.post(
        f"{gw.base_url}/api/v1/documents", data=signed, headers={"Content-Type": "application/xml"}
    ) as anonymous:
        assert anonymous.status == 401
    await gw.wait_for(answer["id"], DEPARTMENT, lambda v: states(v)[DISTRICT] == "delivered")

    samples = await scrape(gw.metrics_url)

    assert labelled(samples, "lgsp_documents_accepted_total", "kind") == {"document": 2}
    rejected = labelled(samples, "lgsp_documents_rejected_total", "code")
    assert rejected.keys() == {
        "auth.required",
        "acl.recipients_refused",
        next(c for c in rejected if c.startswith("signature.")),
    }
    assert set(rejected.values()) == {1}
    assert value(samples, "lgsp_deliveries_total", adapter="push", outcome="retry") == 1
    assert value(samples, "lgsp_deliveries_total", adapter="push", outcome="delivered") == 1
    assert value(samples, "lgsp_accept_latency_seconds_count") == 2
    assert value(samples, "lgsp_accept_latency_seconds_bucket", le="+Inf") == 2
    assert value(samples, "lgsp_delivery_latency_seconds_count", adapter="push") == 1
    assert value(samples, "lgsp_delivery_latency_seconds_sum", adapter="push") > 0
    # verified: the accepted one, its duplicate and the one refused later for its recipient
    assert value(samples, "lgsp_signature_verify_seconds_count", format="xml") == 3
    depths = labelled(samples, "lgsp_queue_depth", "queue")
    assert f"{gw.settings.broker.prefix}.q.push" in depths
    assert math.isnan(value(samples, "lgsp_national_poll_lag_seconds"))
    assert value(samples, "process_resident_memory_bytes") > 0


@sqlite_only
async def test_queue_depth_on_the_gateway_and_delivery_metrics_on_the_worker_listener(
    start_gateway: StartGateway, push_receiver: PushReceiver
) -> None:
    """Gateway and worker as separate roles: the worker serves its metrics on its own port."""
    gw = await start_gateway(push={DISTRICT: push_receiver.url}, role=Role.GATEWAY, env=FAST_DEPTHS)
    signed = gw.sign(new_document(DEPARTMENT, [DISTRICT]), DEPARTMENT)
    status, answer = await gw.submit(signed, DEPARTMENT)
    assert status == 202, answer
    push_queue = f"{gw.settings.broker.prefix}.q.push"

    waiting = await scrape_until(gw.metrics_url, "lgsp_queue_depth", push_queue, 1)
    assert value(waiting, "lgsp_queue_depth", queue=push_queue) == 1  # no worker yet

    port = free_port()
    worker = Service(
        replace(gw.settings, metrics=replace(gw.settings.metrics, port=port)),
        Role.WORKER,
        shutdown_timeout_s=5,
    )
    await worker.start()
    try:
        await gw.wait_for(answer["id"], DEPARTMENT, lambda v: states(v)[DISTRICT] == "delivered")
        at_worker = await scrape(f"http://127.0.0.1:{port}/metrics")
        at_gateway = await scrape_until(gw.metrics_url, "lgsp_queue_depth", push_queue, 0)
    finally:
        await worker.stop()

    assert value(at_worker, "lgsp_deliveries_total", adapter="push", outcome="delivered") == 1
    assert value(at_worker, "lgsp_delivery_latency_seconds_count", adapter="push") == 1
    assert value(at_worker, "lgsp_documents_accepted_total", kind="document") == 0
    assert value(at_gateway, "lgsp_documents_accepted_total", kind="document") == 1
    assert value(at_gateway, "lgsp_deliveries_total", adapter="push", outcome="delivered") == 0
    assert value(at_gateway, "lgsp_queue_depth", queue=push_queue) == 0
    with pytest.raises(aiohttp.ClientConnectionError):  # the listener stopped with the worker
        await scrape(f"http://127.0.0.1:{port}/metrics")


async def test_national_poll_lag_counts_from_the_last_success() -> None:
    now = [1000.0]
    metrics = Metrics(clock=lambda: now[0])

    def lag() -> float:
        [family] = [
            f
            for f in text_string_to_metric_families(metrics.render().decode())
            if f.name == "lgsp_national_poll_lag_seconds"
        ]
        return float(family.samples[0].value)

    assert math.isnan(lag())  # no poller in this process
    metrics.national_poller_started()
    now[0] += 30
    assert lag() == 30  # never succeeded yet: counts from the poller's start
    metrics.national_poll_succeeded()
    now[0] += 4.5
    assert lag() == 4.5
    metrics.national_poller_started()  # a restart of the loop keeps the last success
    assert lag() == 4.5


# --- the Grafana dashboard ------------------------------------------------------------------


def _exprs(dashboard: dict[str, object]) -> dict[str, list[str]]:
    panels = dashboard["panels"]
    assert isinstance(panels, list)
    return {p["title"]: [t["expr"] for t in p.get("targets", [])] for p in panels}


def test_dashboard_is_valid_json_with_a_panel_per_signal() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = _exprs(dashboard)
    joined = {title: " ".join(e) for title, e in exprs.items()}

    def panel_using(*needles: str) -> str:
        found = [t for t, e in joined.items() if all(n in e for n in needles)]
        assert found, f"no panel queries {needles}"
        return found[0]

    panel_using("rate(lgsp_documents_accepted_total[", "by (kind)")
    panel_using("rate(lgsp_documents_rejected_total[", "by (code)")
    panel_using("rate(lgsp_deliveries_total[", "by (adapter, outcome)")
    for histogram in (
        "lgsp_accept_latency_seconds",
        "lgsp_delivery_latency_seconds",
        "lgsp_signature_verify_seconds",
    ):
        panel_using("histogram_quantile(0.99, sum by (le", f"rate({histogram}_bucket[")
    panel_using("lgsp_queue_depth")
    panel_using("lgsp_national_poll_lag_seconds")
    assert dashboard["uid"] == "lgsp-gateway"
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


@sqlite_only
async def test_dashboard_queries_only_metrics_the_gateway_exports(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway()
    async with gw.session.get(gw.metrics_url, headers=METRICS_HEADERS) as response:
        text = await response.text()
    exported = {f.name for f in text_string_to_metric_families(text)}
    exported |= {
        f"{name}_{suffix}" for name in exported for suffix in ("total", "bucket", "count", "sum")
    }
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    used = {
        name
        for exprs in _exprs(dashboard).values()
        for e in exprs
        for name in re.findall(r"\blgsp_[a-z_]+", e)
    }
    assert used, "the dashboard queries no lgsp_ metric"
    assert used <= exported, used - exported
