"""Two provinces connected through the national platform: gateway set-ups, a simulator subprocess.

Thanh Hóa (H56) is the ordinary demo; Nghệ An (H41) is a demo whose directory holds Nghệ An's
agencies instead. Both PKIs share one root CA (as every Vietnamese agency certificate chains to
the national root), so each gateway verifies the other province's signatures. Each gateway has
its own SQLite store and its own RabbitMQ topology prefix, and polls the simulator as its own
system.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from service.service_kit import delete_topology, free_port
from service_sites import BrokerSite

from gateway.core.directory import (
    Delivery,
    Directory,
    Participant,
    ParticipantKind,
    ParticipantLevel,
    dump_directory,
    generate_api_key,
)
from gateway.core.methods import DeliveryMethod
from gateway.core.settings import Settings, load_settings
from gateway.demo import pki
from gateway.demo.setup import init_demo
from gateway.edxml import build
from gateway.edxml.model import (
    DocumentPackage,
    Organization,
    Package,
    StatusCode,
    StatusPackage,
)
from gateway.edxml.xml_codec import serialize_package
from gateway.service.runner import Role, Service
from gateway.signatures.binding import fingerprint
from gateway.signatures.xmldsig import sign_xml

NATIONAL = "000.00.00.G22"
H56_PROVINCE, H56_DEPARTMENT = "000.00.00.H56", "000.00.04.H56"
H41_PROVINCE, H41_DEPARTMENT = "000.00.00.H41", "000.00.04.H41"
H56_SYSTEM, H41_SYSTEM = "lgsp-h56", "lgsp-h41"
_D, _K, _L = pki.DemoParticipant, pki.ParticipantKind, pki.ParticipantLevel
H41_PARTICIPANTS = (
    _D(H41_PROVINCE, "UBND tỉnh Nghệ An", _K.STATE, _L.PROVINCE),
    _D(H41_DEPARTMENT, "Sở Nội vụ tỉnh Nghệ An", _K.STATE, _L.PROVINCE, H41_PROVINCE),
)
NAMES = {p.organ_id: p.name for p in (*pki.DEMO_PARTICIPANTS, *H41_PARTICIPANTS)}
GATEWAY_ENV = {
    "LGSP_LOG__JSON": "false",
    "LGSP_BROKER__OUTBOX_INTERVAL_S": "0.5",
    "LGSP_BROKER__OUTBOX_AGE_S": "1",
}
QUICK_RETRIES = {"LGSP_BROKER__RETRY_DELAYS_S": "0.2,0.4,0.8", "LGSP_BROKER__MAX_TRIES": "4"}


def organization(organ_id: str) -> Organization:
    name = NAMES.get(organ_id, organ_id)
    return Organization(
        organ_id=organ_id,
        organ_name=name,
        organization_in_charge=name,
        organ_add="Việt Nam",
        email="vanthu@example.gov.vn",
        telephone="0238 3844 000",
        fax="0238 3844 001",
        website="gov.vn",
    )


def new_document(
    sender: str, recipients: list[str], subject: str = "V/v liên thông"
) -> DocumentPackage:
    return build.new_document(
        organization(sender),
        [organization(r) for r in recipients],
        code_number=str(secrets.randbelow(10**6)),
        code_notation="UBND-VP",
        subject=subject,
        content="Nội dung",
        attachments=[("cv.pdf", secrets.token_bytes(256), "application/pdf")],
    )


def status_of(document: DocumentPackage, sender: str, code: str) -> StatusPackage:
    return build.status_for(document, organization(sender), StatusCode(code))


# --- brokers -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def second_broker(test_broker: BrokerSite) -> BrokerSite:
    """The other province's broker: the same server and vhost as the first (the project's rule:
    no vhost per run), kept apart by its own topology prefix; the run's teardown deletes it."""
    return test_broker


# --- the national simulator as a subprocess ------------------------------------------------------


