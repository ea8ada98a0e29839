"""Benchmark support: a demo gateway as real processes, a push receiver, a load client, statistics.

Used by ``bench_e2e.py``. ``python scripts/bench_support.py receiver --port P`` runs the push
receiver on its own (the bench starts it as a subprocess so it does not share the load client's
event loop): ``POST /inbox`` answers 200 and records the first arrival time (``time.time()``) per
``X-LGSP-Delivery-Id``; ``GET /count`` and ``GET /arrivals`` report them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import aio_pika
import aiohttp
from aiohttp import web
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gateway.broker.messages import METHODS  # noqa: E402
from gateway.broker.topology import Topology  # noqa: E402
from gateway.core.settings import Settings, load_settings  # noqa: E402
from gateway.demo import pki  # noqa: E402
from gateway.demo.layout import DemoSetup  # noqa: E402
from gateway.demo.participants import deliver_by_push, organization  # noqa: E402
from gateway.demo.setup import init_demo  # noqa: E402
from gateway.edxml import build  # noqa: E402
from gateway.edxml.model import (  # noqa: E402
    DocumentPackage,
    StatusCode,
    TraceHeader,
)
from gateway.edxml.xml_codec import parse_package, serialize_package  # noqa: E402
from gateway.signatures.xmldsig import sign_xml  # noqa: E402

REAL_SAMPLE = REPO / "tests" / "data" / "conformance" / "edoc_new.edxml"
LGSP = Path(sys.executable).parent / "lgsp"
DEFAULT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEPARTMENT = "000.00.04.H56"  # the push recipient
DISTRICT = "000.00.15.H56"  # the sender of every timed package
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
STATUS_CODES = tuple(StatusCode)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0..100) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def peak_rss_mb(pid: int) -> float:
    """``VmHWM`` (peak resident set) of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0.0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pids_of(needle: str) -> list[int]:
    """Live processes whose command line contains ``needle``."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if needle.encode() in cmdline:
            found.append(int(entry.name))
    return found


# --- packages --------------------------------------------------------------------------------


class Signer:
    """Signs packages as one demo participant (RSA-2048, the demo PKI's key type)."""

    def __init__(self, setup: DemoSetup, organ_id: str) -> None:
        self._identity = pki.load_identity(setup.pki_dir, organ_id)

    def sign(self, data: bytes) -> bytes:
        return sign_xml(data, self._identity.key, self._identity.chain)


def original_documents(count: int) -> list[DocumentPackage]:
    """Documents from the department to the district: the ones the status packages answer."""
    return [
        build.new_document(
            organization(DEPARTMENT),
            [organization(DISTRICT)],
            code_number=str(100_000 + i),
            code_notation="SNV-VP",
            subject="V/v thử nghiệm hiệu năng",
            content="Nội dung",
            attachments=[("cong-van.pdf", secrets.token_bytes(512), "application/pdf")],
        )
        for i in range(count)
    ]


def status_packages(
    signer: Signer, originals: Sequence[DocumentPackage], count: int, *, first: int = 0
) -> list[bytes]:
    """``count`` signed ~2 KB status packages from the district, all distinct (timestamp)."""
    start = datetime.now(UTC) - timedelta(days=1)
    return [
        signer.sign(
            serialize_package(
                build.status_for(
                    originals[i % len(originals)],
                    organization(DISTRICT),
                    STATUS_CODES[i % len(STATUS_CODES)],
                    now=start + timedelta(seconds=i),
                )
            )
        )
        for i in range(first, first + count)
    ]


def real_packages(signer: Signer, count: int, *, first: int = 0) -> list[bytes]:
    """``count`` signed copies of edoc_new (~370 KB) from the district to the department."""
    template = parse_package(REAL_SAMPLE.read_bytes())
    assert isinstance(template, DocumentPackage)
    header = template.header
    assert header.code is not None
    marker = "BENCHNUMBER"
    header = replace(
        header,
        from_=organization(DISTRICT),
        to=(organization(DEPARTMENT),),
        document_id=f"{DISTRICT},2024/05/20,{marker}/UBND-VP",
        code=replace(header.code, code_number=marker, code_notation="UBND-VP"),
    )
    trace = replace(
        template.trace_header_list, trace_headers=(TraceHeader(DISTRICT, build.format_timestamp()),)
    )
    data = serialize_package(
        replace(template, header=header, trace_header_list=trace, signature_xml=None)
    )
    run = secrets.token_hex(3)
    return [
        signer.sign(data.replace(marker.encode(), f"{run}-{first + i}".encode()))
        for i in range(count)
    ]


# --- the push receiver -----------------------------------------------------------------------


@dataclass
class Arrivals:
    first_at: dict[str, float] = field(default_factory=dict)
    posts: int = 0


def receiver_app() -> web.Application:
    arrivals = Arrivals()

    async def inbox(request: web.Request) -> web.Response:
        await request.read()
        arrivals.posts += 1
        delivery_id = request.headers.get("X-LGSP-Delivery-Id", "")
        arrivals.first_at.setdefault(delivery_id, time.time())
        return web.Response(text="ok")

    async def count(_request: web.Request) -> web.Response:
        return web.json_response({"delivered": len(arrivals.first_at), "posts": arrivals.posts})

    async def listing(_request: web.Request) -> web.Response:
        return web.json_response(arrivals.first_at)

    app = web.Application(client_max_size=128 * 1024 * 1024)
    app.router.add_post("/inbox", inbox)
    app.router.add_get("/count", count)
    app.router.add_get("/arrivals", listing)
    return app


class ReceiverClient:
    """Reads the receiver subprocess's counters."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self.base_url = base_url

    async def count(self) -> int:
        async with self._session.get(f"{self.base_url}/count") as r:
            return int((await r.json())["delivered"])

    async def arrivals(self) -> dict[str, float]:
        async with self._session.get(f"{self.base_url}/arrivals") as r:
            data: dict[str, float] = await r.json()
            return data


# --- processes -------------------------------------------------------------------------------


@dataclass
class Proc:
    role: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def tail(self, lines: int = 20) -> str:
        self.log_file.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def spawn(
    role: str, args: Sequence[str], log_path: Path, env: dict[str, str] | None = None
) -> Proc:
    log_file = log_path.open("wb")
    popen = subprocess.Popen(
        list(args), stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    return Proc(role, popen, log_path, log_file)


def stop(procs: Sequence[Proc]) -> None:
    """SIGTERM each, then wait (SIGKILL after ``STOP_TIMEOUT_S``)."""
    for proc in procs:
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in procs:
        try:
            proc.popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"# {proc.role} pid {proc.popen.pid} ignored SIGTERM: killed", file=sys.stderr)
            proc.popen.kill()
            proc.popen.wait()
        proc.log_file.close()


# --- the whole bench stack -------------------------------------------------------------------


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

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds used so far per part: our processes, the broker (all its users!), and
        the PostgreSQL backends serving this demo's database."""
        out: dict[str, float] = {"bench": sum(os.times()[:2])}
        for proc in [*self.gateways, *self.workers, *self.others]:
            out[proc.role] = out.get(proc.role, 0.0) + cpu_s(proc.popen.pid)
        out["broker"] = sum(cpu_s(pid) for pid in pids_of("beam.smp"))
        if self.store_db:
            out["store"] = sum(cpu_s(pid) for pid in pids_of(f"postgres {self.store_db} "))
        return out

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
    return [sys.executable, __file__, "profiled", str(out), *args]


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
                [sys.executable, __file__, "receiver", "--port", str(recv_port)],
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


# --- the load client -------------------------------------------------------------------------


_REFUSALS: dict[int, int] = {}  # refusals seen per HTTP status (only the first few are shown)


@dataclass(frozen=True, slots=True)
class Submission:
    started_at: float  # time.time() when it was due to be sent
    accept_ms: float
    status: int
    delivery_ids: tuple[str, ...]


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    started_at: float,
    started_perf: float,
) -> Submission:
    async with session.post(url, data=body, headers=headers) as r:
        raw = await r.read()
        status = r.status
    accept_ms = (time.perf_counter() - started_perf) * 1000
    ids: tuple[str, ...] = ()
    if status in (200, 202):
        ids = tuple(rec["delivery_id"] for rec in json.loads(raw)["recipients"])
    elif status >= 400 and _REFUSALS.setdefault(status, 0) < 3:
        print(f"# HTTP {status}: {raw[:300]!r}", file=sys.stderr)
    _REFUSALS[status] = _REFUSALS.get(status, 0) + (status >= 400)
    return Submission(started_at, accept_ms, status, ids)


