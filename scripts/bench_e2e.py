"""Benchmark: signed packages end to end through real gateway and worker processes.

For each mix a fresh demo (``lgsp demo init`` in a temp dir: its own broker prefix, its own
store) is started as real processes, ``lgsp run --role gateway`` (``--gateways N``, sharing the
port with SO_REUSEPORT) and ``lgsp run --role worker`` (``--workers M``), with the department's
deliveries pushed to a receiver subprocess that records when each delivery id first arrives.

* small: distinct ~2 KB status packages from the district answering documents of the department
  (the originals are submitted before the timed run, so each status also sets a business status);
* real:  copies of the conformance sample edoc_new.edxml (~370 KB) from the district to the
  department, each with its own DocumentId, re-signed.

Every package is signed before the timed runs. First a closed-loop run (``--concurrency``
requests in flight) gives the maximum rates; then an open-loop run at half the delivered rate
gives the accept latency at half load; the small mix also gets an open-loop run at a fixed
``--open-rate`` (500/s: ``small.accept_p99_ms_at_500``). The last line is one JSON object with
the figures; beside each mix's CPU per package it gives the machine's phase (``bench_machine``):
how busy the machine was in the closed-loop run, what waited for a core, and one verification's
CPU in the bench process (``reference_verify_ms``), to set runs of different hours side by side.

    .venv/bin/python scripts/bench_e2e.py [--quick] [--mix small|real|both|national] [--national]
        [--gateways N] [--workers M] [--store-url postgresql+asyncpg://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_load import Submission, submit_closed, submit_open, wait_delivered
from bench_machine import MachineTimes, per_package_ms, reference_ms
from bench_measure import percentile
from bench_national import national_plan, run_national
from bench_packages import (
    DEPARTMENT,
    DISTRICT,
    Signer,
    original_documents,
    real_packages,
    status_packages,
)
from bench_profiled import profile_summary
from bench_stack import DEFAULT_BROKER_URL, Stack, StackOptions, running_stack

from gateway.edxml.xml_codec import serialize_package
from gateway.signatures.truststore import TrustStore
from gateway.signatures.verify import Verifier

ORIGINALS = 50  # documents the small mix's status packages answer
WARMUP = 20


@dataclass(frozen=True)
class Plan:
    """How much of a mix to send."""

    name: str
    count: int  # packages in the closed-loop (maximum rate) run
    concurrency: int
    half_load_s: float  # length of the open-loop run at half the delivered rate
    open_rate_per_s: float = 0.0  # a fixed-rate open-loop run (0: none)
    open_s: float = 0.0
    open_connections: int = 512  # the fixed-rate run's connections (more requests wait for one)
    reference_calls: int = 200  # verifications per round of ``reference_verify_ms``


@dataclass(frozen=True)
class RunFigures:
    accepted: int
    refused: int
    accepted_per_s: float
    delivered_per_s: float
    accept_ms: list[float]
    e2e_ms: list[float]


async def measure(stack: Stack, subs: Sequence[Submission], seen_before: int) -> RunFigures:
    """Wait until every accepted delivery arrived, then compute the run's figures."""
    accepted = [s for s in subs if s.status == 202]
    ids = [(s, d) for s in accepted for d in s.delivery_ids]
    await wait_delivered(stack, seen_before + len(ids))
    arrivals = await stack.receiver.arrivals()
    t0 = min(s.started_at for s in subs)
    accept_end = max(s.started_at + s.accept_ms / 1000 for s in subs)
    arrived = [arrivals[d] for _, d in ids]
    return RunFigures(
        accepted=len(accepted),
        refused=len(subs) - len(accepted),
        accepted_per_s=len(accepted) / (accept_end - t0),
        delivered_per_s=len(ids) / (max(arrived) - t0) if ids else 0.0,
        accept_ms=[s.accept_ms for s in accepted],
        e2e_ms=[(arrivals[d] - s.started_at) * 1000 for s, d in ids],
    )


