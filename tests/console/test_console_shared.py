"""Two gateway instances of one deployment (one store) share the console's sessions, log-in
delays and directory: nothing a browser relies on lives in one process's memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from console_kit import ConsoleClient, console_password
from service.service_kit import DISTRICT, Gateway, StartGateway, free_port

from gateway.service.runner import Role, Service


@pytest.fixture
async def twins(start_gateway: StartGateway) -> AsyncIterator[tuple[Gateway, str]]:
    """A gateway and the base URL of a second instance of it (same settings, another port)."""
    gw = await start_gateway(role=Role.GATEWAY)
    settings = replace(gw.settings, http=replace(gw.settings.http, port=free_port()))
    other = Service(settings, Role.GATEWAY, drain_grace_s=0.1, shutdown_timeout_s=10)
    await other.start()
    try:
        yield gw, f"http://127.0.0.1:{settings.http.port}"
    finally:
        await other.stop()


async def test_a_session_made_on_one_instance_works_and_ends_on_the_other(
    twins: tuple[Gateway, str], console_clients: list[ConsoleClient]
) -> None:
    gw, other_url = twins
    here = ConsoleClient(gw.base_url)
    console_clients.append(here)
    assert (await here.login("operator", console_password(gw, "operator"))).status == 303
    there = ConsoleClient(other_url, here.session)  # the same browser, the other instance

    status, page, _ = await there.get("/admin/participants")
    assert status == 200  # signed in there too
    assert DISTRICT in page
    status, _, _ = await there.post(
        f"/admin/participants/{DISTRICT}/disable", {"csrf_token": here.csrf}
    )
    assert status == 303  # the session's CSRF token is the same everywhere

    disabled_row = f'<tr data-organ="{DISTRICT}" class="off">'
    for _ in range(20):  # this instance reads the change from the store within 2 s
        status, page, _ = await here.get("/admin/participants")
        if disabled_row in page:
            break
        await asyncio.sleep(0.1)
    assert disabled_row in page
    status, _, _ = await there.post("/admin/logout", {"csrf_token": there.csrf})
    assert status == 303
    status, _, response = await here.get("/admin/")  # the session ended everywhere
    assert status == 303
    assert response.headers["Location"].startswith("/admin/login")


async def test_failed_log_ins_on_either_instance_delay_the_name_on_both(
    twins: tuple[Gateway, str], console_clients: list[ConsoleClient]
) -> None:
    gw, other_url = twins
    here, there = ConsoleClient(gw.base_url), ConsoleClient(other_url)
    console_clients += [here, there]
    for client in (here, there, here):  # the free failures, then one that delays
        assert (await client.login("operator", "guess")).status == 401

    waiting = await there.login("operator", console_password(gw, "operator"))

    assert waiting.status == 429  # the other instance knows of the failures
    assert int(waiting.headers["Retry-After"]) == 1
