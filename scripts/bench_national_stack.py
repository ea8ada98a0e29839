"""Benchmark support, national mix: the simulator, Nghệ An's (H41) stack and its receiver.

Used by ``bench_national.py``. The H41 stack is ``lgsp run --role gateway`` + ``--role worker``
on a demo directory of Nghệ An's agencies (as tests/national/provinces.py builds it): its PKI is
issued under Thanh Hóa's root CA, its store is SQLite in its directory, its broker names its own
prefix in the default vhost (deleted afterwards), and its province ``000.00.00.H41`` is pushed
to a receiver subprocess (``python scripts/bench_national_stack.py receiver --port P``) that
records the first arrival (``time.time()``) per SHA-256 of the body: the bytes delivered are the
bytes H56 was sent, so the bench matches arrivals to submissions without knowing H41's ids.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import secrets
import shutil
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_profiled
from bench_measure import peak_rss_mb
from bench_procs import LGSP, Proc, free_port, spawn, stop
from bench_stack import Stack, delete_topology

from gateway.core.directory import (
    Delivery,
    Directory,
    Participant,
    ParticipantKind,
    ParticipantLevel,
    dump_directory,
)
from gateway.core.methods import DeliveryMethod
from gateway.core.settings import load_settings
from gateway.demo import pki
from gateway.demo.layout import DemoSetup
from gateway.demo.setup import init_demo

H41_PROVINCE, H41_DEPARTMENT, NATIONAL = "000.00.00.H41", "000.00.04.H41", "000.00.00.G22"
H56_SYSTEM, H41_SYSTEM = "lgsp-h56", "lgsp-h41"
H41_PARTICIPANTS = (
    pki.DemoParticipant(
        H41_PROVINCE, "UBND tỉnh Nghệ An", ParticipantKind.STATE, ParticipantLevel.PROVINCE
    ),
    pki.DemoParticipant(
        H41_DEPARTMENT,
        "Sở Nội vụ tỉnh Nghệ An",
        ParticipantKind.STATE,
        ParticipantLevel.PROVINCE,
        H41_PROVINCE,
    ),
)
READY_TIMEOUT_S = 60.0


# --- the receiver: first arrival per body SHA-256 ------------------------------------------------


def receiver_app() -> web.Application:
    first_at: dict[str, float] = {}

    async def inbox(request: web.Request) -> web.Response:
        body = await request.read()
        first_at.setdefault(hashlib.sha256(body).hexdigest(), time.time())
        return web.Response(text="ok")

    async def count(_request: web.Request) -> web.Response:
        return web.json_response({"delivered": len(first_at)})

    async def arrivals(_request: web.Request) -> web.Response:
        return web.json_response(first_at)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/inbox", inbox)
    app.router.add_get("/count", count)
    app.router.add_get("/arrivals", arrivals)
    return app


async def _get_json(session: aiohttp.ClientSession, url: str) -> dict[str, object]:
    async with session.get(url) as r:
        data: dict[str, object] = await r.json()
        return data


# --- processes ----------------------------------------------------------------------------------


async def wait_ready(
    procs: Sequence[Proc], *, port: int | None = None, log_marker: str | None = None
) -> None:
    """Until ``port`` accepts connections and/or every proc's log holds ``log_marker``."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        for proc in procs:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.role} exited at start-up:\n{proc.tail()}")
        ready = (
            all(log_marker in p.log_path.read_text(errors="replace") for p in procs)
            if log_marker
            else True
        )
        if ready and port is not None:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                ready = False
            else:
                writer.close()
                await writer.wait_closed()
        if ready:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{[p.role for p in procs]} not ready in {READY_TIMEOUT_S} s:\n{procs[0].tail()}"
            )
        await asyncio.sleep(0.1)


@dataclass(frozen=True)
class Simulator:
    proc: Proc
    endpoint: str
    secrets: dict[str, str]


@contextlib.asynccontextmanager
async def running_simulator(
    root: Path, env: dict[str, str] | None = None
) -> AsyncIterator[Simulator]:
    """``lgsp sim national`` on a fresh SQLite file in ``root`` (the caller removes ``root``);
    ``env``: extra environment (e.g. ``PYTHONPATH`` of an older copy of the code)."""
    keys = {H56_SYSTEM: secrets.token_hex(16), H41_SYSTEM: secrets.token_hex(16)}
    config = root / "sim.toml"
    config.touch(mode=0o600)
    config.write_text(
        "".join(
            f'[[system]]\nsystem_id = "{system}"\nsecret = "{keys[system]}"\n'
            f'organ_ids = ["*.{system[-3:].upper()}"]\n\n'
            for system in keys
        ),
        encoding="utf-8",
    )
    port = free_port()
    proc = spawn(
        "simulator",
        [
            str(LGSP),
            "sim",
            "national",
            "--port",
            str(port),
            "--db",
            str(root / "national-sim.db"),
            "--config",
            str(config),
        ],
        root / "simulator.log",
        env,
    )
    try:
        await wait_ready([proc], port=port)
        yield Simulator(proc, f"http://127.0.0.1:{port}/XrdAdapter/adapter", keys)
    finally:
        stop([proc])


def national_env(sim: Simulator, system_id: str, poll_interval_s: float) -> dict[str, str]:
    """``[national]`` settings for a stack's processes, as environment overrides."""
    prefix = "LGSP_NATIONAL__"
    return {
        f"{prefix}ENABLED": "true",
        f"{prefix}ENDPOINT": sim.endpoint,
        f"{prefix}SYSTEM_ID": system_id,
        f"{prefix}SECRET": sim.secrets[system_id],
        f"{prefix}POLL_INTERVAL_S": str(poll_interval_s),
        f"{prefix}MAX_BACKOFF_S": "1",
        f"{prefix}SYNC_INTERVAL_S": "3600",
        f"{prefix}TIMEOUT_S": "10",
    }