@dataclass
class SimProcess:
    """``lgsp sim national`` in a child process, on a fixed port and database (restartable)."""

    db: Path
    port: int = field(default_factory=free_port)
    secrets: dict[str, str] = field(
        default_factory=lambda: {
            H56_SYSTEM: secrets.token_hex(16),
            H41_SYSTEM: secrets.token_hex(16),
        }
    )
    process: asyncio.subprocess.Process | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/XrdAdapter/adapter"

    async def start(self) -> None:
        lgsp = Path(sys.executable).with_name("lgsp")
        flags = [
            f"--system={H56_SYSTEM}:{self.secrets[H56_SYSTEM]}:*.H56",
            f"--system={H41_SYSTEM}:{self.secrets[H41_SYSTEM]}:*.H41",
        ]
        self.process = await asyncio.create_subprocess_exec(
            str(lgsp),
            "sim",
            "national",
            "--port",
            str(self.port),
            "--db",
            str(self.db),
            *flags,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(300):
            if self.process.returncode is not None:
                assert self.process.stderr is not None
                raise AssertionError(f"simulator exited: {await self.process.stderr.read()!r}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return
        raise AssertionError("the simulator did not listen within 15 s")

    async def kill(self) -> None:
        """Stop it the hard way (SIGKILL): whatever it acknowledged must survive."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self.process = None


@pytest.fixture
async def sim_process(tmp_path: Path) -> AsyncIterator[SimProcess]:
    sim = SimProcess(tmp_path / "national-sim.db")
    await sim.start()
    yield sim
    await sim.kill()


# --- the gateways --------------------------------------------------------------------------------


@dataclass
class Province:
    """One province's gateway (HTTP + workers + national poller) and a client for its API."""

    dir: Path
    settings: Settings
    api_keys: Mapping[str, str]
    service: Service
    session: aiohttp.ClientSession

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http.port}"

    def sign(self, package: Package, organ_id: str) -> bytes:
        ident = pki.load_identity(self.settings.pki.dir, organ_id)
        return sign_xml(serialize_package(package), ident.key, ident.chain)

    def _headers(self, organ_id: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.api_keys[organ_id]}",
            "Content-Type": "application/xml",
        }

    async def submit(self, body: bytes, organ_id: str) -> dict[str, Any]:
        async with self.session.post(
            f"{self.base_url}/api/v1/documents", data=body, headers=self._headers(organ_id)
        ) as r:
            answer: dict[str, Any] = json.loads(await r.text())
            assert r.status == 202, answer
            return answer

    async def get(self, path: str, organ_id: str) -> Any:
        async with self.session.get(f"{self.base_url}{path}", headers=self._headers(organ_id)) as r:
            raw = await r.read()
            assert r.status == 200, raw[:500]
            return json.loads(raw) if r.content_type.endswith("json") else raw

    async def wait_for(
        self, probe: Callable[[], Any], done: Callable[[Any], bool], timeout_s: float = 30.0
    ) -> Any:
        """Call ``probe`` every 0.1 s until ``done(result)``; fail with the last result."""
        result = None
        for _ in range(int(timeout_s / 0.1)):
            result = await probe()
            if done(result):
                return result
            await asyncio.sleep(0.1)
        raise AssertionError(f"not done in {timeout_s}s: {json.dumps(result, indent=1)[:3000]}")

    async def view(self, doc_id: str, organ_id: str) -> dict[str, Any]:
        view: dict[str, Any] = await self.get(f"/api/v1/documents/{doc_id}", organ_id)
        return view

    async def inbox(self, organ_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self.get("/api/v1/inbox?limit=500", organ_id))["items"]
        return items

    async def stop(self) -> None:
        await self.session.close()
        await self.service.stop()
        await delete_topology(self.settings)


def national_toml(sim: SimProcess, system_id: str, secret: str) -> str:
    return "\n".join(
        [
            "",
            "[national]",
            "enabled = true",
            f'endpoint = "{sim.endpoint}"',
            f'system_id = "{system_id}"',
            f'secret = "{secret}"',
            "poll_interval_s = 0.2",
            "max_backoff_s = 1.0",
            "sync_interval_s = 3600",
            "timeout_s = 5",
            "",
        ]
    )


