"""Benchmark: the delivery log's own CPU per package, to see what the hash chain costs.

One process, one SQLite store in a temporary directory: ``--packages`` documents are recorded
through ``DeliveryLog.record_intake`` (``--concurrency`` at once, so the group commit batches
them), marked published, and delivered through the worker's ``record_attempts`` in batches, as
the gateway and the worker write them. The figure is this process's CPU time (user + system)
per package, which the machine's other load disturbs far less than wall time. Run it against
another copy of the code (``--code-dir``, e.g. ``git archive main`` unpacked) to compare:

    .venv/bin/python scripts/bench_chain.py [--packages N] [--code-dir DIR]

The last line is one JSON object: ``cpu_ms_per_package``, ``packages``, ``events``, ``code``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


async def run(packages: int, concurrency: int) -> dict[str, object]:
    from gateway.edxml.formats import PackageFormat  # noqa: PLC0415 (after --code-dir)
    from gateway.edxml.model import PackageKind  # noqa: PLC0415
    from gateway.store import DeliveryLog, DeliveryState, NewDocument  # noqa: PLC0415
    from gateway.store.attempts import AttemptReport  # noqa: PLC0415

    def new(n: int) -> NewDocument:
        return NewDocument(
            dedup_key=f"000.00.15.H56|{n}|{secrets.token_hex(4)}",
            kind=PackageKind.DOCUMENT,
            sender="000.00.15.H56",
            document_id=f"000.00.15.H56,2026/01/01,{n}/UBND",
            format=PackageFormat.XML,
            signer_fingerprint="ab" * 32,
            signer_subject="CN=UBND huyện",
            algorithm="ecdsa-sha256",
            caller="client:000.00.15.H56",
            received_at=datetime.now(UTC),
            subject=f"Công văn số {n}",
        )

    with tempfile.TemporaryDirectory(prefix="lgsp-bench-chain-") as where:
        log = await DeliveryLog.open(f"sqlite+aiosqlite:///{where}/log.db")
        try:
            body = secrets.token_bytes(2048)
            started = time.process_time()
            for first in range(0, packages, concurrency):
                batch = range(first, min(first + concurrency, packages))
                results = await asyncio.gather(
                    *(
                        log.record_intake(new(n), body + n.to_bytes(4), [("000.00.04.H56", "push")])
                        for n in batch
                    )
                )
                ids = [r.deliveries[0].id for r in results]
                log.note_published(ids)
                await log.record_attempts(
                    [AttemptReport(i, DeliveryState.DELIVERED, "HTTP 200") for i in ids]
                )
            cpu_s = time.process_time() - started
            tail = await log.latest_events(1)
        finally:
            await log.aclose()
    return {
        "cpu_ms_per_package": round(cpu_s * 1000 / packages, 3),
        "packages": packages,
        "events": tail[0].id if tail else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--code-dir", type=Path, default=None, help="run this copy of the code")
    args = parser.parse_args()
    code = args.code_dir.resolve() if args.code_dir is not None else REPO
    sys.path.insert(0, str(code))
    result = asyncio.run(run(args.packages, args.concurrency))
    print(json.dumps({**result, "code": str(code)}))


if __name__ == "__main__":
    main()
