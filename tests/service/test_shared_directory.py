"""Two gateway processes and a worker process share the directory through one PostgreSQL store.

A participant added through gateway A's admin API is routable through gateway B within 2 s (each
process polls the store's directory version every second), and the worker pushes to the URL the
store gives it; a participant disabled through B is refused by A within 2 s. A worker that has
not polled yet reloads the directory for a recipient it does not know.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from process_kit import NewProcess, RunningGateway
from service_kit import (
    DEPARTMENT,
    DISTRICT,
    PushReceiver,
    StartGateway,
    free_port,
    new_document,
    states,
)
from service_sites import BrokerSite

from gateway.demo import pki
from gateway.demo.layout import DemoSetup
from gateway.demo.setup import init_demo
from gateway.edxml.xml_codec import serialize_package
from gateway.service import workers
from gateway.signatures.xmldsig import sign_xml
from gateway.store.participants import StoredDirectory

pytestmark = pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)

WARD = "000.02.15.H56"
PICKUP_S = 2.0  # the promise: every process sees a directory change within 2 s


@dataclass
class Deployment:
    setup: DemoSetup
    gateway_a: RunningGateway
    gateway_b: RunningGateway
    worker: RunningGateway
    session: aiohttp.ClientSession


@pytest.fixture
async def deployment(
    store_url: str, test_broker: BrokerSite, lgsp_processes: NewProcess, tmp_path: Path
) -> AsyncIterator[Deployment]:
    setup = init_demo(
        tmp_path / "demo",
        port=free_port(),
        broker_url=test_broker.url,
        store_url=store_url,
        prefix=test_broker.new_prefix("sd"),
    )
    a, b, worker = (lgsp_processes(setup, name) for name in ("gateway-a", "gateway-b", "worker"))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.gather(
            a.start(session, "gateway"),
            b.start(session, "gateway", {"LGSP_HTTP__PORT": str(free_port())}),
            worker.start(session, "worker"),
        )
        yield Deployment(setup, a, b, worker, session)


async def _admin(
    d: Deployment, gateway: RunningGateway, method: str, path: str = "", body: object = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {d.setup.admin_token}"}
    url = f"{gateway.base_url}/api/v1/admin/participants{path}"
    async with d.session.request(method, url, json=body, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def _submit(
    d: Deployment, gateway: RunningGateway, body: bytes
) -> tuple[int, dict[str, Any]]:
    headers = {
        "Authorization": f"Bearer {d.setup.api_keys[DEPARTMENT]}",
        "Content-Type": "application/xml",
    }
    async with d.session.post(
        f"{gateway.base_url}/api/v1/documents", data=body, headers=headers
    ) as r:
        return r.status, await r.json(content_type=None)


async def _inbox(d: Deployment, gateway: RunningGateway, api_key: str) -> int:
    headers = {"Authorization": f"Bearer {api_key}"}
    async with d.session.get(f"{gateway.base_url}/api/v1/inbox", headers=headers) as r:
        return r.status


async def test_a_participant_added_through_one_gateway_is_routed_through_the_other(
    deployment: Deployment, push_receiver: PushReceiver
) -> None:
    d = deployment
    ident = pki.load_identity(d.setup.pki_dir, DEPARTMENT)
    body = sign_xml(serialize_package(new_document(DEPARTMENT, [WARD])), ident.key, ident.chain)
    status, problem = await _submit(d, d.gateway_b, body)
    assert (status, problem["code"]) == (422, "acl.recipients_refused")  # unknown so far
    ward = {
        "organ_id": WARD,
        "name": "UBND phường Quảng Tiến",
        "kind": "state",
        "level": "commune",
        "parent": DISTRICT,
        "delivery": {"method": "push", "url": push_receiver.url},
        "generate_api_key": True,
    }

    status, created = await _admin(d, d.gateway_a, "POST", body=ward)
    added_at = time.monotonic()

    assert status == 200, created
    answers: list[tuple[int, dict[str, Any]]] = []
    while time.monotonic() - added_at < PICKUP_S:
        answers.append(await _submit(d, d.gateway_b, body))
        if answers[-1][0] == 202:
            break
        await asyncio.sleep(0.05)
    last = answers[-1][1].get("code")
    assert answers[-1][0] == 202, f"B did not route to {WARD} in {PICKUP_S}s ({last})"
    assert {code for code, _ in answers[:-1]} <= {422}
    accepted = answers[-1][1]
    assert [r["organ_id"] for r in accepted["recipients"]] == [WARD]
    assert await _inbox(d, d.gateway_b, created["api_key"]) == 200  # its new key works on B

    # the worker process pushes to the URL the store gave it, the very bytes received
    for _ in range(200):
        if push_receiver.delivered:
            break
        await asyncio.sleep(0.05)
    assert push_receiver.delivered == [body], d.worker.tail()

    status, _ = await _admin(d, d.gateway_b, "DELETE", f"/{WARD}")
    disabled_at = time.monotonic()
    assert status == 200
    seen = []
    while time.monotonic() - disabled_at < PICKUP_S:
        seen.append(await _inbox(d, d.gateway_a, created["api_key"]))
        if seen[-1] == 401:
            break
        await asyncio.sleep(0.05)
    assert seen[-1] == 401, f"gateway A still accepts the disabled key after {PICKUP_S}s"


async def test_a_worker_behind_on_the_directory_reloads_it_for_an_unknown_recipient(
    start_gateway: StartGateway, push_receiver: PushReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A document for a participant added a moment ago may reach a worker before its next poll:
    the worker reloads the directory for it instead of dead-lettering it for want of a URL."""

    async def never_polled(stored: StoredDirectory, **kwargs: Any) -> None:
        await asyncio.Event().wait()  # this worker's directory is only refreshed on demand

    monkeypatch.setattr(workers, "watch_directory", never_polled)
    gw = await start_gateway()  # intake and workers in one process, each with its snapshot
    ward = {
        "organ_id": WARD,
        "name": "UBND phường Quảng Tiến",
        "delivery": {"method": "push", "url": push_receiver.url},
    }
    headers = {"Authorization": f"Bearer {gw.setup.admin_token}"}
    async with gw.session.post(
        f"{gw.base_url}/api/v1/admin/participants", json=ward, headers=headers
    ) as r:
        assert r.status == 200, await r.text()
    body = gw.sign(new_document(DEPARTMENT, [WARD]), DEPARTMENT)

    status, answer = await gw.submit(body, DEPARTMENT)

    assert status == 202, answer
    view = await gw.wait_for(
        answer["id"], DEPARTMENT, lambda v: states(v)[WARD] in ("delivered", "dead_lettered")
    )
    assert states(view) == {WARD: "delivered"}
    assert push_receiver.delivered == [body]
