"""The running gateway keeps PostgreSQL's planner statistics (``store.statistics``)."""

from __future__ import annotations

import asyncio
from typing import Any

from service_kit import Gateway, StartGateway

from gateway.service.runner import Role


async def _loops(gw: Gateway) -> dict[str, dict[str, Any]]:
    async with gw.session.get(f"{gw.base_url}/readyz") as r:
        loops: dict[str, dict[str, Any]] = (await r.json())["loops"]
        return loops


async def test_the_gateway_runs_the_statistics_loop_on_postgresql_only(
    start_gateway: StartGateway, store_url: str
) -> None:
    gw = await start_gateway(role=Role.GATEWAY)
    postgresql = store_url.startswith("postgresql")
    loops = await _loops(gw)
    for _ in range(100):  # on PostgreSQL its first round runs at start
        ran = loops.get("store-statistics", {}).get("last_success_age_s") is not None
        if ran or not postgresql:
            break
        await asyncio.sleep(0.05)
        loops = await _loops(gw)

    if postgresql:
        assert loops["store-statistics"]["last_success_age_s"] is not None
        assert loops["store-statistics"]["failures"] == 0
    else:
        assert "store-statistics" not in loops
    assert "outbox-relay" in loops  # the registry is the gateway's
