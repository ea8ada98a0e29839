"""The chaos soak's faults, run on a schedule against a ``cluster_deployment.Deployment``.

=================== =================================================================
``gateway-kill``    SIGKILL of a gateway process; started again after ``restart_after_s``
``worker-kill``     SIGKILL of a worker process; started again after ``restart_after_s``
``rabbitmq-kill``   SIGKILL of the RabbitMQ node leading the push queue (the busiest);
                    started again after ``rabbit_down_s``, then its replicas are checked
``postgres-restart`` the private PostgreSQL stopped as by a crash (``pg_ctl -m immediate``),
                    started again after ``postgres_down_s`` (crash recovery)
``national-down``   SIGKILL of the national simulator; started again after ``national_down_s``
``push-5xx``        the department's endpoint answers 503 for ``window_s``
``push-timeout``    the province's endpoint holds its answers longer than the gateway waits,
                    for ``window_s``
``push-slow``       the party committee's endpoint answers after ``slow_hold_s``, for ``window_s``
=================== =================================================================

The process faults (the first four) never overlap: each waits for the one before to end.
Every fault is recorded with its target, start (seconds after the load began), length and what
was seen (e.g. the queue's new leader and every replica's state after the restart).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from cluster_deployment import Deployment

FAULTS = (  # in the order they run: the ones with the longest tail first
    "national-down",
    "push-timeout",
    "gateway-kill",
    "push-5xx",
    "rabbitmq-kill",
    "push-slow",
    "worker-kill",
    "postgres-restart",
)
PROCESS_FAULTS = frozenset({"gateway-kill", "worker-kill", "rabbitmq-kill", "postgres-restart"})
PUSH_FAULTS = {  # fault -> (receiver endpoint, its mode)
    "push-5xx": ("department", "5xx"),
    "push-timeout": ("province", "timeout"),
    "push-slow": ("party", "slow"),
}


@dataclass(frozen=True)
class FaultTimes:
    restart_after_s: float = 3.0
    rabbit_down_s: float = 5.0
    postgres_down_s: float = 3.0
    national_down_s: float = 30.0
    window_s: float = 20.0
    timeout_hold_s: float = 35.0  # longer than the push adapter's 30 s timeout
    slow_hold_s: float = 4.0


@dataclass
class FaultRecord:
    kind: str
    target: str
    at_s: float  # after the load began
    took_s: float
    ok: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["at_s"], out["took_s"] = round(self.at_s, 1), round(self.took_s, 1)
        return out


def schedule(kinds: list[str], load_s: float, rounds: int = 1) -> list[tuple[float, str]]:
    """``kinds`` (``rounds`` times over) spread from 5 % to 60 % of the load's length, so that
    the last fault is over, and its retries mostly done, before the load ends."""
    planned = [k for _ in range(rounds) for k in kinds]
    step = 0.55 * load_s / (len(planned) - 1) if len(planned) > 1 else 0.0
    return [(0.05 * load_s + i * step, kind) for i, kind in enumerate(planned)]


class Chaos:
    """Runs faults against ``dep``; ``records`` holds what ran."""

    def __init__(
        self,
        dep: Deployment,
        session: aiohttp.ClientSession,
        receivers_url: str,
        times: FaultTimes,
        load_started_at: float,
    ) -> None:
        self.dep = dep
        self.session = session
        self.receivers_url = receivers_url
        self.times = times
        self.t0 = load_started_at
        self.records: list[FaultRecord] = []
        self._process_lock = asyncio.Lock()
        self._count: dict[str, int] = {}

    async def run(self, plan: list[tuple[float, str]]) -> None:
        await asyncio.gather(*(self._at(at_s, kind) for at_s, kind in plan))

    async def _at(self, at_s: float, kind: str) -> None:
        await asyncio.sleep(max(0.0, self.t0 + at_s - time.time()))
        nth = self._count.get(kind, 0)
        self._count[kind] = nth + 1
        if kind in PROCESS_FAULTS:
            async with self._process_lock:
                await self._record(kind, nth)
        else:
            await self._record(kind, nth)

    async def _record(self, kind: str, nth: int) -> None:
        started = time.time()
        ok, target, detail = True, "", ""
        try:
            target, detail = await getattr(self, "_" + kind.replace("-", "_"))(nth)
        except Exception as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        record = FaultRecord(kind, target, started - self.t0, time.time() - started, ok, detail)
        self.records.append(record)
        print(f"# fault {json.dumps(record.as_json(), ensure_ascii=False)}", flush=True)

    # --- the faults: each returns (target, detail) ------------------------------------------
    async def _restart_after_kill(self, name: str, pause_s: float) -> str:
        if not await asyncio.to_thread(self.dep.kill, name):
            raise RuntimeError(f"{name} was not running")
        await asyncio.sleep(pause_s)
        started = time.time()
        await asyncio.to_thread(self.dep.start, name)
        return f"killed, started again, ready in {time.time() - started:.1f} s"

    async def _gateway_kill(self, nth: int) -> tuple[str, str]:
        name = f"gateway{nth % len(self.dep.gateway_ports) + 1}"
        return name, await self._restart_after_kill(name, self.times.restart_after_s)

    async def _worker_kill(self, nth: int) -> tuple[str, str]:
        name = f"worker{nth % self.dep.workers + 1}"
        return name, await self._restart_after_kill(name, self.times.restart_after_s)

    async def _national_down(self, _nth: int) -> tuple[str, str]:
        detail = await self._restart_after_kill("national", self.times.national_down_s)
        return "national simulator", f"down {self.times.national_down_s:.0f} s; {detail}"

    async def _postgres_restart(self, _nth: int) -> tuple[str, str]:
        pg = self.dep.postgres
        if pg is None:
            raise RuntimeError("not the deployment's own PostgreSQL (--store-url)")
        await asyncio.to_thread(pg.stop, "immediate")
        await asyncio.sleep(self.times.postgres_down_s)
        started = time.time()
        await asyncio.to_thread(pg.start)
        return (
            f"PostgreSQL 127.0.0.1:{pg.port}",
            f"stopped -m immediate, down {self.times.postgres_down_s:.0f} s, "
            f"recovered and accepting in {time.time() - started:.1f} s",
        )

    async def _rabbitmq_kill(self, _nth: int) -> tuple[str, str]:
        queue = f"{self.dep.broker_prefix}.q.push"
        leader = await asyncio.to_thread(self._leader, queue)
        node = int(leader.split("@")[0][len(self.dep.rmq_prefix) :])
        await asyncio.to_thread(self.dep.rabbit, "kill-node", str(node))
        await asyncio.sleep(self.times.rabbit_down_s)
        started = time.time()
        await asyncio.to_thread(self.dep.rabbit, "start-node", str(node))
        await asyncio.to_thread(self.dep.tune_rabbit, node)
        back_s = time.time() - started
        members = await asyncio.to_thread(self._members, queue, node)
        if sorted(members.values()) != ["follower", "follower", "leader"]:
            raise RuntimeError(f"{queue} members after the restart: {members}")
        return (
            f"node {node} ({leader}), leader of {queue}",
            f"SIGKILL, down {self.times.rabbit_down_s:.0f} s, back in {back_s:.1f} s; "
            f"members {members}",
        )

    def _leader(self, queue: str) -> str:
        for node in (1, 2, 3):
            if not self.dep.rabbit_node_up(node):
                continue
            out = self.dep.rabbit(
                "ctl", str(node), "list_queues", "-q", "--no-table-headers", "name", "leader"
            ).stdout
            for line in out.splitlines():
                name, _, leader = line.partition("\t")
                if name == queue:
                    return leader.strip()
        raise RuntimeError(f"no node knows the leader of {queue}")

    def _members(self, queue: str, node: int, timeout_s: float = 60.0) -> dict[str, str]:
        """Each replica's Raft state once all three are leader or follower (or the timeout)."""
        deadline = time.monotonic() + timeout_s
        while True:
            out = self.dep.rabbit(
                "queues", str(node), "quorum_status", queue, "--formatter", "json", check=False
            ).stdout
            try:
                rows = json.loads(out[out.index("[") :])
                members = {str(r["Node Name"]): str(r["Raft State"]) for r in rows}
            except ValueError:
                members = {}
            if sorted(members.values()) == ["follower", "follower", "leader"]:
                return members
            if time.monotonic() > deadline:
                return members
            time.sleep(1.0)

    async def _push_window(self, kind: str, hold_s: float) -> tuple[str, str]:
        endpoint, mode = PUSH_FAULTS[kind]
        await self._control(endpoint, mode, hold_s)
        try:
            await asyncio.sleep(self.times.window_s)
        finally:
            await self._control(endpoint, "ok", 0.0)
        held = f", each answer held {hold_s:.0f} s" if hold_s else ""
        return f"push endpoint {endpoint}", f"{mode} for {self.times.window_s:.0f} s{held}"

    async def _control(self, endpoint: str, mode: str, hold_s: float) -> None:
        async with self.session.post(
            f"{self.receivers_url}/control/{endpoint}", json={"mode": mode, "hold_s": hold_s}
        ) as r:
            r.raise_for_status()

    async def _push_5xx(self, _nth: int) -> tuple[str, str]:
        return await self._push_window("push-5xx", 0.0)

    async def _push_timeout(self, _nth: int) -> tuple[str, str]:
        return await self._push_window("push-timeout", self.times.timeout_hold_s)

    async def _push_slow(self, _nth: int) -> tuple[str, str]:
        return await self._push_window("push-slow", self.times.slow_hold_s)
