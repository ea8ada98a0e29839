"""``scripts/soak``: a chaos soak through the cluster deployment, every document accounted for.

A fresh deployment (``cluster_deploy.up``: 3 RabbitMQ nodes, a private PostgreSQL, the national
simulator, 2 gateways, 2 workers) gets a steady mixed load (``soak_mix``) from an agency system
that retries as it should (``soak_client``), while the faults (``soak_faults``) run on a
schedule. Push recipients are the soak's receivers (``soak_receivers``), mailboxes and the
national agencies are read by ``soak_consumers``. When the load and the faults are over and the
system is quiet, ``soak_accounting`` follows every document; the last line printed is one JSON
object: ``submitted``, ``acknowledged``, ``delivered``, ``dead_lettered`` (and each dead letter
with its reason), ``lost``, ``duplicates_processed``, ``duplicate_arrivals``, ``faults``,
``e2e_p99_ms``, the client's retries, and more.

    scripts/soak [--count 10000] [--rate 20 | --duration S] [--faults all|none|KIND,…]
                 [--fault-rounds N] [--store-url postgresql+asyncpg://…] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster_deploy import UpOptions, down, up
from cluster_deployment import Deployment
from cluster_procs import free_port, start_detached, terminate, wait_port
from soak_accounting import Ledger
from soak_client import AgencyClient, run_load
from soak_consumers import MailboxReader, NationalReader
from soak_faults import FAULTS, Chaos, FaultTimes, schedule
from soak_mix import CYCLE, MAILBOXES, PUSH_ENDPOINTS, Mix

from gateway.core.directory import hash_api_key

# The deployment's delivery settings for a soak: retries soon enough that a short soak ends in
# minutes, and enough of them (1 + 2 + 5 + 10 x 16 s) to outlast every fault window.
RETRY_DELAYS_S = "1,2,5,10"
MAX_TRIES = 20
GIVE_UP_S = 600.0  # the agency system stops retrying a submission this long after it was due


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--count", type=int, default=10_000, help="documents (default 10000)")
    parser.add_argument("--rate", type=float, default=20.0, help="documents per second")
    parser.add_argument("--duration", type=float, help="seconds of load: rate = count/duration")
    parser.add_argument(
        "--faults", default="all", help=f"all, none or a comma list of: {', '.join(FAULTS)}"
    )
    parser.add_argument("--fault-rounds", type=int, default=1, help="run the faults N times")
    parser.add_argument("--window-s", type=float, default=20.0, help="push fault windows")
    parser.add_argument("--national-down-s", type=float, default=30.0)
    parser.add_argument("--quiet-s", type=float, default=120.0, help="no progress this long: stop")
    parser.add_argument("--retry-delays-s", default=RETRY_DELAYS_S, help="the workers' retries")
    parser.add_argument("--max-tries", type=int, default=MAX_TRIES)
    parser.add_argument(  # unset: the deployment keeps the product's [delivery] settings
        "--sweep-interval-s", type=float, help="the workers' sweep: how often (s)"
    )
    parser.add_argument("--sweep-grace-s", type=float, help="the sweep: how overdue a delivery")
    parser.add_argument("--store-url", help="an existing PostgreSQL server (no restart fault)")
    parser.add_argument("--dir", type=Path, help="the deployment's directory (default: temp)")
    parser.add_argument("--keep", action="store_true", help="leave the deployment's files")
    parser.add_argument("--report", type=Path, help="write the full report (JSON) here")
    parser.add_argument(  # not scripts/cluster's 5771-5773: both may run at once
        "--rmq-amqp-base", type=int, default=5775, help="RabbitMQ nodes on BASE+1..3 (5776-5778)"
    )
    parser.add_argument("--rmq-dist-base", type=int, default=25775)
    parser.add_argument("--rmq-prefix", default="lgspsoak", help="RabbitMQ node names")
    parser.add_argument(  # the test suite's session cluster (tests/cluster_site.py)
        "--rmq-dir", type=Path, help="a running rabbitmq-cluster.sh -d DIR cluster to use"
    )
    args = parser.parse_args(argv)
    if args.duration:
        args.rate = args.count / args.duration
    kinds = [] if args.faults == "none" else FAULTS if args.faults == "all" else args.faults
    args.kinds = [k.strip() for k in kinds.split(",")] if isinstance(kinds, str) else list(kinds)
    unknown = set(args.kinds) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
    if args.store_url and "postgres-restart" in args.kinds:
        if args.faults != "all":
            parser.error("postgres-restart needs the deployment's own PostgreSQL (no --store-url)")
        args.kinds.remove("postgres-restart")
    return args


async def configure_recipients(
    session: aiohttp.ClientSession, dep: Deployment, receivers_url: str
) -> None:
    """Point the push recipients at the receivers through the admin API; wait until every
    gateway serves the change and every worker reloaded its directory."""
    creds = dep.credentials
    headers = {"Authorization": f"Bearer {creds['_admin']['token']}"}
    base = dep.gateway_urls[0]
    offsets = {n: _size(dep.log_path(n)) for n in dep.names() if n.startswith("worker")}
    async with session.get(f"{base}/api/v1/admin/participants", headers=headers) as r:
        r.raise_for_status()
        listed = {p["organ_id"]: p for p in (await r.json())["participants"]}
    for organ_id, endpoint in PUSH_ENDPOINTS.items():
        p = listed[organ_id]
        entry = {
            key: p[key]
            for key in ("organ_id", "name", "kind", "level", "parent", "enabled",
                        "client_cert_fingerprints", "signing_cert_fingerprints",
                        "allowed_algorithms", "may_send_to", "may_speak_for")
            if p[key] is not None
        }  # fmt: skip
        entry["api_key_hashes"] = [hash_api_key(creds[organ_id]["api_key"])]
        entry["delivery"] = {"method": "push", "url": f"{receivers_url}/push/{endpoint}"}
        async with session.post(
            f"{base}/api/v1/admin/participants", json=entry, headers=headers
        ) as r:
            r.raise_for_status()
    deadline = time.monotonic() + 60
    while True:
        seen = []
        for url in dep.gateway_urls:
            async with session.get(f"{url}/api/v1/admin/participants", headers=headers) as r:
                urls = {
                    p["organ_id"]: p["delivery"]["url"] for p in (await r.json())["participants"]
                }
                seen.append(all(urls[o] for o in PUSH_ENDPOINTS))
        reloaded = [
            b"directory_reloaded" in dep.log_path(n).read_bytes()[offset:]
            for n, offset in offsets.items()
        ]
        if all(seen) and all(reloaded):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"directory change not seen: gateways {seen}, workers {reloaded}")
        await asyncio.sleep(0.5)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def soak(args: argparse.Namespace, dep: Deployment) -> dict[str, Any]:
    receivers_port = free_port()
    receivers_pid = start_detached(
        [sys.executable, str(Path(__file__).with_name("soak_receivers.py")),
         "--port", str(receivers_port)],
        dep.log_path("receivers"), os.environ,
    )  # fmt: skip
    marker = f"--port {receivers_port}"
    receivers_url = f"http://127.0.0.1:{receivers_port}"
    try:
        await asyncio.to_thread(wait_port, receivers_port, 30, pid=receivers_pid, marker=marker)
        connector = aiohttp.TCPConnector(limit=512)
        async with aiohttp.ClientSession(connector=connector) as session:
            await configure_recipients(session, dep, receivers_url)
            return await _run(args, dep, session, receivers_url)
    finally:
        terminate(receivers_pid, marker, timeout_s=5)


async def _run(
    args: argparse.Namespace, dep: Deployment, session: aiohttp.ClientSession, receivers_url: str
) -> dict[str, Any]:
    creds = dep.credentials
    started = time.time()
    mix = Mix(dep.root / "demo" / "pki")
    docs = await asyncio.to_thread(lambda: list(mix.make(args.count)))
    print(f"# signed {len(docs)} packages in {time.time() - started:.0f} s", flush=True)
    keys = {organ: c["api_key"] for organ, c in creds.items() if "api_key" in c}
    client = AgencyClient(session, dep.gateway_urls, keys, give_up_s=GIVE_UP_S)
    mailbox = MailboxReader(session, dep.gateway_urls, {o: keys[o] for o in MAILBOXES})
    national = NationalReader(session, dep.national_endpoint, dep.root / "demo/national-sim.toml")
    stop = asyncio.Event()
    readers = [asyncio.create_task(mailbox.run(stop)), asyncio.create_task(national.run(stop))]
    load_s = args.count / args.rate
    t0 = time.time() + 1.0
    times = FaultTimes(window_s=args.window_s, national_down_s=args.national_down_s)
    chaos = Chaos(dep, session, receivers_url, times, t0)
    plan = schedule(args.kinds, load_s, args.fault_rounds)
    print(f"# load: {args.count} documents at {args.rate:.1f}/s ({load_s:.0f} s)", flush=True)
    await asyncio.gather(
        run_load(client, docs, rate_per_s=args.rate, started_at=t0), chaos.run(plan)
    )
    load_end = time.time()
    ledger = Ledger(
        session, dep.gateway_urls, creds["_admin"]["token"], receivers_url,
        client.submissions, mailbox, national,
    )  # fmt: skip
    waited_s = await ledger.wait_quiet(args.quiet_s)
    stop.set()
    await asyncio.gather(*readers)
    subs = client.submissions
    acked = [s for s in subs if s.acknowledged]
    figures = ledger.figures()
    return {
        "submitted": len(subs),
        "acknowledged": len(acked),
        "acknowledged_202": sum(1 for s in acked if s.status == 202),
        "acknowledged_200": sum(1 for s in acked if s.status == 200),
        "not_acknowledged": [
            {"index": s.doc.index, "status": s.status, "why": s.refusal}
            for s in subs
            if not s.acknowledged
        ],
        "deliveries": sum(len(s.doc.recipients) for s in acked),
        **figures,
        "faults": [r.as_json() for r in sorted(chaos.records, key=lambda r: r.at_s)],
        "faults_planned": len(plan),
        "faults_failed": sum(1 for r in chaos.records if not r.ok),
        "client_retries": sum(client.retries.values()),
        "client_retries_by_cause": dict(client.retries),
        "documents_retried": sum(1 for s in subs if s.attempts > 1),
        "mix": {kind: CYCLE.count(kind) for kind in dict.fromkeys(CYCLE)},
        "rate_per_s": round(args.rate, 2),
        "load_s": round(load_end - t0, 1),
        "settle_s": round(waited_s, 1),
        "broker_urls": len(_configured_broker_urls(dep)),
    }


def _configured_broker_urls(dep: Deployment) -> list[str]:
    from gateway.core.settings import load_settings  # noqa: PLC0415

    url: object = load_settings(dep.config, env={}).broker.url
    return [str(u) for u in url] if isinstance(url, list | tuple) else [str(url)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    directory = args.dir or Path(tempfile.mkdtemp(prefix="lgsp-soak-"))
    options = UpOptions(
        dir=directory,
        store_url=args.store_url,
        rmq_amqp_base=args.rmq_amqp_base,
        rmq_dist_base=args.rmq_dist_base,
        rmq_prefix=args.rmq_prefix,
        rmq_dir=args.rmq_dir,
        settings={
            "broker.retry_delays_s": json.dumps([float(x) for x in args.retry_delays_s.split(",")]),
            "broker.max_tries": str(args.max_tries),
            **{
                f"delivery.{key}": str(value)
                for key, value in (
                    ("sweep_interval_s", args.sweep_interval_s),
                    ("sweep_grace_s", args.sweep_grace_s),
                )
                if value is not None
            },
        },
    )
    started = time.time()
    dep: Deployment | None = None
    try:
        dep = up(options)
        print(f"# deployment up in {time.time() - started:.0f} s: {dep.dir}", flush=True)
        result = asyncio.run(soak(args, dep))
    finally:
        if dep is not None:
            down(dep, clean=not args.keep)
        elif not args.keep:
            import shutil  # noqa: PLC0415

            shutil.rmtree(directory, ignore_errors=True)
    result["wall_s"] = round(time.time() - started, 1)
    full = dict(result)
    result = {k: v for k, v in result.items() if not k.startswith("_")}
    if args.report:
        args.report.write_text(json.dumps(full, indent=1, ensure_ascii=False), encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