async def submit_closed(
    stack: Stack, organ_id: str, bodies: Sequence[bytes], *, concurrency: int
) -> list[Submission]:
    """Submit every body with ``concurrency`` requests in flight at all times."""
    headers = {
        "Authorization": f"Bearer {stack.api_key(organ_id)}",
        "Content-Type": "application/xml",
    }
    pending = iter(bodies)
    results: list[Submission] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def lane() -> None:
            for body in pending:
                results.append(
                    await _post(
                        session,
                        stack.documents_url,
                        headers,
                        body,
                        started_at=time.time(),
                        started_perf=time.perf_counter(),
                    )
                )

        await asyncio.gather(*(lane() for _ in range(concurrency)))
    return results


async def submit_open(
    stack: Stack,
    organ_id: str,
    bodies: Sequence[bytes],
    *,
    rate_per_s: float,
    max_in_flight: int = 512,
) -> list[Submission]:
    """Submit one body every ``1/rate_per_s`` seconds whatever the answers' pace (open loop).

    Latency counts from when a request was due, so a late client or a full connection pool
    shows up in the figures instead of hiding (no coordinated omission).
    """
    headers = {
        "Authorization": f"Bearer {stack.api_key(organ_id)}",
        "Content-Type": "application/xml",
    }
    connector = aiohttp.TCPConnector(limit=max_in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:
        base_perf, base_wall = time.perf_counter() + 0.05, time.time() + 0.05

        async def one(i: int, body: bytes) -> Submission:
            due = base_perf + i / rate_per_s
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            wall = base_wall + i / rate_per_s
            return await _post(
                session, stack.documents_url, headers, body, started_at=wall, started_perf=due
            )

        return list(await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies))))