class Packages:
    """Makes the signed packages of a mix (all distinct, however many batches are made)."""

    def __init__(self, stack: Stack, mix: str) -> None:
        self.mix = mix
        self.signer = Signer(stack.setup, DISTRICT)
        self.originals = original_documents(ORIGINALS) if mix == "small" else []
        self.made = 0

    async def submit_originals(self, stack: Stack) -> None:
        """The documents the status packages answer (untimed)."""
        department = Signer(stack.setup, DEPARTMENT)
        bodies = [department.sign(serialize_package(doc)) for doc in self.originals]
        subs = await submit_closed(stack, DEPARTMENT, bodies, concurrency=8)
        assert all(s.status == 202 for s in subs), [s.status for s in subs]

    def make(self, count: int) -> list[bytes]:
        """``count`` new packages, made before a timed run. What the load client holds then is
        collected once and frozen (``gc.freeze``): otherwise a full collection during the run
        walks every body signed so far (30 to 160 ms on this machine), and a request due
        meanwhile is counted late. The young generation keeps CPython's threshold: many short
        collections rather than a few long ones."""
        first, self.made = self.made, self.made + count
        if self.mix == "small":
            made = status_packages(self.signer, self.originals, count, first=first)
        else:
            made = real_packages(self.signer, count, first=first)
        gc.collect()
        gc.freeze()
        return made


def _reference_verify_ms(stack: Stack, body: bytes, plan: Plan) -> float:
    """One verification of ``body`` in this process, while the services idle (bench_machine)."""
    verifier = Verifier(TrustStore.from_dir(stack.setup.pki_dir))
    return reference_ms(lambda: verifier.verify_xml(body), calls=plan.reference_calls)


async def _closed_run(
    stack: Stack, bodies: Sequence[bytes], plan: Plan
) -> tuple[RunFigures, dict[str, float], dict[str, float], dict[str, float]]:
    """The closed-loop run: its figures, CPU and waits for a core per package, the machine's
    shares (``bench_machine``)."""
    seen = await stack.receiver.count()
    cpu_before, wait_before, machine_before = stack.cpu_s(), stack.wait_s(), MachineTimes.now()
    subs = await submit_closed(stack, DISTRICT, bodies, concurrency=plan.concurrency)
    full = await measure(stack, subs, seen)
    cpu = per_package_ms(stack.cpu_s(), cpu_before, full.accepted)
    wait = per_package_ms(stack.wait_s(), wait_before, full.accepted)
    return full, cpu, wait, MachineTimes.now().shares_since(machine_before)


