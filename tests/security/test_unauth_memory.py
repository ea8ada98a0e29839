"""Requests without valid credentials cost a real gateway process no more than a small bound.

A gateway runs as its own process (``lgsp run``) so that its peak RSS is its own: large POSTs
without credentials to every public path are refused before their body is read (401/403/413)
and the process's peak resident set barely moves (``scripts/bench_unauth_memory.py`` runs the
full 20 x 60 MB load).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from process_kit import NewProcess, RunningGateway
from service.service_kit import (
    free_port,
)
from service_sites import BrokerSite

from gateway.demo.setup import init_demo

BODY_MB = 20
CONCURRENCY = 5
MAX_GROWTH_MB = 20.0
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# (path, headers, the answer that proves the body was not read)
TARGETS = (
    ("/api/v1/documents", {"Content-Type": "application/xml"}, 401),
    ("/api/v1/inbox/00000000-0000-0000-0000-000000000000/ack", {}, 401),
    ("/api/v1/admin/participants", {"Content-Type": "application/json"}, 401),
    ("/XrdAdapter/adapter/sendEdoc", {"Content-Type": "multipart/form-data; boundary=x"}, 401),
    ("/admin/login", FORM, 413),
    ("/admin/logout", FORM, 413),
    ("/admin/participants/save", FORM, 413),
    ("/admin/dead-letters/replay", FORM, 413),
)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


@pytest.fixture
async def gateway_process(
    tmp_path: Path, test_broker: BrokerSite, lgsp_processes: NewProcess
) -> RunningGateway:
    """``lgsp run --role gateway`` on a fresh demo, started."""
    setup = init_demo(
        tmp_path / "demo",
        port=free_port(),
        broker_url=test_broker.url,
        prefix=test_broker.new_prefix("m"),
    )
    gateway = lgsp_processes(setup, "gateway")
    async with aiohttp.ClientSession() as session:  # 401s here; 429s are tested apart
        await gateway.start(session, "gateway", {"LGSP_RATE_LIMIT__FAILED_AUTH_PER_ADDRESS": "0"})
    return gateway


async def _chunks(total: int) -> AsyncIterator[bytes]:
    piece = b"a" * (1024 * 1024)
    for _ in range(total // len(piece)):
        yield piece


async def _post(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes, *, chunked: bool
) -> int:
    try:
        async with session.post(
            url, data=_chunks(len(body)) if chunked else io.BytesIO(body), headers=headers
        ) as response:
            await response.read()
            return response.status
    except aiohttp.ClientError:
        return 0  # the gateway dropped the connection while the client still wrote: not read


async def _flood(base: str, size_bytes: int, *, chunked: bool) -> dict[str, set[int]]:
    body = b"a" * size_bytes
    answers: dict[str, set[int]] = {}
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for path, headers, _ in TARGETS:
            statuses = await asyncio.gather(
                *(
                    _post(session, base + path, headers, body, chunked=chunked)
                    for _ in range(CONCURRENCY)
                )
            )
            answers[path] = set(statuses)
    return answers


async def test_large_unauthenticated_posts_are_refused_unread_and_leave_rss_flat(
    gateway_process: RunningGateway,
) -> None:
    assert gateway_process.proc is not None
    pid, base = gateway_process.proc.pid, gateway_process.base_url
    await _flood(base, 1024, chunked=False)  # warm each path up (templates, imports)
    before_mb = peak_rss_mb(pid)

    sized = await _flood(base, BODY_MB * 1024 * 1024, chunked=False)
    streamed = await _flood(base, BODY_MB * 1024 * 1024, chunked=True)

    growth_mb = peak_rss_mb(pid) - before_mb
    assert sized == {path: {status} for path, _, status in TARGETS}
    # Without a length, the console reads at most 64 KiB of the log-in form before its 413;
    # its other forms refuse a caller without a session (403) before reading anything.
    expected_streamed = {path: {403 if status == 413 else status} for path, _, status in TARGETS}
    expected_streamed["/admin/login"] = {413}
    assert streamed == expected_streamed
    assert growth_mb < MAX_GROWTH_MB, f"peak RSS grew by {growth_mb:.1f} MB"
