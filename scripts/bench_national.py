"""Benchmark, national mix: signed documents from Thanh Hóa to Nghệ An through the simulator.

Everything runs as real processes: ``lgsp sim national`` (its own SQLite file; systems
``lgsp-h56`` owning ``*.H56`` and ``lgsp-h41`` owning ``*.H41``), the H56 demo exactly as in the
local mixes (``bench_stack.running_stack``, with ``[national]`` enabled through
``LGSP_NATIONAL__*``), and Nghệ An's stack (``bench_national_stack``: gateway + worker, own
directory, SQLite store and broker prefix, PKI under H56's root CA).

The department ``000.00.04.H56`` submits ~3 KB documents to ``000.00.00.H41``, which is not in
H56's directory, so the national fallback routes them: H56 intake -> broker -> H56 worker
``sendEdoc`` -> simulator -> H41 poller (``getReceivedEdocList`` -> ``getEdoc`` -> intake ->
``updateStatus``, one document after another) -> broker -> H41 worker push -> receiver. End to
end is H56 submit until the first arrival of the same bytes at H41's receiver.

Per poll interval of the H41 worker (restarted for each): a closed-loop run (the maximum rates),
then an open-loop run at half the delivered rate (the latency while the poller keeps up), each
with its busy poll rounds (documents per round and the round's length, from the worker's
``national_polled`` log lines). The first interval's figures are the mix's; every interval's are
under ``by_poll_interval_s``.

    .venv/bin/python scripts/bench_national.py [--quick] [--poll-intervals 0.2,1]
    (through bench_e2e.py: ``--national`` adds this mix, ``--mix national`` runs it alone)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_load import Submission, submit_open
from bench_measure import cpu_s, peak_rss_mb, percentile
from bench_national_stack import (
    H41_PROVINCE,
    H41_SYSTEM,
    H56_SYSTEM,
    NgheAn,
    Simulator,
    national_env,
    running_h41,
    running_simulator,
)
from bench_packages import DEPARTMENT, Signer
from bench_stack import DEFAULT_BROKER_URL, Stack, StackOptions, running_stack

from gateway.demo.layout import DemoSetup
from gateway.demo.participants import organization
from gateway.edxml import build
from gateway.edxml.xml_codec import serialize_package

WARMUP = 10  # also lets H41 learn the sender (one agency sync) before the timed runs
STALL_S = 60.0
ROUND_LOG_WAIT_S = 30.0


@dataclass(frozen=True)
class NationalPlan:
    count: int  # documents in each closed-loop run
    concurrency: int
    half_load_s: float
    poll_intervals_s: tuple[float, ...]


def national_plan(quick: bool) -> NationalPlan:
    if quick:
        return NationalPlan(count=150, concurrency=16, half_load_s=3.0, poll_intervals_s=(0.2,))
    return NationalPlan(count=1000, concurrency=32, half_load_s=10.0, poll_intervals_s=(0.2, 1.0))


class Documents:
    """Distinct signed documents from the H56 department to the H41 province."""

    def __init__(self, setup: DemoSetup) -> None:
        self._signer = Signer(setup, DEPARTMENT)
        self._run = secrets.token_hex(3)
        self._made = 0

    def make(self, count: int) -> list[bytes]:
        first, self._made = self._made, self._made + count
        return [
            self._signer.sign(
                serialize_package(
                    build.new_document(
                        organization(DEPARTMENT),
                        [organization(H41_PROVINCE)],
                        code_number=str(i),
                        code_notation=f"SNV-{self._run}",
                        subject="V/v liên thông văn bản liên tỉnh (thử hiệu năng)",
                        content="Nội dung",
                        attachments=[
                            ("cong-van.pdf", secrets.token_bytes(1024), "application/pdf")
                        ],
                    )
                )
            )
            for i in range(first, first + count)
        ]


@dataclass(frozen=True)
class Run:
    accepted: int
    refused: int
    accepted_per_s: float
    delivered_per_s: float
    accept_ms: list[float]
    e2e_ms: list[float]
    rounds: list[tuple[int, float]]  # busy poll rounds of H41's worker: (documents, length s)


@dataclass(frozen=True)
class Provinces:
    """The running parts: H56's stack, H41's stack and the simulator."""

    h56: Stack
    h41: NgheAn
    sim: Simulator

    async def submit_closed(self, bodies: Sequence[bytes], *, concurrency: int) -> list[Submission]:
        """``concurrency`` requests in flight; the answers in the order of ``bodies``."""
        headers = {
            "Authorization": f"Bearer {self.h56.api_key(DEPARTMENT)}",
            "Content-Type": "application/xml",
        }
        results: list[Submission | None] = [None] * len(bodies)
        pending = iter(enumerate(bodies))
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def lane() -> None:
                for i, body in pending:
                    started_at, started_perf = time.time(), time.perf_counter()
                    async with session.post(
                        self.h56.documents_url, data=body, headers=headers
                    ) as r:
                        raw = await r.read()
                    if r.status not in (200, 202):
                        print(f"# national: HTTP {r.status}: {raw[:300]!r}", file=sys.stderr)
                    results[i] = Submission(
                        started_at, (time.perf_counter() - started_perf) * 1000, r.status, ()
                    )

            await asyncio.gather(*(lane() for _ in range(concurrency)))
        return [r for r in results if r is not None]

    async def wait_arrived(self, expected: int) -> None:
        """Poll H41's receiver until ``expected`` distinct bodies arrived (or no progress)."""
        last, last_change = -1, time.monotonic()
        while (count := await self.h41.count()) < expected:
            if count != last:
                last, last_change = count, time.monotonic()
            elif time.monotonic() - last_change > STALL_S:
                raise RuntimeError(
                    f"national: only {count} of {expected} arrived; no progress "
                    f"in {STALL_S} s (keep the logs with --keep)"
                )
            self.h56.check_alive()
            for proc in (*self.h41.procs(), self.sim.proc):
                if proc.popen.poll() is not None:
                    raise RuntimeError(f"{proc.role} exited:\n{proc.tail()}")
            await asyncio.sleep(0.1)

    async def timed_run(
        self, bodies: Sequence[bytes], *, concurrency: int | None = None, rate_per_s: float = 0.0
    ) -> Run:
        """Closed loop with ``concurrency``, else open loop at ``rate_per_s``; all arrived."""
        seen, log_from = await self.h41.count(), self.h41.log_lines()
        if concurrency is not None:
            subs = await self.submit_closed(bodies, concurrency=concurrency)
        else:
            subs = await submit_open(self.h56, DEPARTMENT, bodies, rate_per_s=rate_per_s)
        ok = [
            (s, hashlib.sha256(b).hexdigest())
            for s, b in zip(subs, bodies, strict=True)
            if s.status in (200, 202)
        ]
        await self.wait_arrived(seen + len(ok))
        arrivals = await self.h41.arrivals()
        rounds = await self.rounds_covering(log_from, len(ok))
        t0 = min(s.started_at for s in subs)
        accept_end = max(s.started_at + s.accept_ms / 1000 for s in subs)
        last_arrival = max((arrivals[d] for _, d in ok), default=t0)
        return Run(
            accepted=len(ok),
            refused=len(subs) - len(ok),
            accepted_per_s=len(ok) / (accept_end - t0),
            delivered_per_s=len(ok) / (last_arrival - t0) if ok else 0.0,
            accept_ms=[s.accept_ms for s, _ in ok],
            e2e_ms=[(arrivals[d] - s.started_at) * 1000 for s, d in ok],
            rounds=rounds,
        )

    async def rounds_covering(self, log_from: int, docs: int) -> list[tuple[int, float]]:
        """The poll rounds logged since ``log_from``, once they account for ``docs`` documents
        (a round is logged after its last document was acknowledged, maybe after it arrived)."""
        deadline = time.monotonic() + ROUND_LOG_WAIT_S
        while True:
            rounds = self.h41.poll_rounds(log_from)
            if sum(d for d, _ in rounds) >= docs:
                return rounds
            if time.monotonic() > deadline:
                print(
                    f"# national: poll rounds for {docs} documents not logged in "
                    f"{ROUND_LOG_WAIT_S} s",
                    file=sys.stderr,
                )
                return rounds
            await asyncio.sleep(0.05)

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds so far of every part (the broker's figure covers all its users)."""
        out = self.h56.cpu_s()
        for proc in (*self.h41.procs(), self.sim.proc):
            out[proc.role] = cpu_s(proc.popen.pid)
        return out

    def peak_rss_mb(self) -> dict[str, float]:
        self.h41.note_rss()
        return {
            **self.h56.peak_rss_mb(),
            "simulator": round(peak_rss_mb(self.sim.proc.popen.pid), 1),
            **self.h41.rss_mb,
        }


def _r(x: float) -> float:
    return round(x, 1)


def _rounds(run: Run) -> dict[str, float]:
    docs = [float(d) for d, _ in run.rounds]
    lengths_ms = [s * 1000 for _, s in run.rounds]
    return {
        "rounds": len(run.rounds),
        "docs_per_round_p50": percentile(docs, 50),
        "docs_per_round_max": max(docs, default=0.0),
        "round_ms_p50": _r(percentile(lengths_ms, 50)),
        "round_ms_max": _r(max(lengths_ms, default=0.0)),
        "ms_per_doc": _r(sum(lengths_ms) / sum(docs)) if docs else float("nan"),
    }


def _report(label: str, run: Run) -> None:
    rounds = _rounds(run)
    print(
        f"national {label:34} accepted {run.accepted} (refused {run.refused}) "
        f"{run.accepted_per_s:7.1f}/s  delivered {run.delivered_per_s:7.1f}/s  "
        f"accept p50 {percentile(run.accept_ms, 50):6.1f} ms p99 "
        f"{percentile(run.accept_ms, 99):6.1f} ms  e2e p50 {percentile(run.e2e_ms, 50):7.1f}"
        f" ms p99 {percentile(run.e2e_ms, 99):7.1f} ms  poll rounds {rounds['rounds']} "
        f"(p50 {rounds['round_ms_p50']} ms, max {rounds['round_ms_max']} ms, up to "
        f"{rounds['docs_per_round_max']:.0f} docs, {rounds['ms_per_doc']} ms/doc)",
        flush=True,
    )


def _figures(full: Run, half: Run, half_rate: float) -> dict[str, object]:
    return {
        "accepted_per_s": _r(full.accepted_per_s),
        "delivered_per_s": _r(full.delivered_per_s),
        "accept_p50_ms": _r(percentile(full.accept_ms, 50)),
        "accept_p99_ms": _r(percentile(full.accept_ms, 99)),
        "e2e_p50_ms": _r(percentile(full.e2e_ms, 50)),
        "e2e_p99_ms": _r(percentile(full.e2e_ms, 99)),
        "accept_p50_ms_half_load": _r(percentile(half.accept_ms, 50)),
        "accept_p99_ms_half_load": _r(percentile(half.accept_ms, 99)),
        "e2e_p50_ms_half_load": _r(percentile(half.e2e_ms, 50)),
        "e2e_p99_ms_half_load": _r(percentile(half.e2e_ms, 99)),
        "half_load_per_s": _r(half_rate),
        "poll_rounds": _rounds(full),
        "poll_rounds_half_load": _rounds(half),
        "packages": full.accepted,
        "refused": full.refused + half.refused,
    }


async def run_interval(
    parts: Provinces, docs: Documents, plan: NationalPlan, poll_interval_s: float
) -> dict[str, object]:
    """H41's worker polling every ``poll_interval_s``: warm-up, maximum, half load."""
    await parts.h41.start(poll_interval_s)
    await parts.timed_run(docs.make(WARMUP), concurrency=4)
    bodies = docs.make(plan.count)
    cpu_before = parts.cpu_s()
    full = await parts.timed_run(bodies, concurrency=plan.concurrency)
    cpu = {
        k: round((v - cpu_before.get(k, 0.0)) / max(1, full.accepted) * 1000, 2)
        for k, v in parts.cpu_s().items()
    }
    print(
        f"# national (poll {poll_interval_s:g} s): CPU ms per package {cpu}; load average "
        f"{os.getloadavg()[0]:.1f}",
        file=sys.stderr,
    )
    _report(f"poll {poll_interval_s:g} s, max (concurrency {plan.concurrency})", full)
    half_rate = max(1.0, full.delivered_per_s / 2)
    half = await parts.timed_run(
        docs.make(round(half_rate * plan.half_load_s)), rate_per_s=half_rate
    )
    _report(f"poll {poll_interval_s:g} s, half load ({half_rate:.0f}/s offered)", half)
    return {
        **_figures(full, half, half_rate),
        "poll_interval_s": poll_interval_s,
        "cpu_ms_per_package": cpu,
    }


async def run_national(plan: NationalPlan, options: StackOptions) -> dict[str, object]:
    """The national mix: the first poll interval's figures, and every interval's by itself."""
    root = Path(tempfile.mkdtemp(prefix="lgsp-bench-national-"))
    try:
        async with contextlib.AsyncExitStack() as stack:
            code_env = {"PYTHONPATH": str(options.code_dir.resolve())} if options.code_dir else None
            sim = await stack.enter_async_context(running_simulator(root, code_env))
            h56_env = {**options.env, **national_env(sim, H56_SYSTEM, plan.poll_intervals_s[0])}
            h56 = await stack.enter_async_context(
                running_stack(
                    StackOptions(
                        broker_url=options.broker_url,
                        store_url=options.store_url,
                        gateways=options.gateways,
                        workers=options.workers,
                        keep_dir=options.keep_dir,
                        profile_dir=options.profile_dir,
                        code_dir=options.code_dir,
                        env=h56_env,
                    )
                )
            )
            h41_env = dict(options.env)
            if options.code_dir is not None:
                h41_env["PYTHONPATH"] = str(options.code_dir.resolve())
            h41 = await stack.enter_async_context(
                running_h41(
                    root / "h41",
                    sim,
                    options.broker_url,
                    h56,
                    h41_env,
                    profile_dir=options.profile_dir,
                )
            )
            parts, docs = Provinces(h56, h41, sim), Documents(h56.setup)
            by_interval = {
                f"{interval:g}": await run_interval(parts, docs, plan, interval)
                for interval in plan.poll_intervals_s
            }
            rss = parts.peak_rss_mb()
    finally:
        if options.keep_dir:
            print(f"# kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    first = {
        k: v
        for k, v in by_interval[f"{plan.poll_intervals_s[0]:g}"].items()
        if k != "cpu_ms_per_package"
    }
    store = "postgresql" if (options.store_url or "").startswith("postgresql") else "sqlite"
    return {
        **first,
        "peak_rss_mb": rss,
        "concurrency": plan.concurrency,
        "h56_store": store,
        "h41_system": H41_SYSTEM,
        "by_poll_interval_s": by_interval,
        "load_average_1m": round(os.getloadavg()[0], 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="150 documents, poll 0.2 s only")
    parser.add_argument(
        "--poll-intervals",
        default=None,
        metavar="S[,S…]",
        help="H41's poll intervals in seconds (default 0.2,1; --quick 0.2)",
    )
    parser.add_argument("--count", type=int, default=None, help="documents per maximum run")
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--broker-url", default=DEFAULT_BROKER_URL)
    parser.add_argument("--store-url", default=None, help="PostgreSQL server for H56's store")
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs (logs)")
    parser.add_argument(
        "--profile-dir",
        type=Path,
        default=None,
        help="run both stacks' gateways and workers under cProfile; stats here",
    )
    args = parser.parse_args(argv)
    default = national_plan(args.quick)
    intervals = (
        tuple(float(s) for s in args.poll_intervals.split(","))
        if args.poll_intervals
        else default.poll_intervals_s
    )
    plan = NationalPlan(
        count=args.count or default.count,
        concurrency=args.concurrency or default.concurrency,
        half_load_s=default.half_load_s,
        poll_intervals_s=intervals,
    )
    options = StackOptions(
        broker_url=args.broker_url,
        store_url=args.store_url,
        keep_dir=args.keep,
        profile_dir=args.profile_dir,
    )
    print(json.dumps({"national": asyncio.run(run_national(plan, options))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
