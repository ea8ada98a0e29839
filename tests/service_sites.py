"""Where the tests' real services live: the RabbitMQ broker and the PostgreSQL server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika

from gateway.broker.messages import METHODS
from gateway.broker.topology import Topology
from gateway.core.settings import Settings

BASE_URL = os.environ.get("LGSP_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def rabbitmqctl(*args: str) -> str:
    exe = shutil.which("rabbitmqctl")
    assert exe, "rabbitmqctl is needed to list and clean the tests' queues (install RabbitMQ)"
    done = subprocess.run(
        [exe, "-q", *args], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"rabbitmqctl {args}: {done.stderr}"
    return done.stdout


@dataclass(frozen=True)
class BrokerSite:
    """Where the tests' broker lives: the default vhost, every name under one prefix per run.

    The project's rule: no vhost per run (``add_vhost`` once hung RabbitMQ 3.10); each run
    declares its exchanges and queues under ``<prefix>-...`` in ``/`` and deletes them all.
    """

    url: str
    prefix: str  # lgsp-test-<8 hex>: every name this run declares starts with "<prefix>-"
    vhost: str = "/"
    user: str = "guest"

    @classmethod
    def for_this_run(cls, url: str = BASE_URL) -> BrokerSite:
        """``lgsp-test-<pid>-<8 hex>``: the pid lets a later run sweep a killed run's names."""
        return cls(url, f"{RUN_PREFIX}{os.getpid()}-{secrets.token_hex(4)}")

    def new_prefix(self, tag: str) -> str:
        """A fresh topology prefix inside this run's namespace (``<prefix>-<tag><6 hex>``)."""
        return f"{self.prefix}-{tag}{secrets.token_hex(3)}"

    def owns(self, name: str) -> bool:
        return name.startswith(f"{self.prefix}-")

    def list_queues(self) -> dict[str, dict[str, object]]:
        """This run's queues: name -> {type, arguments: {name: value}, messages}."""
        out = rabbitmqctl(
            "list_queues", "-p", self.vhost, "--formatter", "json",
            "name", "type", "arguments", "messages",
        )  # fmt: skip
        queues: dict[str, dict[str, object]] = {}
        for row in json.loads(out):
            if self.owns(row["name"]):
                row["arguments"] = {name: value for name, _type, value in row["arguments"]}
                queues[row["name"]] = row
        return queues

    def list_exchanges(self) -> list[str]:
        """This run's exchanges."""
        return [name for name in _exchanges(self.vhost) if self.owns(name)]

    def sweep_killed_runs(self) -> list[str]:
        """Delete the names of earlier test runs on this machine whose process is gone (killed
        before their teardown); returns their prefixes. Only for a broker on this machine."""
        if urlsplit(self.url).hostname not in ("127.0.0.1", "localhost", "::1"):
            return []
        out = rabbitmqctl("list_queues", "-p", self.vhost, "--formatter", "json", "name")
        names = [row["name"] for row in json.loads(out)], _exchanges(self.vhost)
        dead: set[str] = set()
        for name in (*names[0], *names[1]):
            found = _RUN_NAME.match(name)
            if found and not _alive(int(found["pid"])):
                dead.add(found["prefix"])
        if dead:

            def owned(name: str) -> bool:
                return any(name.startswith(f"{prefix}-") for prefix in dead)

            queues = [n for n in names[0] if owned(n)]
            exchanges = [n for n in names[1] if owned(n)]
            with ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, self._delete(queues, exchanges)).result(timeout=120)
        return sorted(dead)

    def delete_declared(self) -> tuple[list[str], list[str]]:
        """Delete every queue and exchange of this run (whoever declared them, whatever their
        state); returns what it deleted. Runs its own event loop in a thread of its own, so it
        works from synchronous teardown whether or not a loop is running."""
        queues, exchanges = list(self.list_queues()), self.list_exchanges()
        if queues or exchanges:
            with ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, self._delete(queues, exchanges)).result(timeout=120)
        return queues, exchanges

    async def _delete(self, queues: list[str], exchanges: list[str]) -> None:
        connection = await aio_pika.connect(self.url)
        async with connection, connection.channel() as channel:
            for name in queues:
                await channel.queue_delete(name)
            for name in exchanges:
                await channel.exchange_delete(name)

    @contextmanager
    def own_user(self) -> Iterator[BrokerSite]:
        """This site reached as a throw-away user (full rights on the vhost), so a test can cut
        its connections and permissions without touching anyone else's."""
        user, password = f"{self.prefix}-u{secrets.token_hex(3)}", secrets.token_hex(16)
        rabbitmqctl("add_user", user, password)
        try:
            rabbitmqctl("set_permissions", "-p", self.vhost, user, ".*", ".*", ".*")
            parts = urlsplit(self.url)
            netloc = f"{quote(user, safe='')}:{password}@{parts.hostname}:{parts.port or 5672}"
            yield replace(self, url=urlunsplit(parts._replace(netloc=netloc)), user=user)
        finally:
            rabbitmqctl("delete_user", user)


RUN_PREFIX = "lgsp-test-"
_RUN_NAME = re.compile(rf"^(?P<prefix>{RUN_PREFIX}(?P<pid>[0-9]+)-[0-9a-f]{{8}})-")


def _exchanges(vhost: str) -> list[str]:
    out = rabbitmqctl("list_exchanges", "-p", vhost, "--formatter", "json", "name")
    return [row["name"] for row in json.loads(out)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


# The `test` database is only used to create and drop one fresh database per test.
PG_ADMIN_URL = os.environ.get(
    "LGSP_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


async def delete_topology(settings: Settings) -> None:
    """Quorum queues are costly for a small broker: delete each test gateway's queues after it."""
    conf = settings.broker
    topology = Topology(conf.prefix, METHODS, tuple(conf.retry_delays_s))
    connection = await aio_pika.connect(conf.url)
    async with connection, connection.channel() as channel:
        await topology.delete(channel)
