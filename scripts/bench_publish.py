"""Benchmark: CPU per confirmed publish, the broker's path against aio-pika's own.

The same messages (~2 KB packages, ``x-lgsp-*`` headers) are published in batches with every
confirm awaited, alternately through ``Broker.publish_each`` (aiormq ``basic_publish``, properties
built by ``DeliveryMessage.amqp_properties``) and through aio-pika (``to_amqp()`` and
``Exchange.publish`` on a confirming channel of the same connection), in one process and in
alternating order, so a busy machine slows both alike. The queue is emptied between rounds;
the topology (its own prefix) is deleted at the end. The last line is one JSON object: the
median CPU milliseconds per message of each path.

    .venv/bin/python scripts/bench_publish.py [--messages 3000] [--batch 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stack import DEFAULT_BROKER_URL

from gateway.broker import Broker, DeliveryMessage

Publish = Callable[[list[DeliveryMessage]], Awaitable[None]]


def messages(count: int, body_bytes: int) -> list[DeliveryMessage]:
    return [
        DeliveryMessage(
            delivery_id=secrets.token_hex(16),
            document_pk=secrets.token_hex(16),
            recipient="000.00.01.H56",
            method="push",
            body=secrets.token_bytes(body_bytes),
        )
        for _ in range(count)
    ]


async def cpu_ms_per_message(publish: Publish, msgs: list[DeliveryMessage], batch: int) -> float:
    started = time.process_time()
    for i in range(0, len(msgs), batch):
        await publish(msgs[i : i + batch])
    return (time.process_time() - started) / len(msgs) * 1000


async def run(url: str, count: int, batch: int, rounds: int, body_bytes: int) -> dict[str, object]:
    prefix = f"bench-publish-{secrets.token_hex(3)}"
    broker = await Broker.connect(url, prefix=prefix, methods=("push",))
    try:
        await broker.declare_topology()
        connection = broker.link.connection("the aio-pika reference")
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(broker.topology.exchange)
        queue = await channel.get_queue(broker.topology.work_queue("push"))

        async def via_broker(batch_: list[DeliveryMessage]) -> None:
            errors = await broker.publish_each(batch_)
            assert not any(errors), errors

        async def via_aio_pika(batch_: list[DeliveryMessage]) -> None:
            await asyncio.gather(
                *(exchange.publish(m.to_amqp(), m.routing_key, mandatory=True) for m in batch_)
            )

        figures: dict[str, list[float]] = {"broker": [], "aio_pika": []}
        for warm_up in (via_broker, via_aio_pika):
            await warm_up(messages(batch * 4, body_bytes))
        await queue.purge()
        paths: list[tuple[str, Publish]] = [("broker", via_broker), ("aio_pika", via_aio_pika)]
        for _ in range(rounds):
            paths.reverse()
            for name, publish in paths:
                figures[name].append(
                    await cpu_ms_per_message(publish, messages(count, body_bytes), batch)
                )
                await queue.purge()
        broker_ms = statistics.median(figures["broker"])
        aio_pika_ms = statistics.median(figures["aio_pika"])
        return {
            "broker_cpu_ms_per_message": round(broker_ms, 3),
            "aio_pika_cpu_ms_per_message": round(aio_pika_ms, 3),
            "broker_to_aio_pika": round(broker_ms / aio_pika_ms, 2),
            "rounds": {k: [round(v, 3) for v in vs] for k, vs in figures.items()},
            "messages": count,
            "batch": batch,
            "body_bytes": body_bytes,
        }
    finally:
        await broker.delete_topology()
        await broker.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--broker-url", default=DEFAULT_BROKER_URL)
    parser.add_argument("--messages", type=int, default=3000, help="per path and round")
    parser.add_argument("--batch", type=int, default=32, help="messages in flight together")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--body-bytes", type=int, default=2048)
    args = parser.parse_args(argv)
    result = asyncio.run(
        run(args.broker_url, args.messages, args.batch, args.rounds, args.body_bytes)
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