async def run_mix(plan: Plan, options: StackOptions) -> dict[str, object]:
    async with running_stack(options) as stack:
        packages = Packages(stack, plan.name)
        await packages.submit_originals(stack)
        started = time.perf_counter()
        bodies = packages.make(WARMUP + plan.count)
        print(
            f"# {plan.name}: signed {len(bodies)} packages of ~{len(bodies[-1]) // 1024} KB "
            f"in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        reference = _reference_verify_ms(stack, bodies[0], plan)
        warm = await submit_closed(stack, DISTRICT, bodies[:WARMUP], concurrency=4)
        await measure(stack, warm, 0)
        full, cpu, wait, machine = await _closed_run(stack, bodies[WARMUP:], plan)
        print(
            f"# {plan.name}: CPU ms per package {cpu}; load average {os.getloadavg()[0]:.1f}",
            file=sys.stderr,
        )
        _report(plan.name, f"max (concurrency {plan.concurrency})", full)
        half_rate = max(1.0, full.delivered_per_s / 2)
        extra = packages.make(round(half_rate * plan.half_load_s))
        seen = await stack.receiver.count()
        half_subs = await submit_open(stack, DISTRICT, extra, rate_per_s=half_rate)
        half = await measure(stack, half_subs, seen)
        _report(plan.name, f"half load ({half_rate:.0f}/s offered)", half)
        fixed, fixed_cpu, server_ms = None, {}, []
        if plan.open_rate_per_s > 0:
            extra = packages.make(round(plan.open_rate_per_s * plan.open_s))
            seen, cpu_before = await stack.receiver.count(), stack.cpu_s()
            log_from = [len(g.log_path.read_bytes().splitlines()) for g in stack.gateways]
            fixed = await measure(
                stack,
                await submit_open(
                    stack,
                    DISTRICT,
                    extra,
                    rate_per_s=plan.open_rate_per_s,
                    max_in_flight=plan.open_connections,
                ),
                seen,
            )
            fixed_cpu = per_package_ms(stack.cpu_s(), cpu_before, fixed.accepted)
            server_ms = _server_durations_ms(stack, log_from)
            _report(plan.name, f"open loop ({plan.open_rate_per_s:.0f}/s offered)", fixed)
            print(
                f"# {plan.name} open loop: CPU ms per package {fixed_cpu}; in the gateway p50 "
                f"{percentile(server_ms, 50):.1f} ms p99 {percentile(server_ms, 99):.1f} ms",
                file=sys.stderr,
            )
        rss = stack.peak_rss_mb()
    figures = _figures(full, half, half_rate=half_rate, rss=rss, plan=plan, options=options)
    if fixed is not None:
        rate = f"{plan.open_rate_per_s:.0f}"
        figures[f"accept_p50_ms_at_{rate}"] = round(percentile(fixed.accept_ms, 50), 1)
        figures[f"accept_p99_ms_at_{rate}"] = round(percentile(fixed.accept_ms, 99), 1)
        figures[f"e2e_p99_ms_at_{rate}"] = round(percentile(fixed.e2e_ms, 99), 1)
        figures[f"delivered_per_s_at_{rate}"] = round(fixed.delivered_per_s, 1)
        figures[f"refused_at_{rate}"] = fixed.refused
        figures[f"accepted_per_s_at_{rate}"] = round(fixed.accepted_per_s, 1)
        figures[f"gateway_p50_ms_at_{rate}"] = round(percentile(server_ms, 50), 1)
        figures[f"gateway_p99_ms_at_{rate}"] = round(percentile(server_ms, 99), 1)
        figures[f"cpu_ms_per_package_at_{rate}"] = fixed_cpu
    figures["cpu_ms_per_package"] = cpu
    figures["cpu_wait_ms_per_package"] = wait  # runnable, waiting for a core (bench_machine)
    figures["machine"] = machine
    figures["reference_verify_ms"] = reference
    figures["load_average_1m"] = round(os.getloadavg()[0], 1)
    return figures


def _server_durations_ms(stack: Stack, log_from: Sequence[int]) -> list[float]:
    """The gateways' own time for each POST of documents logged after ``log_from`` (lines per
    gateway log): from the request's headers read to its answer (the access log's duration)."""
    found: list[float] = []
    for gateway, start in zip(stack.gateways, log_from, strict=True):
        for line in gateway.log_path.read_bytes().splitlines()[start:]:
            if b'"request"' in line and b"/api/v1/documents" in line:
                event = json.loads(line)
                if event.get("event") == "request" and event.get("method") == "POST":
                    found.append(float(event["duration_ms"]))
    return found


def _report(mix: str, label: str, run: RunFigures) -> None:
    print(
        f"{mix:5} {label:28} accepted {run.accepted} (refused {run.refused}) "
        f"{run.accepted_per_s:7.1f}/s  delivered {run.delivered_per_s:7.1f}/s  "
        f"accept p50 {percentile(run.accept_ms, 50):6.1f} ms p99 "
        f"{percentile(run.accept_ms, 99):6.1f} ms  e2e p50 {percentile(run.e2e_ms, 50):7.1f}"
        f" ms p99 {percentile(run.e2e_ms, 99):7.1f} ms",
        flush=True,
    )


def _figures(
    full: RunFigures,
    half: RunFigures,
    *,
    half_rate: float,
    rss: dict[str, float],
    plan: Plan,
    options: StackOptions,
) -> dict[str, object]:
    def r(x: float) -> float:
        return round(x, 1)

    return {
        "accepted_per_s": r(full.accepted_per_s),
        "delivered_per_s": r(full.delivered_per_s),
        "accept_p50_ms": r(percentile(full.accept_ms, 50)),
        "accept_p99_ms": r(percentile(full.accept_ms, 99)),
        "e2e_p50_ms": r(percentile(full.e2e_ms, 50)),
        "e2e_p99_ms": r(percentile(full.e2e_ms, 99)),
        "peak_rss_mb": rss,
        "accept_p99_ms_half_load": r(percentile(half.accept_ms, 99)),
        "accept_p50_ms_half_load": r(percentile(half.accept_ms, 50)),
        "e2e_p99_ms_half_load": r(percentile(half.e2e_ms, 99)),
        "half_load_per_s": r(half_rate),
        "packages": full.accepted,
        "refused": full.refused + half.refused,
        "concurrency": plan.concurrency,
        "gateways": options.gateways,
        "workers": options.workers,
        "store": "postgresql" if (options.store_url or "").startswith("postgresql") else "sqlite",
    }


def _plans(args: argparse.Namespace) -> list[Plan]:
    small = Plan(
        "small",
        args.small_count or (600 if args.quick else 12000),
        args.concurrency or 64,
        3.0 if args.quick else 10.0,
        open_rate_per_s=args.open_rate,
        open_s=args.open_seconds or (2.0 if args.quick else 10.0),
        open_connections=args.open_connections,
    )
    real = Plan(
        "real",
        args.real_count or (150 if args.quick else 2000),
        args.concurrency or 16,
        3.0 if args.quick else 10.0,
        reference_calls=20,  # a 361 KB package: about 3 ms each
    )
    return [p for p in (small, real) if args.mix in (p.name, "both")]


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    options = StackOptions(
        broker_url=args.broker_url,
        store_url=args.store_url,
        gateways=args.gateways,
        workers=args.workers,
        keep_dir=args.keep,
        profile_dir=args.profile_dir,
        code_dir=args.code_dir,
        env=dict(item.split("=", 1) for item in args.set),
    )
    results: dict[str, object] = {}
    for plan in _plans(args):
        results[plan.name] = await run_mix(plan, options)
    if args.national or args.mix == "national":  # scripts/bench_national.py
        results["national"] = await run_national(national_plan(args.quick), options)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    parser.add_argument("--mix", choices=["small", "real", "both", "national"], default="both")
    parser.add_argument(
        "--national",
        action="store_true",
        help="also the national mix (H56 -> national simulator -> H41)",
    )
    parser.add_argument("--gateways", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="requests in flight (default: 64 small, 16 real)",
    )
    parser.add_argument("--small-count", type=int, default=None)
    parser.add_argument(
        "--open-rate",
        type=float,
        default=500.0,
        help="the small mix's fixed-rate open-loop run, packages/s (0: none)",
    )
    parser.add_argument(
        "--open-connections",
        type=int,
        default=512,
        help="connections of the fixed-rate run; requests beyond wait for one, their latency "
        "still counted from when they were due",
    )
    parser.add_argument(
        "--open-seconds",
        type=float,
        default=None,
        help="length of the fixed-rate run (default: 2 s with --quick, else 10 s); longer runs "
        "leave time to attach a profiler",
    )
    parser.add_argument("--real-count", type=int, default=None)
    parser.add_argument("--broker-url", default=DEFAULT_BROKER_URL)
    parser.add_argument(
        "--store-url",
        default=None,
        help="PostgreSQL server URL (a fresh database is made on it per mix); "
        "default: SQLite in the demo dir",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="LGSP_SECTION__KEY=VALUE",
        help="a setting for the gateway and worker processes (repeatable), e.g. "
        "LGSP_BROKER__CLAIM_CHECK_THRESHOLD_BYTES=1048576",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs (logs)")
    parser.add_argument(
        "--code-dir",
        type=Path,
        default=None,
        help="run the processes from this copy of the code (e.g. `git archive` of "
        "an older commit) to compare versions",
    )
    parser.add_argument(
        "--profile-dir",
        type=Path,
        default=None,
        help="run gateways and workers under cProfile (CPU time); stats here",
    )
    args = parser.parse_args(argv)
    results = asyncio.run(main_async(args))
    if args.profile_dir is not None:
        for process, shares in profile_summary(args.profile_dir).items():
            print(f"# profile {process}: " + ", ".join(f"{g} {v}%" for g, v in shares.items()))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
