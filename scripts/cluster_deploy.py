"""``scripts/cluster up|down|status``: a local deployment of every part, as on several hosts.

Three RabbitMQ nodes (``scripts/rabbitmq-cluster.sh``, quorum queues), a private PostgreSQL
(``cluster_procs.PrivatePostgres``, a fresh database) or a fresh database on ``--store-url``'s
server, the national simulator, two gateway processes on two ports and two worker processes,
all sharing one ``gateway.toml`` whose ``broker.url`` lists the three nodes. Everything lives in
the deployment's directory (``var/cluster`` by default): ``cluster.json`` (ports and pids),
``demo/`` (settings, directory, PKI, credentials), ``logs/``, ``postgres/``, ``rabbitmq/``.

    scripts/cluster up [--dir DIR] [--store-url postgresql+asyncpg://…] [--workers N]
    scripts/cluster status [--dir DIR]        scripts/cluster down [--dir DIR] [--clean]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster_procs import (  # noqa: E402
    PrivatePostgres,
    alive,
    drop_database_on,
    free_port,
    fresh_database_on,
    kill,
    port_open,
    reachable_by_others,
    start_detached,
    terminate,
    wait_port,
)
from cluster_toml import deployment_toml  # noqa: E402

from gateway.demo.setup import init_demo  # noqa: E402

LGSP = Path(sys.executable).parent / "lgsp"
RABBIT_SCRIPT = REPO / "scripts" / "rabbitmq-cluster.sh"
DEFAULT_DIR = REPO / "var" / "cluster"
STATE_NAME = "cluster.json"
READY_TIMEOUT_S = 90.0
_SAVING = threading.Lock()
# RabbitMQ settings of the deployment's nodes (what advanced.config's {rabbit, [...]} would hold;
# set at run time because scripts/rabbitmq-cluster.sh writes its own files). A retry whose move
# back to the work queue (at-least-once dead-lettering) found that queue electing a new leader is
# moved again after this many ms: RabbitMQ 3.10's default, 180000, holds it 3 minutes.
RABBIT_APP_ENV = {"dead_letter_worker_publisher_confirm_timeout": 10_000}


@dataclass
class Deployment:
    """A deployment's layout and pids, as kept in ``DIR/cluster.json``."""

    dir: str
    gateway_ports: list[int]
    workers: int
    national_port: int
    store_url: str
    broker_urls: list[str]
    broker_prefix: str
    rmq_amqp_base: int
    rmq_dist_base: int
    rmq_prefix: str
    pg_port: int | None = None  # the private PostgreSQL (None: --store-url's server)
    pg_dir: str | None = None  # its directory: DIR/postgres, or a temporary one another user
    # (postgres, when we are root) can reach
    external_store: str | None = None  # that server, whose database ``down`` drops
    pids: dict[str, int] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)  # extra settings written (for show)
    rmq_dir: str | None = None  # a running cluster's -d DIR (its owner starts and stops it)

    # --- paths ----------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return Path(self.dir)

    @property
    def config(self) -> Path:
        return self.root / "demo" / "gateway.toml"

    @property
    def credentials(self) -> dict[str, dict[str, str]]:
        data: dict[str, dict[str, str]] = json.loads(
            (self.root / "demo" / "credentials.json").read_text(encoding="utf-8")
        )
        return data

    @property
    def gateway_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.gateway_ports]

    @property
    def national_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.national_port}/XrdAdapter/adapter"

    @property
    def postgres(self) -> PrivatePostgres | None:
        if self.pg_port is None or self.pg_dir is None:
            return None
        return PrivatePostgres(Path(self.pg_dir), self.pg_port)

    def log_path(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def save(self) -> None:
        with _SAVING:  # faults run in threads
            tmp = self.root / f"{STATE_NAME}.tmp"
            tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
            tmp.replace(self.root / STATE_NAME)

    @classmethod
    def load(cls, dir: Path) -> Deployment:
        path = dir.resolve() / STATE_NAME
        if not path.exists():
            raise SystemExit(f"cluster: {dir} holds no deployment (no {STATE_NAME})")
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    # --- the processes --------------------------------------------------------------------
    def names(self) -> list[str]:
        gateways = [f"gateway{i + 1}" for i in range(len(self.gateway_ports))]
        return ["national", *gateways, *(f"worker{i + 1}" for i in range(self.workers))]

    def _args(self, name: str) -> list[str]:
        if name == "national":
            demo = self.root / "demo"
            return [
                str(LGSP), "sim", "national", "--port", str(self.national_port),
                "--db", str(demo / "var" / "national-sim.db"),
                "--config", str(demo / "national-sim.toml"),
            ]  # fmt: skip
        if name.startswith("gateway"):
            port = self.gateway_ports[int(name[len("gateway") :]) - 1]
            return [str(LGSP), "run", "--config", str(self.config), "--role", "gateway",
                    "--port", str(port)]  # fmt: skip
        return [str(LGSP), "run", "--config", str(self.config), "--role", "worker"]

    def running(self, name: str) -> bool:
        pid = self.pids.get(name)
        return pid is not None and alive(pid, self.dir)

    def start(self, name: str, *, wait: bool = True) -> int:
        """Start one process (``gateway1``, ``worker2``, ``national``…), ready when it returns."""
        if self.running(name):
            raise RuntimeError(f"{name} already runs (pid {self.pids[name]})")
        env = {k: v for k, v in os.environ.items() if not k.startswith("LGSP_")}
        log = self.log_path(name)
        offset = log.stat().st_size if log.exists() else 0
        pid = start_detached(self._args(name), log, env, cwd=self.root)
        self.pids[name] = pid
        self.save()
        if wait:
            self.wait_ready(name, offset)
        return pid

    def wait_ready(self, name: str, log_offset: int = 0) -> None:
        pid = self.pids[name]
        if name == "national":
            wait_port(self.national_port, READY_TIMEOUT_S, pid=pid, marker=self.dir)
        elif name.startswith("gateway"):
            url = self.gateway_urls[int(name[len("gateway") :]) - 1] + "/readyz"
            self._wait(name, lambda: _http_ok(url))
        else:
            log = self.log_path(name)
            self._wait(name, lambda: b"workers_started" in log.read_bytes()[log_offset:])

    def _wait(self, name: str, ready: object) -> None:
        assert callable(ready)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready():
            if not self.running(name):
                tail = self.log_path(name).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited at start-up:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready in {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.2)

    def kill(self, name: str) -> bool:
        """SIGKILL one process (a crash); whether it was running."""
        pid = self.pids.get(name)
        return pid is not None and kill(pid, self.dir)

    def stop(self, name: str) -> None:
        pid = self.pids.get(name)
        if pid is not None:
            terminate(pid, self.dir)

    # --- RabbitMQ ------------------------------------------------------------------------
    def rabbit(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``rabbitmq-cluster.sh -d DIR/rabbitmq ARGS`` with this deployment's ports and names."""
        env = {
            **os.environ,
            "RMQ_AMQP_BASE": str(self.rmq_amqp_base),
            "RMQ_DIST_BASE": str(self.rmq_dist_base),
            "RMQ_PREFIX": self.rmq_prefix,
        }
        return subprocess.run(
            [str(RABBIT_SCRIPT), "-d", self.rmq_dir or str(self.root / "rabbitmq"), *args],
            env=env,
            check=check,
            capture_output=True,
            text=True,
        )

    def tune_rabbit(self, node: int) -> None:
        """Apply ``RABBIT_APP_ENV`` to a running node (again after each restart of it)."""
        for key, value in RABBIT_APP_ENV.items():
            self.rabbit("ctl", str(node), "eval", f"application:set_env(rabbit, {key}, {value}).")

    def rabbit_node_up(self, node: int) -> bool:
        return port_open(self.rmq_amqp_base + node)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@dataclass(frozen=True)
class UpOptions:
    dir: Path = DEFAULT_DIR
    store_url: str | None = None  # an existing PostgreSQL server (no restart fault then)
    workers: int = 2
    gateways: int = 2
    rmq_amqp_base: int = 5770  # nodes on 5771-5773
    rmq_dist_base: int = 25770
    rmq_prefix: str = "lgspc"
    settings: dict[str, str] = field(default_factory=dict)  # "section.key" -> TOML value
    rmq_dir: Path | None = None  # use the cluster rabbitmq-cluster.sh runs there (not started)


def up(options: UpOptions) -> Deployment:
    """A fresh deployment in ``options.dir`` (what was there is wiped), every process ready."""
    root = options.dir.resolve()
    if (root / STATE_NAME).exists():
        down(Deployment.load(root), clean=True)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    root.chmod(0o755)  # the private PostgreSQL runs as another user when we are root
    broker_urls = [f"amqp://guest:guest@127.0.0.1:{options.rmq_amqp_base + i}/" for i in (1, 2, 3)]
    pg_port = None if options.store_url else free_port()
    pg_dir = root / "postgres"
    if pg_port and os.geteuid() == 0 and not reachable_by_others(root):  # e.g. pytest tmp_path
        pg_dir = Path(tempfile.mkdtemp(prefix="lgsp-cluster-pg-"))
        pg_dir.chmod(0o755)
    dep = Deployment(
        dir=str(root),
        gateway_ports=[free_port() for _ in range(options.gateways)],
        workers=options.workers,
        national_port=free_port(),
        store_url="",
        broker_urls=broker_urls,
        broker_prefix=f"lgsp-cluster-{secrets.token_hex(3)}",
        rmq_amqp_base=options.rmq_amqp_base,
        rmq_dist_base=options.rmq_dist_base,
        rmq_prefix=options.rmq_prefix,
        pg_port=pg_port,
        pg_dir=str(pg_dir) if pg_port else None,
        external_store=options.store_url,
        settings=dict(options.settings),
        rmq_dir=str(options.rmq_dir.resolve()) if options.rmq_dir else None,
    )
    dep.save()
    try:
        _start(dep, options)
    except BaseException:
        down(dep)
        raise
    return dep


def _start(dep: Deployment, options: UpOptions) -> None:
    root = dep.root
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        rabbit = pool.submit(dep.rabbit, "status" if dep.rmq_dir else "up")
        try:
            dep.store_url = _fresh_store(dep)
            dep.save()
            setup = init_demo(
                root / "demo",
                port=dep.gateway_ports[0],
                broker_url=dep.broker_urls[0],
                store_url=dep.store_url,
                prefix=dep.broker_prefix,
                national_port=dep.national_port,
            )
            demo_toml = setup.config_path.read_text(encoding="utf-8")
            toml = deployment_toml(demo_toml, dep.broker_urls, options.settings)
            dep.config.write_text(toml, encoding="utf-8")
        finally:
            result = rabbit.result()
        (root / "logs").mkdir(exist_ok=True)
        (root / "logs" / "rabbitmq-up.log").write_text(result.stderr, encoding="utf-8")
    for node in (1, 2, 3):
        dep.tune_rabbit(node)
    for name in dep.names():  # the simulator first: the workers' agency sync calls it
        dep.start(name, wait=False)
    for name in dep.names():
        dep.wait_ready(name)


def _fresh_store(dep: Deployment) -> str:
    if dep.external_store is not None:
        return fresh_database_on(dep.external_store)
    pg = dep.postgres
    assert pg is not None
    pg.init()
    pg.start()
    pg.create_database("lgsp")
    return f"postgresql+asyncpg://postgres@127.0.0.1:{pg.port}/lgsp"


def down(dep: Deployment, *, clean: bool = False) -> None:
    """Stop everything (gateways and workers drain on SIGTERM); ``clean`` removes the dir."""
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(dep.stop, reversed(dep.names())))
    pg = dep.postgres
    if pg is not None and pg.data.exists():
        pg.stop("fast")
    if dep.external_store is not None and dep.store_url:
        drop_database_on(dep.external_store, dep.store_url)
    if dep.rmq_dir is None:
        dep.rabbit("down", check=False)
    if clean:
        if pg is not None:
            shutil.rmtree(pg.dir, ignore_errors=True)
        shutil.rmtree(dep.root, ignore_errors=True)


def status(dep: Deployment) -> dict[str, object]:
    procs = {name: dep.running(name) for name in dep.names()}
    return {
        "processes": procs,
        "gateways_ready": [_http_ok(f"{url}/readyz") for url in dep.gateway_urls],
        "rabbitmq_nodes_up": [dep.rabbit_node_up(i) for i in (1, 2, 3)],
        "postgres_up": dep.postgres.running() if dep.postgres else None,
    }


def addresses(dep: Deployment) -> str:
    creds = dep.credentials
    lines = [
        f"deployment in {dep.dir}",
        *(f"  gateway {i}: {url}  (/readyz, /admin/)" for i, url in enumerate(dep.gateway_urls, 1)),
        f"  workers: {dep.workers} processes",
        *(f"  RabbitMQ node {i + 1}: {url}" for i, url in enumerate(dep.broker_urls)),
        f"  PostgreSQL: {dep.store_url}",
        f"  national simulator: {dep.national_endpoint}",
        f"  settings: {dep.config}",
        f"  credentials: {dep.root / 'demo' / 'credentials.json'} "
        f"(admin token {creds['_admin']['token'][:16]}…)",
        f"  logs: {dep.root / 'logs'}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--store-url", help="an existing PostgreSQL server (fresh database)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clean", action="store_true", help="down: remove the directory")
    args = parser.parse_args(argv)
    if args.command == "up":
        dep = up(UpOptions(dir=args.dir, store_url=args.store_url, workers=args.workers))
        print(addresses(dep))
        return 0
    dep = Deployment.load(args.dir)
    if args.command == "down":
        down(dep, clean=args.clean)
        print(f"deployment in {dep.dir} stopped")
        return 0
    state = status(dep)
    print(addresses(dep))
    print(json.dumps(state))
    return 0 if all(state["processes"].values()) else 1  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
