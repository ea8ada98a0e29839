"""Rate limits over HTTP: per address for failed authentication, per participant and per
southbound system, counted in the store and shared by every gateway process (SQLite and
PostgreSQL)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from national.national_kit import SdkFactory
from service.service_kit import DEPARTMENT, DISTRICT, StartGateway, free_port
from sqlalchemy import select

from gateway.service.runner import Role, Service
from gateway.store.engine import create_engines
from gateway.store.tables import rate_counters
from gateway.web.rate_limits import ALLOWANCE_SHARE

INBOX = "/api/v1/inbox"
OTHER_ADDRESS = "127.0.0.2"  # loopback too: the kernel accepts it as a source address
# Windows are fixed (aligned to the clock): a test whose requests straddled a boundary counted
# them in two windows and saw 401 where 429 was due (seen under load). A day-long window makes a
# straddle all but impossible; window expiry is tested with a controlled clock (test_limit_rules).
WINDOW_S = 86400
ONE_WINDOW = {"LGSP_RATE_LIMIT__WINDOW_S": str(WINDOW_S)}
sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def session_from(address: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


async def get(
    session: aiohttp.ClientSession, url: str, api_key: str
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    async with session.get(url, headers={"Authorization": f"Bearer {api_key}"}) as r:
        return r.status, json.loads(await r.text()), r


async def test_wrong_keys_from_one_address_end_in_429_for_that_address_only(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway(env={**ONE_WINDOW, "LGSP_RATE_LIMIT__FAILED_AUTH_PER_ADDRESS": "5"})
    url = gw.base_url + INBOX
    statuses = [(await get(gw.session, url, f"wrong-{i}"))[0] for i in range(5)]
    assert statuses == [401] * 5

    status, problem, response = await get(gw.session, url, "wrong-again")
    assert status == 429
    assert response.content_type == "application/problem+json"
    assert problem["code"] == "rate.failed_auth"
    assert 1 <= int(response.headers["Retry-After"]) <= WINDOW_S  # until the window ends
    # The address is refused whatever it sends now, before any key is looked up...
    assert (await get(gw.session, url, gw.setup.api_keys[DEPARTMENT]))[0] == 429
    async with gw.session.post(f"{gw.base_url}/admin/login", data={"username": "x"}) as r:
        assert r.status == 429
    # ...while another address goes on.
    async with session_from(OTHER_ADDRESS) as elsewhere:
        assert (await get(elsewhere, url, gw.setup.api_keys[DEPARTMENT]))[0] == 200


@sqlite_only
async def test_a_participant_over_its_limit_gets_429_and_others_do_not(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway(env={**ONE_WINDOW, "LGSP_RATE_LIMIT__PARTICIPANT_REQUESTS": "3"})
    url = gw.base_url + INBOX
    department, district = gw.setup.api_keys[DEPARTMENT], gw.setup.api_keys[DISTRICT]
    assert [(await get(gw.session, url, department))[0] for _ in range(3)] == [200] * 3

    status, problem, response = await get(gw.session, url, department)

    assert (status, problem["code"], problem["retryable"]) == (429, "rate.participant", True)
    assert int(response.headers["Retry-After"]) >= 1
    assert (await get(gw.session, url, district))[0] == 200


async def test_two_gateway_processes_share_one_participant_limit(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway(
        env={**ONE_WINDOW, "LGSP_RATE_LIMIT__PARTICIPANT_REQUESTS": "4"}, role=Role.GATEWAY
    )
    second = Service(
        replace(
            gw.settings,
            http=replace(gw.settings.http, port=free_port()),
            metrics=replace(gw.settings.metrics, port=None),
        ),
        Role.GATEWAY,
    )
    await second.start()
    try:
        key = gw.setup.api_keys[DEPARTMENT]
        urls = [gw.base_url + INBOX, f"http://127.0.0.1:{second.settings.http.port}{INBOX}"]
        statuses = [(await get(gw.session, urls[i % 2], key))[0] for i in range(6)]
    finally:
        await second.stop()

    assert statuses == [200, 200, 200, 200, 429, 429]


@sqlite_only
async def test_allowances_keep_the_store_cost_to_one_write_per_batch(
    start_gateway: StartGateway,
) -> None:
    limit = 1000
    gw = await start_gateway(
        env={**ONE_WINDOW, "LGSP_RATE_LIMIT__PARTICIPANT_REQUESTS": str(limit)}
    )
    for _ in range(30):
        assert (await get(gw.session, gw.base_url + INBOX, gw.setup.api_keys[DEPARTMENT]))[0] == 200

    engines = create_engines(gw.settings.store.url)
    try:
        async with engines.reader.connect() as conn:
            rows = (await conn.execute(select(rate_counters.c.key, rate_counters.c.count))).all()
    finally:
        await engines.reader.dispose()
    # One upsert took a batch of limit / ALLOWANCE_SHARE; the 30 requests spent it in memory.
    assert [tuple(row) for row in rows] == [(f"participant:{DEPARTMENT}", limit // ALLOWANCE_SHARE)]


@sqlite_only
async def test_southbound_failed_signatures_and_a_busy_system_get_429_with_retry_after(
    start_gateway: StartGateway,
    java_sdk: SdkFactory,
) -> None:
    gw = await start_gateway(
        env={
            **ONE_WINDOW,
            "LGSP_RATE_LIMIT__FAILED_AUTH_PER_ADDRESS": "2",
            "LGSP_RATE_LIMIT__PARTICIPANT_REQUESTS": "2",
        }
    )
    creds = json.loads(gw.setup.credentials_path.read_text(encoding="utf-8"))[DISTRICT]
    endpoint = f"{gw.base_url}/XrdAdapter/adapter"
    sdk = java_sdk(endpoint, creds["system_id"], creds["secret"])
    assert [(await sdk.get_agencies_list())[0] for _ in range(2)] == [200, 200]
    status, busy = await sdk.get_agencies_list()
    assert (status, busy["status"], busy["ErrorCode"]) == (429, "FAIL", "rate.participant")

    forged = java_sdk(endpoint, creds["system_id"], "not-the-secret")
    assert [(await forged.get_agencies_list())[0] for _ in range(2)] == [401, 401]
    async with gw.session.post(f"{endpoint}/getAgenciesList") as response:
        assert response.status == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert (await response.json())["ErrorCode"] == "rate.failed_auth"
