"""A cluster deployment's record (``DIR/cluster.json``) and the control of each of its processes.

``Deployment`` knows where everything lives and how to start, wait for, stop or kill one process
(the national simulator, ``gatewayN``, ``workerN``) and drive the RabbitMQ nodes through
``scripts/rabbitmq-cluster.sh``. ``cluster_deploy`` brings a whole deployment up and down with it;
the soak's faults (``soak_faults``) kill and restart its parts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cluster_procs import (
    PrivatePostgres,
    alive,
    kill,
    port_open,
    start_detached,
    terminate,
    wait_port,
)

LGSP = Path(sys.executable).parent / "lgsp"
RABBIT_SCRIPT = Path(__file__).resolve().parent / "rabbitmq-cluster.sh"
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
            self._wait(name, lambda: http_ok(url))
        else:
            log = self.log_path(name)
            self._wait(name, lambda: b"workers_started" in log.read_bytes()[log_offset:])

    def _wait(self, name: str, ready: Callable[[], bool]) -> None:
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


def http_ok(url: str) -> bool:
    """Whether ``GET url`` answers 200 within 2 s."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False