def thanh_hoa_setup(dir: Path, broker: BrokerSite) -> tuple[Path, dict[str, str]]:
    """The ordinary demo (H56); returns its config path and API keys."""
    setup = init_demo(
        dir,
        port=free_port(),
        broker_url=broker.url,
        store_url=f"sqlite+aiosqlite:///{dir}/log.db",
        prefix=broker.new_prefix("h56"),
    )
    return setup.config_path, dict(setup.api_keys)


def nghe_an_setup(dir: Path, broker: BrokerSite, shared_pki: Path) -> tuple[Path, dict[str, str]]:
    """A demo whose agencies are Nghệ An's (H41), under the same root CA as ``shared_pki``."""
    setup = init_demo(
        dir,
        port=free_port(),
        broker_url=broker.url,
        store_url=f"sqlite+aiosqlite:///{dir}/log.db",
        prefix=broker.new_prefix("h41"),
    )
    shutil.rmtree(setup.pki_dir)
    shutil.copytree(shared_pki, setup.pki_dir)
    pki.init_pki(setup.pki_dir, participants=H41_PARTICIPANTS)
    api_keys: dict[str, str] = {}
    participants = []
    national = next(p for p in pki.DEMO_PARTICIPANTS if p.organ_id == NATIONAL)
    for demo in (*H41_PARTICIPANTS, national):
        api_keys[demo.organ_id], key_hash = generate_api_key()
        cert = pki.load_identity(setup.pki_dir, demo.organ_id).certificate
        is_national = demo.organ_id == NATIONAL
        participants.append(
            Participant(
                organ_id=demo.organ_id,
                name=demo.name,
                kind=ParticipantKind(demo.kind.value),
                parent=demo.parent,
                level=ParticipantLevel(demo.level.value),
                api_key_hashes=(key_hash,),
                signing_cert_fingerprints=(fingerprint(cert),),
                delivery=Delivery(
                    DeliveryMethod.NATIONAL if is_national else DeliveryMethod.MAILBOX
                ),
            )
        )
    setup.directory_path.write_text(dump_directory(Directory(participants)), encoding="utf-8")
    return setup.config_path, api_keys


def _without_section(toml: str, name: str) -> str:
    """``toml`` without its ``[name]`` table (up to the next table header)."""
    kept, skipping = [], False
    for line in toml.splitlines(keepends=True):
        if line.startswith("["):
            skipping = line.split("#")[0].strip() == f"[{name}]"
        if not skipping:
            kept.append(line)
    return "".join(kept)


def _set_national(config_path: Path, national: str) -> None:
    """The demo's own [national] section (the simulator, off) gives way to ``national``."""
    text = config_path.read_text(encoding="utf-8")
    config_path.write_text(_without_section(text, "national") + national, encoding="utf-8")


async def start_province(
    config_path: Path,
    api_keys: Mapping[str, str],
    national: str,
    env: Mapping[str, str] = QUICK_RETRIES,
) -> Province:
    _set_national(config_path, national)
    settings = load_settings(config_path, env={**GATEWAY_ENV, **env})
    service = Service(settings, Role.ALL, drain_grace_s=0.1, shutdown_timeout_s=10)
    await service.start()
    return Province(config_path.parent, settings, api_keys, service, aiohttp.ClientSession())


async def two_provinces(
    tmp_path: Path,
    broker: BrokerSite,
    broker41: BrokerSite,
    sim: SimProcess,
    env: Mapping[str, str] = QUICK_RETRIES,
) -> tuple[Province, Province]:
    """Start Thanh Hóa and Nghệ An, each polling ``sim`` as its own system."""
    config56, keys56 = thanh_hoa_setup(tmp_path / "h56", broker)
    config41, keys41 = nghe_an_setup(tmp_path / "h41", broker41, tmp_path / "h56" / "pki")
    h56 = await start_province(
        config56, keys56, national_toml(sim, H56_SYSTEM, sim.secrets[H56_SYSTEM]), env
    )
    try:
        h41 = await start_province(
            config41, keys41, national_toml(sim, H41_SYSTEM, sim.secrets[H41_SYSTEM]), env
        )
    except BaseException:
        await h56.stop()
        raise
    return h56, h41
