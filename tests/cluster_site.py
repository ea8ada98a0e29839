"""The session's throw-away 3-node RabbitMQ cluster (``scripts/rabbitmq-cluster.sh``), shared by
the node-failure tests (tests/cluster) and the short soak (tests/reliability).

One cluster per test session, started on first use (``up``: 10-50 s on a loaded 2-core machine)
and stopped at the end (``down``, pass or fail). Its ports and node names are found free for this
run, so runs and other users of the script (ports 5681-5683 by default) do not clash: AMQP from
``LGSP_TEST_CLUSTER_AMQP_BASE`` (default 5760) + 1..3, Erlang distribution 20000 above, nodes
``lgsp<base>n<i>@localhost``. The cluster's data and logs are in a temporary directory (kept if
a test failed, for its node logs). Every test declares its own names (a fresh prefix): RabbitMQ
3.10 can lose a replica of a quorum queue deleted and declared again just before a node dies
(the cluster notes' gotcha 2); the names go with the cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "rabbitmq-cluster.sh"
NODES = 3
DIST_OFFSET = 20000


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_base(start: int) -> int:
    """The first base (in steps of 10) whose AMQP and distribution ports are all free."""
    for base in range(start, start + 200, 10):
        ports = [base + i for i in range(1, NODES + 1)]
        if all(_free(p) and _free(p + DIST_OFFSET) for p in ports):
            return base
    raise AssertionError(f"no free ports for a test cluster from {start}")


@dataclass
class Cluster:
    """The nodes 1..3 of a cluster run by ``scripts/rabbitmq-cluster.sh`` in ``dir``."""

    dir: Path
    amqp_base: int
    down_nodes: dict[int, str] = field(default_factory=dict)  # node -> how it comes back

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RMQ_NODES": str(NODES),
            "RMQ_PREFIX": f"lgsp{self.amqp_base}n",
            "RMQ_AMQP_BASE": str(self.amqp_base),
            "RMQ_DIST_BASE": str(self.amqp_base + DIST_OFFSET),
            # three nodes boot at once: on a busy 2-core machine (load 9) one has taken more
            # than the script's default 120 s
            "RMQ_BOOT_TIMEOUT": "300",
        }

    def url(self, node: int) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_base + node}/"

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(self.url(n) for n in range(1, NODES + 1))

    def node_name(self, node: int) -> str:
        return f"lgsp{self.amqp_base}n{node}@localhost"

    def run(self, *args: object, timeout_s: float = 360) -> str:
        done = subprocess.run(
            [str(SCRIPT), "-d", str(self.dir), *map(str, args)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        assert done.returncode == 0, f"rabbitmq-cluster.sh {args}: {done.stderr}{done.stdout}"
        return done.stdout

    async def arun(self, *args: object) -> str:
        """``run`` without blocking the event loop (the gateway under test keeps working)."""
        return await asyncio.to_thread(self.run, *args)

    async def kill(self, node: int) -> None:
        """SIGKILL the node's Erlang VM (the script checks the pid is this cluster's)."""
        self.down_nodes[node] = "start-node"
        await self.arun("kill-node", node)

    async def stop_app(self, node: int) -> None:
        """Stop RabbitMQ on the node; its Erlang VM stays up."""
        self.down_nodes[node] = "start-app"
        await self.arun("stop-app", node)

    async def start_app(self, node: int) -> None:
        await self.arun("start-app", node)
        del self.down_nodes[node]

    def restore(self) -> None:
        """Every node running again (a killed one boots and rejoins from its data), the ones
        another user of the cluster (the soak) left down too."""
        for node in range(1, NODES + 1):
            if node not in self.down_nodes and _free(self.amqp_base + node):
                self.down_nodes[node] = "start-node"
        for node, how in sorted(self.down_nodes.items()):
            self.run(how, node)
        self.down_nodes.clear()

    def queues(self, prefix: str) -> dict[str, dict[str, object]]:
        """The queues named ``prefix``..., with their type, leader and members."""
        node = next(n for n in range(1, NODES + 1) if n not in self.down_nodes)
        out = self.run(
            "ctl",
            node,
            "list_queues",
            "-q",
            "name",
            "type",
            "leader",
            "members",
            "--formatter",
            "json",
        )
        return {q["name"]: q for q in json.loads(out) if str(q["name"]).startswith(prefix)}

    def leader(self, queue: str) -> str:
        """The Erlang node name of ``queue``'s Raft leader, as a running node sees it."""
        return str(self.queues(queue)[queue]["leader"])


@pytest.fixture(scope="session")
def rabbitmq_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    assert SCRIPT.is_file(), SCRIPT
    assert Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() or shutil.which(
        "rabbitmq-server"
    ), "the cluster tests need the RabbitMQ server installed (scripts/test installs it)"
    base = _free_base(int(os.environ.get("LGSP_TEST_CLUSTER_AMQP_BASE", "5760")))
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="lgsp-cluster-")), base)
    failed_before = request.session.testsfailed
    try:
        cluster.run("up", timeout_s=600)
        yield cluster
    finally:
        cluster.run("down")
        if request.session.testsfailed == failed_before:
            shutil.rmtree(cluster.dir, ignore_errors=True)
        else:
            print(f"the test cluster's node logs are kept in {cluster.dir}/nodes")


@pytest.fixture
def cluster(rabbitmq_cluster: Cluster) -> Cluster:
    """The session's cluster with all three nodes running (nodes a test took down come back
    before the next test that needs them)."""
    rabbitmq_cluster.restore()
    return rabbitmq_cluster
