"""Benchmark: the worker process's CPU per delivery, draining a full queue at its own pace.

A fresh demo stack as in ``bench_e2e.py`` (gateway, worker, push receiver). After the warm-up
the worker is paused (SIGSTOP), ``--count`` packages of the mix are accepted by the gateway (so
they wait in the work queue), then the worker resumes (SIGCONT) and delivers them all. Its CPU
from the resume until the receiver has every package, per package, is the figure: it does not
depend on the gateway's pace (the worker's batches are as large as its prefetch lets them), so
versions compare better on a busy machine than with the end-to-end run. The last line is JSON.

    .venv/bin/python scripts/bench_worker_drain.py [--mix small|real] [--count N] [--rounds R]
        [--code-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_e2e import WARMUP, Packages
from bench_load import submit_closed, wait_delivered
from bench_measure import cpu_s
from bench_packages import DISTRICT
from bench_stack import StackOptions, running_stack
from sqlalchemy.engine import make_url

from gateway.core.settings import load_settings


async def drain_rounds(
    mix: str, count: int, rounds: int, options: StackOptions
) -> list[dict[str, float]]:
    """``rounds`` drains of ``count`` packages each on one stack; per round the worker's CPU
    ms per package and the drain rate."""
    out = []
    async with running_stack(options) as stack:
        packages = Packages(stack, mix)
        await packages.submit_originals(stack)
        warm = await submit_closed(stack, DISTRICT, packages.make(WARMUP), concurrency=4)
        assert all(s.status == 202 for s in warm)
        bodies = packages.make(count * rounds)
        worker = stack.workers[0].popen.pid
        for r in range(rounds):
            await wait_delivered(stack, WARMUP + r * count)  # the previous round
            seen = await stack.receiver.count()
            await _pause(worker, _lock_file(stack.setup.config_path))
            try:
                subs = await submit_closed(
                    stack,
                    DISTRICT,
                    bodies[r * count : (r + 1) * count],
                    concurrency=64 if mix == "small" else 16,
                )
                assert all(s.status == 202 for s in subs), {s.status for s in subs}
                cpu_before = cpu_s(worker)
                started = time.perf_counter()
            finally:
                os.kill(worker, signal.SIGCONT)
            await wait_delivered(stack, seen + count)
            elapsed_s = time.perf_counter() - started
            cpu_ms = (cpu_s(worker) - cpu_before) * 1000 / count
            out.append(
                {
                    "worker_cpu_ms_per_package": round(cpu_ms, 3),
                    "delivered_per_s": round(count / elapsed_s, 1),
                    "load_average_1m": round(os.getloadavg()[0], 1),
                }
            )
            print(f"# {mix} round {r + 1}: {out[-1]}", file=sys.stderr, flush=True)
    return out


def _lock_file(config_path: Path) -> Path:
    """The SQLite write-turn lock of the demo's store (``gateway.store.sqlite_turns``)."""
    database = make_url(load_settings(config_path, env={}).store.url).database
    assert database, "the drain benchmark needs the demo's SQLite store"
    return Path(database + "-lgsp-lock")


async def _pause(pid: int, lock_file: Path) -> None:
    """SIGSTOP the worker at a moment it does not hold the store's write turn (a stopped holder
    would stop the gateway's intake too)."""
    for _ in range(1000):
        os.kill(pid, signal.SIGSTOP)
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            with contextlib.suppress(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return
        finally:
            os.close(fd)
        os.kill(pid, signal.SIGCONT)
        await asyncio.sleep(0.05)
    raise RuntimeError("the worker never let go of the store's write turn")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mix", choices=["small", "real"], default="small")
    parser.add_argument("--count", type=int, default=None, help="packages per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--code-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    count = args.count or (1500 if args.mix == "small" else 300)
    options = StackOptions(code_dir=args.code_dir)
    rounds = asyncio.run(drain_rounds(args.mix, count, args.rounds, options))
    best = min(r["worker_cpu_ms_per_package"] for r in rounds)
    print(
        json.dumps(
            {
                "mix": args.mix,
                "count": count,
                "worker_cpu_ms_per_package_best": best,
                "rounds": rounds,
                "code_dir": str(args.code_dir) if args.code_dir else None,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
