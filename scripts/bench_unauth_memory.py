"""Benchmark: memory a flood of large unauthenticated POSTs costs a real gateway process.

Starts a demo gateway as real processes (``lgsp demo init`` + ``lgsp run``, as
``bench_stack.running_stack`` does), then fires ``--concurrency`` (20) POSTs of ``--mb`` (60)
MB at once at each public path, with no or wrong credentials: the intake API, the mailbox
acknowledgement, the admin API, the console's log-in and its other forms, and the southbound
``sendEdoc``. Each path is hit once with ``Content-Length`` bodies and once with chunked ones.
Every answer must be a refusal (401, 403, 413 or 429): none of these may read the body.

    .venv/bin/python scripts/bench_unauth_memory.py [--concurrency 20] [--mb 60] [--broker-url URL]

The last line is one JSON object: the gateway's peak RSS (``VmHWM``) before and after, the
growth, the target and the answers counted by status. Exit 1 when the growth reaches the target.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from bench_measure import peak_rss_mb  # noqa: E402
from bench_stack import DEFAULT_BROKER_URL, StackOptions, running_stack  # noqa: E402

TARGET_GROWTH_MB = 20.0
CHUNK_BYTES = 1024 * 1024
REFUSALS = frozenset({401, 403, 413, 429})
# (path, extra headers): every POST a caller can reach without valid credentials.
TARGETS: tuple[tuple[str, dict[str, str]], ...] = (
    ("/api/v1/documents", {"Content-Type": "application/xml"}),
    ("/api/v1/documents", {"Content-Type": "application/xml", "Authorization": "Bearer wrong"}),
    ("/api/v1/inbox/00000000-0000-0000-0000-000000000000/ack", {}),
    ("/api/v1/admin/participants", {"Content-Type": "application/json"}),
    ("/admin/login", {"Content-Type": "application/x-www-form-urlencoded"}),
    ("/admin/logout", {"Content-Type": "application/x-www-form-urlencoded"}),
    ("/admin/participants/save", {"Content-Type": "application/x-www-form-urlencoded"}),
    ("/admin/dead-letters/replay", {"Content-Type": "multipart/form-data; boundary=x"}),
    ("/XrdAdapter/adapter/sendEdoc", {"Content-Type": "multipart/form-data; boundary=x"}),
)


async def _chunks(total_bytes: int) -> AsyncIterator[bytes]:
    chunk = b"a" * CHUNK_BYTES
    for _ in range(total_bytes // CHUNK_BYTES):
        yield chunk


async def _post(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes, chunked: bool
) -> int:
    data = _chunks(len(body)) if chunked else io.BytesIO(body)
    try:
        async with session.post(url, data=data, headers=headers) as response:
            await response.read()
            return response.status
    except aiohttp.ClientError:  # the gateway closed the connection on an unread body
        return 0


async def flood(base_url: str, *, concurrency: int, size_bytes: int) -> Counter[str]:
    """Every target, ``concurrency`` POSTs at once, sized and then chunked: answers by status."""
    body = b"a" * size_bytes
    answers: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for path, headers in TARGETS:
            for chunked in (False, True):
                statuses = await asyncio.gather(
                    *(
                        _post(session, base_url + path, headers, body, chunked)
                        for _ in range(concurrency)
                    )
                )
                for status in statuses:
                    answers[f"{path} {'chunked' if chunked else 'sized'} {status}"] += 1
    return answers


async def run(concurrency: int, size_mb: int, broker_url: str) -> dict[str, object]:
    options = StackOptions(broker_url=broker_url, gateways=1, workers=0)
    async with running_stack(options) as stack:
        [gateway] = stack.gateways
        base_url = f"http://127.0.0.1:{stack.setup.port}"
        await flood(base_url, concurrency=2, size_bytes=1024)  # warm every code path up
        before_mb = peak_rss_mb(gateway.popen.pid)
        started = time.perf_counter()
        answers = await flood(base_url, concurrency=concurrency, size_bytes=size_mb * 1024 * 1024)
        elapsed_s = time.perf_counter() - started
        stack.check_alive()
        after_mb = peak_rss_mb(gateway.popen.pid)
    unexpected = {
        k: v
        for k, v in answers.items()
        if int(k.rsplit(" ", 1)[1]) not in REFUSALS and not k.endswith(" 0")
    }
    return {
        "concurrency": concurrency,
        "body_mb": size_mb,
        "targets": len(TARGETS) * 2,
        "elapsed_s": round(elapsed_s, 1),
        "peak_rss_before_mb": round(before_mb, 1),
        "peak_rss_after_mb": round(after_mb, 1),
        "peak_rss_growth_mb": round(after_mb - before_mb, 1),
        "target_growth_mb": TARGET_GROWTH_MB,
        "answers": dict(sorted(answers.items())),
        "unexpected": unexpected,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--mb", type=int, default=60)
    parser.add_argument("--broker-url", default=DEFAULT_BROKER_URL)
    args = parser.parse_args()
    result = asyncio.run(run(args.concurrency, args.mb, args.broker_url))
    print(json.dumps(result, ensure_ascii=False))
    growth_mb = float(str(result["peak_rss_growth_mb"]))
    return 0 if growth_mb < TARGET_GROWTH_MB and not result["unexpected"] else 1


if __name__ == "__main__":
    sys.exit(main())
