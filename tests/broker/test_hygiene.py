"""The test suite's broker hygiene: names under the run's prefix in ``/``, killed runs swept."""

from __future__ import annotations

import os
import secrets
import subprocess

from aio_pika.abc import AbstractRobustConnection, ExchangeType
from service_sites import RUN_PREFIX, BrokerSite


async def test_a_killed_runs_names_are_swept_and_a_live_runs_kept(
    test_broker: BrokerSite, raw_connection: AbstractRobustConnection
) -> None:
    dead_pid = _exited_pid()
    killed = BrokerSite(test_broker.url, f"{RUN_PREFIX}{dead_pid}-{secrets.token_hex(4)}")
    live = BrokerSite(test_broker.url, f"{RUN_PREFIX}{os.getpid()}-{secrets.token_hex(4)}")
    try:
        async with raw_connection.channel() as channel:
            for site in (killed, live):
                prefix = site.new_prefix("k")
                await channel.declare_queue(f"{prefix}.q.push", durable=True)
                await channel.declare_exchange(
                    f"{prefix}.deliveries", ExchangeType.TOPIC, durable=True
                )

        assert killed.prefix in test_broker.sweep_killed_runs()

        assert (list(killed.list_queues()), killed.list_exchanges()) == ([], [])
        assert len(live.list_queues()) == 1
        assert len(live.list_exchanges()) == 1
    finally:
        live.delete_declared()
        killed.delete_declared()


def _exited_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
