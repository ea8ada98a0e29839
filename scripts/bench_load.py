"""The benchmarks' load client: packages submitted in a closed or open loop, deliveries awaited."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from bench_stack import Stack

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
