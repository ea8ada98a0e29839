"""End-to-end kit: demo gateways in the test's loop (``lgsp run`` children: ``process_kit``).

Test modules import names from here (``from service_kit import …``); ``conftest.py`` only
re-exports the fixtures, because several ``conftest`` modules cannot be told apart by import.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from process_kit import TEST_ENV, NewProcess, RunningGateway
from service_sites import BrokerSite, delete_topology

from gateway.core.directory import Delivery, DirectoryHolder, load_directory, write_directory
from gateway.core.methods import DeliveryMethod
from gateway.core.settings import Settings, load_settings
from gateway.demo import pki
from gateway.demo.layout import DemoSetup
from gateway.demo.participants import deliver_by_push, organization
from gateway.demo.setup import init_demo
from gateway.edxml import build
from gateway.edxml.model import DocumentPackage, StatusCode
from gateway.edxml.xml_codec import serialize_package
from gateway.service.runner import Role, Service
from gateway.signatures.xmldsig import sign_xml

DEPARTMENT = "000.00.04.H56"
DISTRICT = "000.00.15.H56"
COMMUNE = "000.01.15.H56"
PROVINCE = "000.00.00.H56"
BUSINESS = "0101234567"


METRICS_TOKEN = "test-metrics-token"
METRICS_TOKEN_HASH = hashlib.sha256(METRICS_TOKEN.encode()).hexdigest()
METRICS_HEADERS = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def local_site(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free port of 127.0.0.1: its base URL, until the block ends."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def new_document(
    sender: str, recipients: list[str], *, number: str | None = None, attachment_bytes: int = 1024
) -> DocumentPackage:
    return build.new_document(
        organization(sender),
        [organization(r) for r in recipients],
        code_number=number or str(secrets.randbelow(10**6)),
        code_notation="UBND-VP",
        subject="V/v thử nghiệm liên thông văn bản",
        content="Nội dung",
        attachments=[("cong-van.pdf", secrets.token_bytes(attachment_bytes), "application/pdf")],
    )


@dataclass
class PushReceiver:
    """A real HTTP endpoint of a local system: answers with the scripted statuses, then 200."""

    url: str = ""
    script: list[int] = field(default_factory=list)
    received: list[tuple[Mapping[str, str], bytes]] = field(default_factory=list)
    delivered: list[bytes] = field(default_factory=list)
    body: str = ""  # the text of every answer (default: "status <code>")

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append((dict(request.headers), body))
        status = self.script.pop(0) if self.script else 200
        if status == 200:
            self.delivered.append(body)
        return web.Response(status=status, text=self.body or f"status {status}")


@dataclass
class Gateway:
    """A running demo gateway and a client for it."""

    setup: DemoSetup
    settings: Settings
    service: Service
    session: aiohttp.ClientSession

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http.port}"

    @property
    def metrics_url(self) -> str:
        """``/metrics`` on the API port: scrape it with ``METRICS_HEADERS`` (the metrics token)."""
        return f"{self.base_url}/metrics"

    def sign(self, package: DocumentPackage | bytes, organ_id: str) -> bytes:
        data = package if isinstance(package, bytes) else serialize_package(package)
        ident = pki.load_identity(self.setup.pki_dir, organ_id)
        return sign_xml(data, ident.key, ident.chain)

    def headers(self, organ_id: str, content_type: str = "application/xml") -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.setup.api_keys[organ_id]}",
            "Content-Type": content_type,
        }

    async def submit(
        self, body: bytes, organ_id: str, content_type: str = "application/xml"
    ) -> tuple[int, dict[str, Any]]:
        async with self.session.post(
            f"{self.base_url}/api/v1/documents",
            data=body,
            headers=self.headers(organ_id, content_type),
        ) as r:
            return r.status, json.loads(await r.text())

    async def get(self, path: str, organ_id: str) -> tuple[int, Any]:
        async with self.session.get(f"{self.base_url}{path}", headers=self.headers(organ_id)) as r:
            raw = await r.read()
            is_json = r.content_type.endswith("json")
            return r.status, json.loads(raw) if is_json else raw

    async def admin_view(self, doc_id: str) -> dict[str, Any]:
        """``GET /api/v1/admin/documents/{id}``: the document with its delivery errors in full."""
        headers = {"Authorization": f"Bearer {self.setup.admin_token}"}
        async with self.session.get(
            f"{self.base_url}/api/v1/admin/documents/{doc_id}", headers=headers
        ) as r:
            assert r.status == 200, await r.text()
            return dict(json.loads(await r.text()))

    async def post(self, path: str, organ_id: str) -> tuple[int, Any]:
        async with self.session.post(f"{self.base_url}{path}", headers=self.headers(organ_id)) as r:
            return r.status, json.loads(await r.text())

    async def wait_for(
        self,
        doc_id: str,
        organ_id: str,
        done: Callable[[dict[str, Any]], bool],
        timeout_s: float = 20,
    ) -> dict[str, Any]:
        """Poll ``GET /api/v1/documents/{id}`` until ``done(view)``; fail with the last view."""
        view: dict[str, Any] = {}
        for _ in range(int(timeout_s / 0.1)):
            status, view = await self.get(f"/api/v1/documents/{doc_id}", organ_id)
            assert status == 200, view
            if done(view):
                return view
            await asyncio.sleep(0.1)
        raise AssertionError(f"not done in {timeout_s}s: {json.dumps(view, indent=1)[:3000]}")


def states(view: dict[str, Any]) -> dict[str, str]:
    return {r["organ_id"]: r["state"] for r in view["recipients"]}


StartGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def start_gateway(
    tmp_path: Path, test_broker: BrokerSite, store_url: str
) -> AsyncIterator[StartGateway]:
    """``await start_gateway(push={organ_id: url})``: a demo gateway in this event loop."""
    started: list[Gateway] = []

    async def start(
        push: Mapping[str, str] | None = None,
        role: Role = Role.ALL,
        env: Mapping[str, str] | None = None,
        soap: Mapping[str, str] | None = None,
        national_port: int | None = None,
    ) -> Gateway:
        setup = init_demo(
            tmp_path / f"demo{len(started)}",
            port=free_port(),
            broker_url=test_broker.url,
            store_url=store_url,
            prefix=test_broker.new_prefix("e"),
            national_port=national_port,
        )
        holder = DirectoryHolder(load_directory(setup.directory_path))
        for organ_id, url in (push or {}).items():
            current = holder.current.get(organ_id)
            assert current is not None, organ_id
            holder.upsert(replace(current, delivery=Delivery(DeliveryMethod.PUSH, url)))
        for organ_id, route in (soap or {}).items():  # soap={organ_id: SOAP route name}
            current = holder.current.get(organ_id)
            assert current is not None, organ_id
            holder.upsert(replace(current, delivery=Delivery(DeliveryMethod.SOAP, route)))
        write_directory(setup.directory_path, holder.current)  # seeds the empty store at start
        metrics_env = {"LGSP_METRICS__TOKEN_HASHES": METRICS_TOKEN_HASH}
        settings = load_settings(setup.config_path, env={**TEST_ENV, **metrics_env, **(env or {})})
        service = Service(settings, role, drain_grace_s=0.3, shutdown_timeout_s=15)
        await service.start()
        gateway = Gateway(setup, settings, service, aiohttp.ClientSession())
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        await gateway.session.close()
        await gateway.service.stop()
        await delete_topology(gateway.settings)


@pytest.fixture
def lgsp_run(
    tmp_path: Path,
    test_broker: BrokerSite,
    push_receiver: PushReceiver,
    lgsp_processes: NewProcess,
) -> RunningGateway:
    """A demo whose district takes pushes at ``push_receiver``, for ``lgsp run``; not started."""
    return lgsp_processes(
        demo_pushing_to(tmp_path, test_broker, push_receiver.url, "r"), "lgsp-run"
    )


def demo_pushing_to(tmp_path: Path, broker: BrokerSite, receiver_url: str, tag: str) -> DemoSetup:
    """A demo (SQLite log under ``tmp_path``) whose district takes pushes at ``receiver_url``."""
    setup = init_demo(
        tmp_path / "demo",
        port=free_port(),
        broker_url=broker.url,
        store_url=f"sqlite+aiosqlite:///{tmp_path}/log.db",
        prefix=broker.new_prefix(tag),
    )
    deliver_by_push(setup, DISTRICT, receiver_url)  # seeds the empty store at start
    return setup


@pytest.fixture
async def push_receiver() -> AsyncIterator[PushReceiver]:
    receiver = PushReceiver()
    app = web.Application()
    app.router.add_post("/inbox", receiver.handle)
    async with local_site(app) as base_url:
        receiver.url = f"{base_url}/inbox"
        yield receiver


def status_for(document: DocumentPackage, sender: str, code: str) -> bytes:
    return serialize_package(build.status_for(document, organization(sender), StatusCode(code)))
