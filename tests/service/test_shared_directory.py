"""Two gateway processes and a worker process share the directory through one PostgreSQL store.

A participant added through gateway A's admin API is routable through gateway B within 2 s (each
process polls the store's directory version every second), and the worker pushes to the URL the
store gives it; a participant disabled through B is refused by A within 2 s. A worker that has
not polled yet reloads the directory for a recipient it does not know.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest
from service_kit import (
    DEPARTMENT,
    DISTRICT,
    TEST_ENV,
    PushReceiver,
    StartGateway,
    delete_topology,
    free_port,
    new_document,
    states,
)
from service_sites import BrokerSite

from gateway.core.settings import load_settings
from gateway.demo import pki
from gateway.demo.setup import DemoSetup, init_demo
from gateway.edxml.xml_codec import serialize_package
from gateway.service import workers
from gateway.signatures.xmldsig import sign_xml
from gateway.store.participants import StoredDirectory

pytestmark = pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)

LGSP = Path(sys.executable).with_name("lgsp")
WARD = "000.02.15.H56"
PICKUP_S = 2.0  # the promise: every process sees a directory change within 2 s
START_TIMEOUT_S = 40.0


@dataclass
class Running:
    """One ``lgsp run`` child process, its output in a file."""

    name: str
    proc: asyncio.subprocess.Process
    output: Path
    sink: IO[bytes]
    port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output.read_text(errors="replace").splitlines()[-lines:])

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.sink.close()


async def _spawn(setup: DemoSetup, tmp_path: Path, name: str, *args: str) -> Running:
    output = tmp_path / f"{name}.log"
    sink = output.open("ab")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LGSP_")}
    proc = await asyncio.create_subprocess_exec(
        str(LGSP),
        "run",
        "--config",
        str(setup.config_path),
        *args,
        env={**clean, **TEST_ENV, "PYTHONUNBUFFERED": "1"},
        stdout=sink,
        stderr=asyncio.subprocess.STDOUT,
    )
    return Running(name, proc, output, sink)


async def _ready(session: aiohttp.ClientSession, process: Running) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.proc.returncode is None, f"{process.name} exited:\n{process.tail()}"
        if process.port is None:  # the worker: no listener, its log says when it runs
            if "workers_started" in process.output.read_text(errors="replace"):
                return
        else:
            try:
                async with session.get(f"{process.base_url}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{process.name} not ready in {START_TIMEOUT_S}s:\n{process.tail()}")


@dataclass
class Deployment:
    setup: DemoSetup
    gateway_a: Running
    gateway_b: Running
    worker: Running
    session: aiohttp.ClientSession


@pytest.fixture
async def deployment(
    tmp_path: Path, store_url: str, test_broker: BrokerSite
) -> AsyncIterator[Deployment]:
    setup = init_demo(
        tmp_path / "demo",
        port=free_port(),
        broker_url=test_broker.url,
        store_url=store_url,
        prefix=test_broker.new_prefix("sd"),
    )
    started: list[Running] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            for name, args, port in (
                ("gateway-a", ("--role", "gateway"), setup.port),
                ("gateway-b", ("--role", "gateway", "--port", str(port_b := free_port())), port_b),
                ("worker", ("--role", "worker"), None),
            ):
                process = await _spawn(setup, tmp_path, name, *args)
                process.port = port
                started.append(process)
            for process in started:
                await _ready(session, process)
            yield Deployment(setup, *started, session)
    finally:
        await asyncio.gather(*(p.stop() for p in started))
        await delete_topology(load_settings(setup.config_path, env={}))


async def _admin(
    d: Deployment, gateway: Running, method: str, path: str = "", body: object = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {d.setup.admin_token}"}
    url = f"{gateway.base_url}/api/v1/admin/participants{path}"
    async with d.session.request(method, url, json=body, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def _submit(d: Deployment, gateway: Running, body: bytes) -> tuple[int, dict[str, Any]]:
    headers = {
        "Authorization": f"Bearer {d.setup.api_keys[DEPARTMENT]}",
        "Content-Type": "application/xml",
    }
    async with d.session.post(
        f"{gateway.base_url}/api/v1/documents", data=body, headers=headers
    ) as r:
        return r.status, await r.json(content_type=None)


async def _inbox(d: Deployment, gateway: Running, api_key: str) -> int:
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
