"""Benchmark: the worker's store work per delivery (batch check, then batch commit), in-process.

What ``DeliveryHandler.check`` and ``commit`` ask of the delivery log for a batch of *n*
deliveries: the states of the batch and its claim-checked packages (``check_batch``, or on older
code ``delivery_states`` then ``packages``), then ``record_attempts`` (all delivered). The
deliveries are recorded first (group commit), outside the timed part. Prints this process's CPU
per delivery (the aiosqlite thread included), best of ``--rounds``; the last line is JSON.

    .venv/bin/python scripts/bench_worker_store.py [--batch 1] [--claim-check] [--code-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from gateway.edxml.formats import PackageFormat  # noqa: PLC0415 (after --code-dir)
    from gateway.edxml.model import PackageKind  # noqa: PLC0415
    from gateway.store import DeliveryLog, DeliveryState, NewDocument  # noqa: PLC0415
    from gateway.store.attempts import AttemptReport  # noqa: PLC0415

    url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/log.db"
    log = await DeliveryLog.open(url)
    size = 361_000 if args.claim_check else 4_000
    body = os.urandom(size)
    per_round = args.batch * args.batches
    recorded: list[tuple[str, str]] = []  # (delivery id, package sha256)
    for i in range(per_round * args.rounds):
        new = NewDocument(
            dedup_key=f"000.00.00.H56|{secrets.token_hex(6)}|0",
            kind=PackageKind.DOCUMENT,
            sender="000.00.00.H56",
            document_id=f"000.00.00.H56,2024/05/02,{i}/UBND",
            format=PackageFormat.XML,
            signer_fingerprint="ab" * 32,
            signer_subject="CN=bench",
            algorithm="rsa-sha256",
            caller="client:000.00.00.H56",
            received_at=datetime.now(UTC),
        )
        result = await log.record_intake(new, body + str(i).encode(), [("000.00.01.H56", "push")])
        recorded.append((result.deliveries[0].id, result.document.package_sha256))
    best = float("inf")
    for r in range(args.rounds):
        batch_of = recorded[r * per_round : (r + 1) * per_round]
        started = time.process_time()
        for b in range(args.batches):
            batch = batch_of[b * args.batch : (b + 1) * args.batch]
            ids = [d for d, _ in batch]
            checks = dict(batch) if args.claim_check else {}
            if hasattr(log, "check_batch"):
                await log.check_batch(ids, checks)
            else:
                states = await log.delivery_states(ids)
                if checks:
                    await log.packages({checks[d] for d in ids if d in states})
            await log.record_attempts(
                [AttemptReport(d, DeliveryState.DELIVERED, "HTTP 200") for d in ids]
            )
        best = min(best, (time.process_time() - started) / per_round * 1000)
    await log.aclose()
    return {
        "cpu_ms_per_delivery": round(best, 3),
        "batch": args.batch,
        "claim_check": args.claim_check,
        "store": "sqlite",
        "load_average_1m": round(os.getloadavg()[0], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--batch", type=int, default=1, help="deliveries per check and commit")
    parser.add_argument("--batches", type=int, default=100, help="batches per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--claim-check", action="store_true", help="361 KB packages, read back")
    parser.add_argument("--code-dir", type=Path, default=None, help="older code to compare")
    args = parser.parse_args()
    root = args.code_dir or Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
