"""``/metrics`` is not public on the partner port: a listener of its own, or a token; queue
depths come from a background refresh, so a scrape costs the broker nothing."""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from service.service_kit import (
    DEPARTMENT,
    DISTRICT,
    METRICS_HEADERS,
    StartGateway,
    free_port,
    new_document,
)

from gateway.service.runner import Role

sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
TOKEN = "metrics-scraper-token"


@sqlite_only
async def test_metrics_are_not_served_on_the_api_port_without_a_token_setting(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway(
        env={"LGSP_METRICS__TOKEN_HASHES": "", "LGSP_METRICS__PORT": str(free_port())}
    )
    listener = f"http://127.0.0.1:{gw.settings.metrics.port}/metrics"
    async with gw.session.get(f"{gw.base_url}/metrics") as r:
        assert (r.status, (await r.json())["code"]) == (404, "not_found.route")
    async with gw.session.get(f"{gw.base_url}/metrics", headers=gw.headers(DEPARTMENT)) as r:
        assert r.status == 404  # a participant's key does not open it either
    async with gw.session.get(listener) as r:
        assert r.status == 200
        assert "lgsp_documents_accepted_total" in await r.text()


@sqlite_only
async def test_metrics_on_the_api_port_need_the_metrics_token(start_gateway: StartGateway) -> None:
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    gw = await start_gateway(env={"LGSP_METRICS__TOKEN_HASHES": digest})
    url = f"{gw.base_url}/metrics"
    async with gw.session.get(url) as r:
        assert (r.status, (await r.json())["code"]) == (401, "auth.required")
    async with gw.session.get(url, headers={"Authorization": "Bearer wrong"}) as r:
        assert (r.status, (await r.json())["code"]) == (401, "auth.invalid_metrics_token")
    async with gw.session.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status == 200
        assert "process_resident_memory_bytes" in await r.text()


@sqlite_only
async def test_a_scrape_reads_cached_queue_depths_not_the_broker(
    start_gateway: StartGateway,
) -> None:
    """With the next refresh an hour away, a new message on a queue does not show: scrapes
    ask the broker nothing."""
    gw = await start_gateway(env={"LGSP_METRICS__REFRESH_S": "3600"}, role=Role.GATEWAY)
    queue = f"{gw.settings.broker.prefix}.q.mailbox"
    before = await _first_depth(gw.metrics_url, queue)
    signed = gw.sign(new_document(DEPARTMENT, [DISTRICT]), DEPARTMENT)
    assert (await gw.submit(signed, DEPARTMENT))[0] == 202  # one message waits (no worker)

    assert [await _depth(gw.metrics_url, queue) for _ in range(5)] == [before] * 5
    assert before == 0.0


async def _first_depth(url: str, queue: str) -> float:
    """The depth once the refresh at start-up has run (a deadline, not a timing assertion)."""
    for _ in range(100):
        depth = await _depth(url, queue)
        if depth is not None:
            return depth
        await asyncio.sleep(0.1)
    raise AssertionError(f"no lgsp_queue_depth for {queue}")


async def _depth(url: str, queue: str) -> float | None:
    async with aiohttp.ClientSession() as session, session.get(url, headers=METRICS_HEADERS) as r:
        text = await r.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "lgsp_queue_depth" and sample.labels.get("queue") == queue:
                return float(sample.value)
    return None
