"""Benchmark: the worker process's CPU per delivery when deliveries arrive at a fixed rate.

A fresh demo stack as in ``bench_worker_drain.py``. Per round the worker is paused (SIGSTOP),
``--count`` small packages are accepted by the gateway, and the bench takes their messages off
the push work queue (the ones the paused worker had already been sent stay with it); the worker
resumes, delivers those few, and then the bench publishes the taken messages to the same queue
again at ``--rate`` per second (the default exchange, the same properties and body). The figure
is the worker's CPU over that phase per message: the worker's batches are what the rate makes
of them, whatever the gateway's pace or the machine's load (an end-to-end open loop on a busy
machine delivers in bursts). The last line is JSON.

    .venv/bin/python scripts/bench_worker_trickle.py [--rate 500] [--count N] [--rounds R]
        [--code-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from bench_e2e import WARMUP, Packages
from bench_load import submit_closed, wait_delivered
from bench_measure import cpu_s
from bench_packages import DISTRICT
from bench_stack import StackOptions, running_stack
from bench_worker_drain import _lock_file, _pause

QUIET_S = 1.0  # the work queue is taken once no message came for this long


async def trickle_rounds(
    rate: float, count: int, rounds: int, options: StackOptions
) -> list[dict[str, float]]:
    out = []
    async with running_stack(options) as stack:
        packages = Packages(stack, "small")
        await packages.submit_originals(stack)
        warm = await submit_closed(stack, DISTRICT, packages.make(WARMUP), concurrency=4)
        assert all(s.status == 202 for s in warm)
        await wait_delivered(stack, WARMUP)
        worker = stack.workers[0].popen.pid
        queue_name = stack.settings.broker.prefix + ".q.push"
        connection = await aio_pika.connect(stack.settings.broker.urls[0])
        async with connection:
            channel = await connection.channel(publisher_confirms=False)
            await channel.set_qos(prefetch_count=0)
            queue = await channel.get_queue(queue_name, ensure=False)
            for r in range(rounds):
                seen = await stack.receiver.count()
                await _pause(worker, _lock_file(stack.setup.config_path))
                try:
                    subs = await submit_closed(
                        stack, DISTRICT, packages.make(count), concurrency=32
                    )
                    assert all(s.status == 202 for s in subs), {s.status for s in subs}
                    taken = await _take(queue)
                finally:
                    os.kill(worker, signal.SIGCONT)
                await wait_delivered(stack, seen + count - len(taken))  # the worker's own
                await asyncio.sleep(0.3)
                cpu_before = cpu_s(worker)
                started = time.perf_counter()
                for i, message in enumerate(taken):
                    late = started + i / rate - time.perf_counter()
                    if late > 0:
                        await asyncio.sleep(late)
                    await channel.default_exchange.publish(message, routing_key=queue_name)
                await wait_delivered(stack, seen + count)
                cpu_ms = (cpu_s(worker) - cpu_before) * 1000 / len(taken)
                out.append(
                    {
                        "worker_cpu_ms_per_package": round(cpu_ms, 3),
                        "messages": len(taken),
                        "load_average_1m": round(os.getloadavg()[0], 1),
                    }
                )
                print(f"# {rate:.0f}/s round {r + 1}: {out[-1]}", file=sys.stderr, flush=True)
    return out


async def _take(queue: aio_pika.abc.AbstractQueue) -> list[aio_pika.Message]:
    """Every message of ``queue`` that comes until it is quiet, acked, as messages to publish."""
    received: list[AbstractIncomingMessage] = []

    async def keep(message: AbstractIncomingMessage) -> None:
        received.append(message)

    tag = await queue.consume(keep, no_ack=False)
    last = -1
    while len(received) != last:
        last = len(received)
        await asyncio.sleep(QUIET_S)
    await queue.cancel(tag)
    taken = []
    for m in received:
        taken.append(
            aio_pika.Message(
                m.body,
                headers=m.headers,
                content_type=m.content_type,
                delivery_mode=m.delivery_mode,
                message_id=m.message_id,
                timestamp=m.timestamp,
            )
        )
        await m.ack()
    return taken


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=500.0, help="messages per second")
    parser.add_argument("--count", type=int, default=1500, help="packages per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--code-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    options = StackOptions(code_dir=args.code_dir)
    rounds = asyncio.run(trickle_rounds(args.rate, args.count, args.rounds, options))
    print(
        json.dumps(
            {
                "rate": args.rate,
                "count": args.count,
                "worker_cpu_ms_per_package_best": min(
                    r["worker_cpu_ms_per_package"] for r in rounds
                ),
                "rounds": rounds,
                "code_dir": str(args.code_dir) if args.code_dir else None,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