def make_h41(root: Path, broker_url: str, h56_pki: Path, receiver_url: str) -> DemoSetup:
    """Nghệ An's demo: H41 agencies (the province pushed to ``receiver_url``) under H56's CA."""
    setup = init_demo(
        root, port=free_port(), broker_url=broker_url, prefix=f"bench-h41-{secrets.token_hex(3)}"
    )
    shutil.rmtree(setup.pki_dir)
    shutil.copytree(h56_pki, setup.pki_dir)
    pki.init_pki(setup.pki_dir, participants=H41_PARTICIPANTS)
    national = next(p for p in pki.DEMO_PARTICIPANTS if p.organ_id == NATIONAL)
    deliveries = {
        H41_PROVINCE: Delivery(DeliveryMethod.PUSH, receiver_url),
        NATIONAL: Delivery(DeliveryMethod.NATIONAL),
    }
    participants = [
        Participant(
            organ_id=p.organ_id,
            name=p.name,
            kind=p.kind,
            parent=p.parent,
            level=p.level,
            delivery=deliveries.get(p.organ_id, Delivery(DeliveryMethod.MAILBOX)),
        )
        for p in (*H41_PARTICIPANTS, national)
    ]
    setup.directory_path.write_text(dump_directory(Directory(participants)), encoding="utf-8")
    return setup


@dataclass
class NgheAn:
    """The H41 stack: gateway, worker (restartable with another poll interval) and receiver."""

    root: Path
    setup: DemoSetup
    sim: Simulator
    session: aiohttp.ClientSession
    receiver_url: str
    env: dict[str, str]
    profile_dir: Path | None = None  # run under cProfile (``bench_profiled.py``)
    gateway: Proc | None = None
    worker: Proc | None = None
    rss_mb: dict[str, float] = field(default_factory=dict)

    def _spawn(self, role: str, poll_interval_s: float) -> Proc:
        args = [str(LGSP), "run", "--config", str(self.setup.config_path), "--role", role]
        if self.profile_dir is not None:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            out = self.profile_dir / f"h41_{role}-{poll_interval_s:g}"
            args = [
                sys.executable,
                str(Path(bench_profiled.__file__)),
                str(out),
                *args[1:],
            ]
        env = {**self.env, **national_env(self.sim, H41_SYSTEM, poll_interval_s)}
        return spawn(f"h41_{role}", args, self.root / f"{role}-{poll_interval_s}.log", env)

    async def start(self, poll_interval_s: float) -> None:
        """Start the gateway (once) and a worker polling every ``poll_interval_s``."""
        if self.worker is not None:
            self.note_rss()
            stop([self.worker])
        if self.gateway is None:
            self.gateway = self._spawn("gateway", poll_interval_s)
            await wait_ready([self.gateway], port=self.setup.port)
        self.worker = self._spawn("worker", poll_interval_s)
        await wait_ready([self.worker], log_marker="workers_started")

    def procs(self) -> list[Proc]:
        return [p for p in (self.gateway, self.worker) if p is not None]

    def note_rss(self) -> None:
        for proc in self.procs():
            if proc.popen.poll() is None:
                rss = round(peak_rss_mb(proc.popen.pid), 1)
                self.rss_mb[proc.role] = max(self.rss_mb.get(proc.role, 0.0), rss)

    async def count(self) -> int:
        return int(str((await _get_json(self.session, f"{self.receiver_url}/count"))["delivered"]))

    async def arrivals(self) -> dict[str, float]:
        data = await _get_json(self.session, f"{self.receiver_url}/arrivals")
        return {k: float(str(v)) for k, v in data.items()}

    def log_lines(self) -> int:
        assert self.worker is not None
        return len(self.worker.log_path.read_text(errors="replace").splitlines())

    def poll_rounds(self, after_line: int) -> list[tuple[int, float]]:
        """(documents, round length s) of each busy poll round logged after ``after_line``."""
        assert self.worker is not None
        rounds = []
        for line in self.worker.log_path.read_text(errors="replace").splitlines()[after_line:]:
            if '"national_polled"' in line:
                with contextlib.suppress(ValueError, KeyError):
                    event = json.loads(line)
                    rounds.append(
                        (int(event["done"]) + int(event["failed"]), float(event["round_s"]))
                    )
        return rounds


@contextlib.asynccontextmanager
async def running_h41(
    root: Path,
    sim: Simulator,
    broker_url: str,
    h56: Stack,
    env: dict[str, str],
    *,
    profile_dir: Path | None = None,
) -> AsyncIterator[NgheAn]:
    await asyncio.to_thread(root.mkdir)
    recv_port = free_port()
    receiver = spawn(
        "h41_receiver",
        [sys.executable, __file__, "receiver", "--port", str(recv_port)],
        root / "receiver.log",
    )
    h41: NgheAn | None = None
    try:
        await wait_ready([receiver], port=recv_port)
        recv = f"http://127.0.0.1:{recv_port}"
        setup = make_h41(root / "demo", broker_url, h56.setup.pki_dir, f"{recv}/inbox")
        h41 = NgheAn(root, setup, sim, h56.session, recv, env, profile_dir)
        yield h41
    finally:
        stop([*(h41.procs() if h41 else []), receiver])
        if h41 is not None:  # H41 shares the default vhost under its own prefix: clean it
            await delete_topology(load_settings(h41.setup.config_path, env={}))


def receiver_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description="the national mix's push receiver")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    web.run_app(receiver_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["receiver"]:
        sys.exit(receiver_main(sys.argv[2:]))
    sys.exit("usage: bench_national_stack.py receiver --port PORT")
