"""Benchmark: ``lgsp archive verify`` over a large generated delivery log (1,000,000 events).

Creates a fresh store (an SQLite file under a temporary directory, or a PostgreSQL database
``lgsp_bench_<random>`` with ``--pg-url``, dropped at the end), migrates it with
``DeliveryLog.open``, then fills it through the chain's own writer (``store.chain.append_events``,
the code every gateway writer appends with) with documents of ~2 KiB packages, 1-2 deliveries
each, and their received, published and delivered events, until ``--events`` events. Then it
runs ``lgsp archive verify --json`` on it as a user does (a subprocess; the packages re-hashed
unless ``--no-packages``) and checks that it exits 0.

    .venv/bin/python scripts/bench_archive.py [--events N | --quick] [--no-packages]
        [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]

The last line is one JSON object: ``events``, ``fill_s``, ``verify_s`` (wall), ``verify_cpu_s``
(the verifying process's CPU time: the machine may be shared), ``entries_per_s`` (as ``lgsp
archive verify`` measured it) and ``backend``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, make_url
from sqlalchemy.ext.asyncio import create_async_engine

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stack import fresh_database  # noqa: E402

from gateway.store import DeliveryLog  # noqa: E402
from gateway.store.chain import append_events, covered_record  # noqa: E402
from gateway.store.queries import event_values  # noqa: E402
from gateway.store.records import EventKind  # noqa: E402
from gateway.store.tables import deliveries, documents, packages  # noqa: E402

LGSP = Path(sys.executable).parent / "lgsp"
DOCS_PER_TRANSACTION = 2000
T0 = datetime(2025, 1, 1, tzinfo=UTC)
RECIPIENTS = ("000.00.04.H56", "000.00.15.H56", "0101234567")


def _fill_chunk(sync: Connection, first: int, count: int) -> int:
    """``count`` documents (numbered from ``first``) with their deliveries and events."""
    pkgs, docs, dels, trail = [], [], [], []
    covered: dict[str, Any] = {}
    for n in range(first, first + count):
        data = (f"<edXML n='{n}'>".encode() + secrets.token_bytes(1024).hex().encode())[:2048]
        sha = hashlib.sha256(data).hexdigest()
        at = T0 + timedelta(seconds=n)
        doc_id = f"00000000-0000-7000-8000-{n:012d}"
        pkgs.append({"sha256": sha, "size_bytes": len(data), "data": data, "created_at": at})
        doc = {
            "id": doc_id,
            "dedup_key": f"000.00.00.H56|{n}|0",
            "kind": "document",
            "sender": "000.00.00.H56",
            "document_id": f"000.00.00.H56,2025/01/01,{n}/UBND",
            "business_doc_type": "0",
            "status_code": None,
            "subject": f"Công văn số {n}",
            "subject_folded": f"cong van so {n}",
            "package_sha256": sha,
            "format": "xml",
            "signer_fingerprint": "ab" * 32,
            "signer_subject": "CN=UBND",
            "algorithm": "ecdsa-sha256",
            "caller": "client:000.00.00.H56",
            "received_at": at,
            "in_reply_to": None,
        }
        docs.append(doc)
        mine = [
            {
                "id": f"{doc_id[:-12]}{n:011d}{k}",
                "document": doc_id,
                "recipient": RECIPIENTS[k],
                "method": "push",
                "state": "delivered",
                "attempts": 1,
                "created_at": at,
                "updated_at": at,
                "delivered_at": at,
                "received_at": at,
                "sender": "000.00.00.H56",
            }
            for k in range(1 + n % 2)
        ]
        dels += mine
        covered[doc_id] = covered_record(doc, mine, len(data))
        trail.append(_event(doc_id, None, at, EventKind.RECEIVED, {"recipients": len(mine)}))
        for d in mine:
            trail.append(
                _event(doc_id, str(d["id"]), at, EventKind.PUBLISHED, {"state_before": "a"})
            )
            trail.append(_event(doc_id, str(d["id"]), at, EventKind.DELIVERED, {"message": "200"}))
    sync.execute(insert(packages), pkgs)
    sync.execute(insert(documents), docs)
    sync.execute(insert(deliveries), dels)
    append_events(sync, trail, covered)
    return len(trail)


def _event(
    doc: str, delivery: str | None, at: datetime, kind: EventKind, detail: dict[str, object]
) -> dict[str, Any]:
    actor = "client" if kind is EventKind.RECEIVED else "gateway"
    return event_values(
        document=doc, delivery=delivery, at=at, kind=kind, outcome="ok", detail=detail, actor=actor
    )


@asynccontextmanager
async def fresh_store(pg_url: str | None) -> AsyncIterator[str]:
    """A fresh PostgreSQL database on ``pg_url``'s server (``bench_stack``), else SQLite."""
    if pg_url is not None:
        async with fresh_database(pg_url) as url:
            assert url is not None
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="lgsp-bench-archive-") as where:
        yield f"sqlite+aiosqlite:///{where}/log.db"


async def fill(url: str, events: int) -> int:
    log = await DeliveryLog.open(url)
    await log.aclose()
    engine = create_async_engine(url)
    written, n = 0, 0
    try:
        while written < events:
            async with engine.begin() as conn:
                written += await conn.run_sync(_fill_chunk, n, DOCS_PER_TRANSACTION)
            n += DOCS_PER_TRANSACTION
            print(f"  {written} events", file=sys.stderr, flush=True)
    finally:
        await engine.dispose()
    return written


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    async with fresh_store(args.pg_url) as url:
        started = time.perf_counter()
        written = await fill(url, args.events)
        fill_s = time.perf_counter() - started
        with tempfile.TemporaryDirectory(prefix="lgsp-bench-config-") as where:
            config = Path(where) / "gateway.toml"
            config.write_text(f'[store]\nurl = "{url}"\n', encoding="utf-8")
            command = [str(LGSP), "archive", "verify", "--config", str(config), "--json"]
            if args.no_packages:
                command.append("--no-packages")
            started, cpu = time.perf_counter(), _children_cpu_s()
            done = await asyncio.to_thread(
                subprocess.run, command, capture_output=True, text=True, check=False
            )
            verify_s, verify_cpu_s = time.perf_counter() - started, _children_cpu_s() - cpu
        if done.returncode != 0:
            raise SystemExit(f"lgsp archive verify failed: {done.stderr}")
        verdict = json.loads(done.stdout)
        return {
            "backend": make_url(url).get_backend_name(),
            "events": written,
            "packages_rehashed": not args.no_packages,
            "fill_s": round(fill_s, 1),
            "verify_s": round(verify_s, 1),
            "verify_cpu_s": round(verify_cpu_s, 1),
            "entries_per_s": verdict["entries_per_s"],
            "intact": verdict["intact"],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 events")
    parser.add_argument("--no-packages", action="store_true", help="verify without re-hashing")
    parser.add_argument("--pg-url", default=None, help="PostgreSQL server (else SQLite)")
    args = parser.parse_args()
    if args.quick:
        args.events = 100_000
    print(json.dumps(asyncio.run(main_async(args))))


if __name__ == "__main__":
    main()
