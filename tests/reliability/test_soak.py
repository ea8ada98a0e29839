"""A short chaos soak in the normal suite: every fault kind once, nothing lost, nothing twice.

``scripts/soak`` brings up the 3-node RabbitMQ cluster deployment (on ports found free from
5790, nodes named after them, so it runs beside the developer's and the cluster tests'
clusters), sends a few hundred documents of the mixed load while a gateway, a worker, the push
queue's leading RabbitMQ node and the private PostgreSQL are killed or restarted, the national
simulator is down for 30 s and three push endpoints answer 5xx, time out or are slow, then
accounts for every document. The long run and its figures are in docs/reliability.md.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOAK = REPO / "scripts" / "soak_run.py"
FAULTS = (
    "national-down",
    "push-timeout",
    "gateway-kill",
    "push-5xx",
    "rabbitmq-kill",
    "push-slow",
    "worker-kill",
    "postgres-restart",
)
COUNT = 250
RATE_PER_S = 5.0
DIST_OFFSET = 20000


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_base(start: int = 5790) -> int:
    """The first base (in steps of 10) whose nodes' AMQP and distribution ports are all free."""
    for base in range(start, start + 200, 10):
        if all(_free(base + i) and _free(base + i + DIST_OFFSET) for i in (1, 2, 3)):
            return base
    raise AssertionError(f"no free ports for the soak's cluster from {start}")


def _missing_servers() -> list[str]:
    missing = []
    if not Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() and not shutil.which(
        "rabbitmq-server"
    ):
        missing.append("rabbitmq-server")
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) and not shutil.which("initdb"):
        missing.append("initdb (PostgreSQL server binaries)")
    return missing


@pytest.mark.slow
@pytest.mark.cluster
@pytest.mark.timeout(600)
def test_short_soak_loses_nothing_and_processes_nothing_twice(tmp_path: Path) -> None:
    if missing := _missing_servers():
        pytest.skip(f"the cluster deployment needs {', '.join(missing)}")
    base = _free_base()
    run = subprocess.run(
        [
            sys.executable, str(SOAK),
            "--count", str(COUNT), "--rate", str(RATE_PER_S),
            "--dir", str(tmp_path / "deployment"),
            "--report", str(tmp_path / "report.json"),
            "--rmq-amqp-base", str(base), "--rmq-dist-base", str(base + DIST_OFFSET),
            "--rmq-prefix", f"lgspsoak{base}n",
        ],
        capture_output=True, text=True, timeout=570, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    summary = json.dumps(result, indent=1, ensure_ascii=False)[:6000]

    assert result["lost"] == 0, summary
    assert result["duplicates_processed"] == 0, summary
    # Clients see faults honestly: every submission ends acknowledged (202, or 200 for a retry
    # of bytes already accepted), however many retries it took.
    assert result["submitted"] == COUNT, summary
    assert result["acknowledged"] == COUNT, summary
    assert result["delivered"] + result["dead_lettered"] == result["deliveries"], summary
    assert all(d["reason"] for d in result["dead_letters"]), summary
    # Every fault kind ran, once, and did what it says.
    assert sorted(f["kind"] for f in result["faults"]) == sorted(FAULTS), summary
    assert result["faults_failed"] == 0, summary
    assert result["client_retries"] > 0, summary  # the faults were seen by the client
    assert "duplicate_arrivals" in result
