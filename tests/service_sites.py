"""Where the tests' real services live: the RabbitMQ broker and the PostgreSQL server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass

BASE_URL = os.environ.get("LGSP_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def rabbitmqctl(*args: str) -> str:
    exe = shutil.which("rabbitmqctl")
    assert exe, "rabbitmqctl is needed to create the test vhost (RabbitMQ must be installed)"
    done = subprocess.run(
        [exe, "-q", *args], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"rabbitmqctl {args}: {done.stderr}"
    return done.stdout


@dataclass(frozen=True)
class BrokerSite:
    """Where the tests' broker lives."""

    vhost: str
    url: str

    def list_queues(self) -> dict[str, dict[str, object]]:
        """Queue name -> {type, arguments: {name: value}, messages}, as the broker reports them."""
        out = rabbitmqctl(
            "list_queues", "-p", self.vhost, "--formatter", "json",
            "name", "type", "arguments", "messages",
        )  # fmt: skip
        queues: dict[str, dict[str, object]] = {}
        for row in json.loads(out):
            row["arguments"] = {name: value for name, _type, value in row["arguments"]}
            queues[row["name"]] = row
        return queues



# The `test` database is only used to create and drop one fresh database per test.
PG_ADMIN_URL = os.environ.get(
    "LGSP_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