async def wait_delivered(stack: Stack, expected: int, *, stall_s: float = 60.0) -> None:
    """Poll the receiver until ``expected`` distinct deliveries arrived (or no progress)."""
    last, last_change = -1, time.monotonic()
    while True:
        count = await stack.receiver.count()
        if count >= expected:
            return
        if count != last:
            last, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            raise RuntimeError(f"only {count} of {expected} delivered; no progress in {stall_s} s")
        stack.check_alive()
        await asyncio.sleep(0.2)


def profiled_main(argv: Sequence[str]) -> int:
    """``profiled OUT ARGS…``: run ``lgsp ARGS…`` under cProfile (CPU time), stats to OUT.pid."""
    import cProfile  # noqa: PLC0415 (only the profiling runs need it)

    from gateway.cli import main as lgsp_main  # noqa: PLC0415

    out, args = argv[0], list(argv[1:])
    sys.argv = ["lgsp", *args]
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    try:
        return lgsp_main()
    finally:
        profile.disable()
        profile.dump_stats(f"{out}.{os.getpid()}")


def receiver_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description="the bench's push receiver")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    web.run_app(receiver_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["receiver"]:
        sys.exit(receiver_main(sys.argv[2:]))
    if sys.argv[1:2] == ["profiled"] and len(sys.argv) > 3:
        sys.exit(profiled_main(sys.argv[2:]))
    sys.exit("usage: bench_support.py receiver --port PORT | profiled OUT LGSP-ARGS...")
