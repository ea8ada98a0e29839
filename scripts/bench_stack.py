"""A demo gateway for a benchmark: gateway and worker processes, push receiver, a fresh store."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import aiohttp
import bench_profiled
import bench_receiver
from bench_machine import wait_s
from bench_measure import cpu_s, peak_rss_mb, per_part, pids_of
from bench_packages import DEPARTMENT
from bench_procs import LGSP, Proc, free_port, spawn, stop
from bench_receiver import ReceiverClient
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.broker.messages import METHODS
from gateway.broker.topology import Topology
from gateway.core.settings import Settings, load_settings
from gateway.demo.layout import DemoSetup
from gateway.demo.participants import deliver_by_push
from gateway.demo.setup import init_demo

DEFAULT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"
READY_TIMEOUT_S = 60.0


@dataclass
class Stack:
    """A running demo: gateway and worker processes, the receiver, and a client for them."""

    setup: DemoSetup
    settings: Settings
    session: aiohttp.ClientSession
    receiver: ReceiverClient
    gateways: list[Proc]
    workers: list[Proc]
    others: list[Proc]  # the receiver
    store_db: str | None  # the PostgreSQL database, if any

    @property
    def documents_url(self) -> str:
        return f"http://127.0.0.1:{self.setup.port}/api/v1/documents"

    def api_key(self, organ_id: str) -> str:
        return self.setup.api_keys[organ_id]

    def peak_rss_mb(self) -> dict[str, float]:
        """The largest ``VmHWM`` among each role's processes, in MiB."""
        out: dict[str, float] = {}
        for proc in self.gateways + self.workers:
            out[proc.role] = max(out.get(proc.role, 0.0), round(peak_rss_mb(proc.popen.pid), 1))
        return out

    def parts(self) -> list[tuple[str, list[int]]]:
        """The processes measured, by part: this bench, our processes, the broker (all its
        users!), and the PostgreSQL backends serving this demo's database."""
        out = [("bench", [os.getpid()])]
        out += [(p.role, [p.popen.pid]) for p in [*self.gateways, *self.workers, *self.others]]
        out.append(("broker", pids_of("beam.smp")))
        if self.store_db:
            out.append(("store", pids_of(f"postgres {self.store_db} ")))
        return out

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds used so far per part (``parts``)."""
        return per_part(self.parts(), cpu_s)

    def wait_s(self) -> dict[str, float]:
        """Seconds each part's threads waited for a core so far (``bench_machine.wait_s``)."""
        return per_part(self.parts(), wait_s)

    def check_alive(self) -> None:
        for proc in self.gateways + self.workers:
            if proc.popen.poll() is not None:
                raise RuntimeError(
                    f"{proc.role} exited with {proc.popen.returncode}:\n{proc.tail()}"
                )


@dataclass(frozen=True)
class StackOptions:
    broker_url: str = DEFAULT_BROKER_URL
    store_url: str | None = None  # None: SQLite in the demo dir; postgresql: a fresh database
    gateways: int = 1
    workers: int = 1
    keep_dir: bool = False
    profile_dir: Path | None = None  # run gateways and workers under cProfile, stats here
    code_dir: Path | None = None  # run gateways and workers from this copy of the code
    env: dict[str, str] = field(default_factory=dict)  # extra LGSP_* settings for the processes


@contextlib.asynccontextmanager
async def fresh_database(server_url: str | None) -> AsyncIterator[str | None]:
    """A PostgreSQL database created on ``server_url``'s server and dropped afterwards."""
    if server_url is None or not server_url.startswith("postgresql"):
        yield server_url
        return
    name = f"lgsp_bench_{secrets.token_hex(5)}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def delete_topology(settings: Settings, methods: Sequence[str] = METHODS) -> None:
    """Delete the quorum queues and the exchange of this demo's broker prefix."""
    conf = settings.broker
    topology = Topology(conf.prefix, tuple(methods), tuple(conf.retry_delays_s))
    connection = await aio_pika.connect(conf.urls[0])
    async with connection, connection.channel() as channel:
        await topology.delete(channel)


def _make_demo(
    root: Path, options: StackOptions, store_url: str | None, receiver_url: str
) -> DemoSetup:
    setup = init_demo(
        root / "demo",
        port=free_port(),
        broker_url=options.broker_url,
        store_url=store_url,
        prefix=f"bench-{secrets.token_hex(4)}",
    )
    deliver_by_push(setup, DEPARTMENT, receiver_url)  # seeds the bench's empty store at start
    return setup


async def _wait_http(session: aiohttp.ClientSession, url: str, procs: Sequence[Proc]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.role} exited at start-up:\n{proc.tail()}")
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(url) as r:
                if r.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} not ready in {READY_TIMEOUT_S} s")


async def _wait_log(procs: Sequence[Proc], marker: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    for proc in procs:
        while marker not in proc.log_path.read_text(errors="replace"):
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.role} exited at start-up:\n{proc.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.role} did not log {marker!r}:\n{proc.tail()}")
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running_stack(options: StackOptions) -> AsyncIterator[Stack]:
    """A fresh demo (own broker prefix, own store), its processes and the receiver; torn down
    afterwards (SIGTERM, the prefix's queues deleted, the PostgreSQL database dropped)."""
    root = Path(tempfile.mkdtemp(prefix="lgsp-bench-"))
    try:
        async with (
            fresh_database(options.store_url) as store_url,
            _processes(root, options, store_url) as stack,
        ):
            yield stack
    finally:
        if options.keep_dir:
            print(f"# kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def _lgsp_run(options: StackOptions, setup: DemoSetup, role: str) -> list[str]:
    args = ["run", "--config", str(setup.config_path), "--role", role]
    if options.profile_dir is None:
        return [str(LGSP), *args]
    options.profile_dir.mkdir(parents=True, exist_ok=True)
    out = options.profile_dir / role
    return [sys.executable, bench_profiled.__file__, str(out), *args]


@contextlib.asynccontextmanager
async def _processes(
    root: Path,
    options: StackOptions,
    store_url: str | None,
) -> AsyncIterator[Stack]:
    procs: list[Proc] = []
    settings: Settings | None = None
    try:
        async with aiohttp.ClientSession() as session:
            recv_port = free_port()
            receiver = spawn(
                "receiver",
                [sys.executable, bench_receiver.__file__, "--port", str(recv_port)],
                root / "receiver.log",
            )
            procs.append(receiver)
            recv_base = f"http://127.0.0.1:{recv_port}"
            setup = _make_demo(root, options, store_url, f"{recv_base}/inbox")
            settings = load_settings(setup.config_path, env={})
            env = dict(options.env)
            if options.code_dir is not None:
                env["PYTHONPATH"] = str(options.code_dir.resolve())
            gateways = [
                spawn(
                    "gateway", _lgsp_run(options, setup, "gateway"), root / f"gateway{i}.log", env
                )
                for i in range(options.gateways)
            ]
            workers = [
                spawn("worker", _lgsp_run(options, setup, "worker"), root / f"worker{i}.log", env)
                for i in range(options.workers)
            ]
            procs += gateways + workers
            await _wait_http(session, f"{recv_base}/count", [receiver])
            await _wait_http(session, f"http://127.0.0.1:{setup.port}/readyz", gateways)
            await _wait_log(workers, "workers_started")
            store_db = (
                make_url(store_url).database
                if store_url and store_url.startswith("postgresql")
                else None
            )
            yield Stack(
                setup,
                settings,
                session,
                ReceiverClient(session, recv_base),
                gateways,
                workers,
                [receiver],
                store_db,
            )
    finally:
        stop(procs)
        if settings is not None:
            await delete_topology(settings)
