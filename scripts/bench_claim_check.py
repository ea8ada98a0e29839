"""Benchmark: package bodies through the broker versus a claim check read back from the store.

For each package size (64 KB .. 16 MB) the same delivery travels two ways through the real
RabbitMQ quorum work queue of a fresh prefix, consumed by the worker's own subscription:

* body:      the package is the message body (publish confirmed, consume, ack);
* reference: the message carries only the package's SHA-256 (publish confirmed, consume), and
             the consumer reads the bytes from the delivery log (``get_package``), then acks.

The package itself is stored in the log at intake either way, so that write is not measured.
Per size: the latency of one delivery at a time (p50), the rate of a pipelined batch, the CPU
the bench process and the broker spend per message, and the broker's memory for the queue
while a batch waits in it (quorum queues in RabbitMQ 3.10 hold message bodies in memory). The
last line is one JSON object with the figures and the smallest size at which the reference
wins on latency.

    .venv/bin/python scripts/bench_claim_check.py [--quick] [--store-url postgresql+asyncpg://…]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_measure import cpu_s, percentile, pids_of
from bench_stack import DEFAULT_BROKER_URL, delete_topology, fresh_database

from gateway.broker import Broker, DeliveryMessage, Received, Subscription
from gateway.core.settings import BrokerSettings, Settings
from gateway.edxml.formats import PackageFormat
from gateway.edxml.model import PackageKind
from gateway.store import DeliveryLog
from gateway.store.records import NewDocument

SIZES_KB = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
METHOD = "push"
RETRY_DELAYS_S = (60.0,)  # one retry queue: this bench never retries
HELD_BYTES = 64 * 1024 * 1024  # how much waits in the queue for the memory reading


@dataclass(frozen=True)
class WayFigures:
    p50_ms: float
    per_s: float
    bench_cpu_ms: float
    broker_cpu_ms: float
    broker_memory_mb_per_msg: float  # while waiting in the queue


class Rig:
    """A broker prefix with one subscription that can pause, and a delivery log."""

    def __init__(self, broker: Broker, log: DeliveryLog) -> None:
        self.broker = broker
        self.log = log
        self.received: asyncio.Queue[Received] = asyncio.Queue()
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self.broker.subscribe(METHOD, prefetch=16)
        await self._subscription.start(self.received.put)

    async def pause(self) -> None:
        """Stop consuming: published messages wait in the queue."""
        assert self._subscription is not None
        await self._subscription.close()
        self._subscription = None

    async def stop(self) -> None:
        if self._subscription is not None:
            await self.pause()

    async def store(self, package: bytes) -> str:
        new = NewDocument(
            dedup_key=f"bench|{secrets.token_hex(8)}",
            kind=PackageKind.DOCUMENT,
            sender="000.00.15.H56",
            document_id=None,
            format=PackageFormat.XML,
            signer_fingerprint="-",
            signer_subject="-",
            algorithm="rsa-sha256",
            caller="000.00.15.H56",
            received_at=datetime.now(UTC),
            business_doc_type=None,
            status_code=None,
            subject=None,
            in_reply_to=None,
        )
        result = await self.log.record_intake(new, package, [("000.00.04.H56", METHOD)])
        return result.document.package_sha256

    def message(self, package: bytes, sha256: str, *, by_reference: bool) -> DeliveryMessage:
        return DeliveryMessage(
            delivery_id=secrets.token_hex(8),
            document_pk="bench",
            recipient="000.00.04.H56",
            method=METHOD,
            body=None if by_reference else package,
            claim_check_sha256=sha256 if by_reference else None,
        )

    async def take(self, size: int) -> None:
        """Receive one message, get its package (from the store for a claim check), ack."""
        received = await self.received.get()
        msg = received.message
        assert msg is not None, received.malformed_reason
        if msg.claim_check_sha256 is not None:
            data = await self.log.get_package(msg.claim_check_sha256)
        else:
            assert msg.body is not None
            data = msg.body
        assert len(data) == size
        await received.ack()


def _broker_cpu_s() -> float:
    return sum(cpu_s(pid) for pid in pids_of("beam.smp"))


def _broker_message_memory_bytes() -> int:
    """Broker memory where quorum queue messages live (binaries, Ra tables, queue processes).

    Broker-wide: other users of the broker add noise, so the reading is taken with a batch
    of at least 64 MB waiting (or 64 messages).
    """
    out = subprocess.run(
        [
            "rabbitmq-diagnostics",
            "-q",
            "memory_breakdown",
            "--unit",
            "bytes",
            "--formatter",
            "json",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    breakdown = json.loads(out)
    return sum(int(breakdown[k]["bytes"]) for k in ("binary", "quorum_ets", "quorum_queue_procs"))


async def measure_way(
    rig: Rig, package: bytes, sha256: str, count: int, *, by_reference: bool, memory: bool
) -> WayFigures:
    size = len(package)
    latencies: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        await rig.broker.publish(rig.message(package, sha256, by_reference=by_reference))
        await rig.take(size)
        latencies.append((time.perf_counter() - started) * 1000)
    bench0, broker0 = sum(os.times()[:2]), _broker_cpu_s()
    started = time.perf_counter()
    await rig.broker.publish_many(
        [rig.message(package, sha256, by_reference=by_reference) for _ in range(count)]
    )
    await asyncio.gather(*(rig.take(size) for _ in range(count)))
    elapsed_s = time.perf_counter() - started
    bench_ms = (sum(os.times()[:2]) - bench0) / count * 1000
    broker_ms = (_broker_cpu_s() - broker0) / count * 1000
    memory_mb = await _held_memory_mb(rig, package, sha256, by_reference) if memory else 0.0
    return WayFigures(percentile(latencies, 50), count / elapsed_s, bench_ms, broker_ms, memory_mb)


async def _held_memory_mb(rig: Rig, package: bytes, sha256: str, by_reference: bool) -> float:
    """Queue memory per message while a batch waits unconsumed (consumer paused)."""
    held = max(4, min(64, HELD_BYTES // len(package)))  # 64 MB, or 64 messages
    before = _broker_message_memory_bytes()
    await rig.pause()
    await rig.broker.publish_many(
        [rig.message(package, sha256, by_reference=by_reference) for _ in range(held)]
    )
    during = _broker_message_memory_bytes()
    await rig.start()
    await asyncio.gather(*(rig.take(len(package)) for _ in range(held)))
    return max(0.0, (during - before) / held / 1024 / 1024)


@asynccontextmanager
async def rig_for(broker_url: str, store_url: str | None) -> AsyncIterator[Rig]:
    root = Path(tempfile.mkdtemp(prefix="lgsp-claim-"))
    prefix = f"bench-cc-{secrets.token_hex(4)}"
    settings = Settings(
        broker=BrokerSettings(url=broker_url, prefix=prefix, retry_delays_s=RETRY_DELAYS_S)
    )
    try:
        async with fresh_database(store_url) as url:
            log = await DeliveryLog.open(url or f"sqlite+aiosqlite:///{root}/log.db")
            broker = await Broker.connect(
                broker_url, prefix=prefix, methods=(METHOD,), retry_delays_s=RETRY_DELAYS_S
            )
            try:
                await broker.declare_topology()
                rig = Rig(broker, log)
                await rig.start()
                yield rig
                await rig.stop()
            finally:
                await broker.aclose()
                await log.aclose()
                await delete_topology(settings, methods=(METHOD,))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _count_for(size: int, quick: bool) -> int:
    budget = (32 if quick else 256) * 1024 * 1024
    return max(4 if quick else 8, min(40 if quick else 200, budget // size))


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    rows: dict[str, object] = {}
    threshold_kb: int | None = None
    print(
        f"{'size':>8} {'body p50':>9} {'ref p50':>9} {'body/s':>8} {'ref/s':>8} "
        f"{'body brokerCPU':>14} {'ref brokerCPU':>13} {'body memMB/msg':>14} "
        f"{'ref memMB/msg':>13}"
    )
    async with rig_for(args.broker_url, args.store_url) as rig:
        for size_kb in SIZES_KB:
            package = os.urandom(size_kb * 1024)
            sha256 = await rig.store(package)
            count = _count_for(len(package), args.quick)
            body = await measure_way(
                rig, package, sha256, count, by_reference=False, memory=not args.no_memory
            )
            ref = await measure_way(
                rig, package, sha256, count, by_reference=True, memory=not args.no_memory
            )
            print(
                f"{size_kb:>6}KB {body.p50_ms:>7.1f}ms {ref.p50_ms:>7.1f}ms "
                f"{body.per_s:>8.1f} {ref.per_s:>8.1f} {body.broker_cpu_ms:>12.1f}ms "
                f"{ref.broker_cpu_ms:>11.1f}ms {body.broker_memory_mb_per_msg:>14.2f} "
                f"{ref.broker_memory_mb_per_msg:>13.3f}",
                flush=True,
            )
            rows[f"{size_kb}KB"] = {"messages": count, "body": _plain(body), "ref": _plain(ref)}
            if threshold_kb is None and ref.p50_ms <= body.p50_ms:
                threshold_kb = size_kb
    return {
        "sizes": rows,
        "reference_wins_from_kb": threshold_kb,
        "store": "postgresql" if (args.store_url or "").startswith("postgresql") else "sqlite",
        "load_average_1m": round(os.getloadavg()[0], 1),
    }


def _plain(w: WayFigures) -> dict[str, float]:
    return {
        "p50_ms": round(w.p50_ms, 2),
        "per_s": round(w.per_s, 1),
        "bench_cpu_ms": round(w.bench_cpu_ms, 2),
        "broker_cpu_ms": round(w.broker_cpu_ms, 2),
        "broker_memory_mb_per_msg": round(w.broker_memory_mb_per_msg, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer messages per size")
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the queue memory readings (rabbitmqctl)"
    )
    parser.add_argument("--broker-url", default=DEFAULT_BROKER_URL)
    parser.add_argument(
        "--store-url",
        default=None,
        help="PostgreSQL server URL (a fresh database is made on it); "
        "default: SQLite in a temp dir",
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
