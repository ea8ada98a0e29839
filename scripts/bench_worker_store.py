"""Benchmark: the store work per package, in-process: the worker's (batch check, then batch
commit) or, with ``--intake``, the gateway's group-commit write of the intake.

Worker: what ``DeliveryHandler.check`` and ``commit`` ask of the delivery log for a batch of *n*
deliveries: the states of the batch and its claim-checked packages (``check_batch``, or on older
code ``delivery_states`` then ``packages``), then ``record_attempts`` (all delivered). The
deliveries are recorded first (group commit), outside the timed part.

Intake (``--intake``): ``--batch`` concurrent ``record_intake`` calls at a time (one group-commit
transaction each), with the small mix's ~4 KB or the real mix's 361 KB ``edoc_new.edxml``
(``--mix``, both by default, interleaved round by round); its SHA-256 included. With
``--marks``, each batch's deliveries are noted published (as the broker's confirms do in a live
gateway), so that every transaction also moves the previous batch's deliveries to ``queued``. With
``--status``, the packages are status packages from the recipient answering ``ORIGINALS``
documents recorded before the timed part (as the small mix of ``bench_e2e``): each one finds its
original, locks and checks that delivery, and sets its business status (a newer one each time).

Prints this process's CPU per package (``time.process_time``: the aiosqlite thread included)
and the event loop thread's alone (``time.thread_time``), best of
``--rounds``; the last line is JSON. With ``--each-round`` (intake), every round's figures go to
stderr as well, with the packages then in the store and the bytes this process wrote and read
per package (``/proc/self/io``; on SQLite that is the WAL, its checkpoints and the pages read
back): how the cost grows with the store. ``--store-url`` takes a PostgreSQL database to use (its
tables are made by the store's migrations; use a database of your own).

    .venv/bin/python scripts/bench_worker_store.py [--batch 1] [--claim-check] [--code-dir DIR]
    .venv/bin/python scripts/bench_worker_store.py --intake --batch 8 [--mix small|real|both]
        [--status] [--marks] [--store-url postgresql+asyncpg://postgres@127.0.0.1:5432/NAME]
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

REAL_SAMPLE = Path(__file__).resolve().parent.parent / "tests/data/conformance/edoc_new.edxml"
SENDER = "000.00.00.H56"
RECIPIENT = "000.00.01.H56"
ORIGINALS = 50  # documents the ``--status`` packages answer (bench_e2e's small mix: 50)


def _new_document(i: int) -> Any:
    from gateway.edxml.formats import PackageFormat  # noqa: PLC0415 (after --code-dir)
    from gateway.edxml.model import PackageKind  # noqa: PLC0415
    from gateway.store import NewDocument  # noqa: PLC0415

    return NewDocument(
        dedup_key=f"{SENDER}|{secrets.token_hex(6)}|{i}",
        kind=PackageKind.DOCUMENT,
        sender=SENDER,
        document_id=_document_id(i),
        format=PackageFormat.XML,
        signer_fingerprint="ab" * 32,
        signer_subject="CN=bench",
        algorithm="rsa-sha256",
        caller=f"client:{SENDER}",
        received_at=datetime.now(UTC),
    )


def _document_id(i: int) -> str:
    return f"{SENDER},2024/05/02,{i}/UBND"


def _status(i: int) -> tuple[Any, Any]:
    """A status package's document from the recipient answering original ``i % ORIGINALS``,
    and its answer (the intake pipeline's ``StatusAnswer``)."""
    from gateway.edxml.formats import PackageFormat  # noqa: PLC0415 (after --code-dir)
    from gateway.edxml.model import PackageKind, StatusCode  # noqa: PLC0415
    from gateway.store import NewDocument  # noqa: PLC0415
    from gateway.store.records import StatusAnswer  # noqa: PLC0415

    code = tuple(StatusCode)[i % len(StatusCode)]
    at = datetime.now(UTC)
    new = NewDocument(
        dedup_key=f"status|{RECIPIENT}|{secrets.token_hex(6)}|{code.value}|{at.isoformat()}",
        kind=PackageKind.STATUS,
        sender=RECIPIENT,
        document_id=f"{RECIPIENT},2024/05/02,{i}/TT",
        format=PackageFormat.XML,
        signer_fingerprint="cd" * 32,
        signer_subject="CN=bench status",
        algorithm="rsa-sha256",
        caller=RECIPIENT,
        received_at=at,
        status_code=code,
    )
    return new, StatusAnswer(organ_id=SENDER, document_id=_document_id(i % ORIGINALS), code=code)


async def run_worker(args: argparse.Namespace, log: Any) -> dict[str, Any]:
    from gateway.store import DeliveryState  # noqa: PLC0415 (after --code-dir)
    from gateway.store.attempts import AttemptReport  # noqa: PLC0415

    size = 361_000 if args.claim_check else 4_000
    body = os.urandom(size)
    per_round = args.batch * args.batches
    recorded: list[tuple[str, str]] = []  # (delivery id, package sha256)
    for i in range(per_round * args.rounds):
        result = await log.record_intake(
            _new_document(i), body + str(i).encode(), [("000.00.01.H56", "push")]
        )
        recorded.append((result.deliveries[0].id, result.document.package_sha256))
    best = best_thread = float("inf")
    for r in range(args.rounds):
        batch_of = recorded[r * per_round : (r + 1) * per_round]
        started, thread_started = time.process_time(), time.thread_time()
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
        best_thread = min(best_thread, (time.thread_time() - thread_started) / per_round * 1000)
    return {
        "cpu_ms_per_delivery": round(best, 3),
        "loop_thread_ms_per_delivery": round(best_thread, 3),
        "claim_check": args.claim_check,
    }


async def run_intake(args: argparse.Namespace, log: Any) -> dict[str, Any]:
    real = REAL_SAMPLE.read_bytes()
    samples = {"small": real[:4000], "real": real}
    mixes = ("small", "real") if args.mix == "both" else (args.mix,)
    best: dict[str, tuple[float, float]] = {}
    count = 0
    if args.status:  # the originals the status packages answer, outside the timed part
        for i in range(ORIGINALS):
            await log.record_intake(_new_document(i), samples["small"], [(RECIPIENT, "push")])
    io_then = _io_bytes()
    for _ in range(args.rounds):
        for mix in mixes:
            process_s = thread_s = 0.0
            for _ in range(args.batches):
                bodies = [
                    samples[mix] + f"<!-- {secrets.token_hex(8)} -->".encode()
                    for _ in range(args.batch)
                ]
                if args.status:
                    statuses = [_status(count + i) for i in range(args.batch)]
                    calls = [
                        log.record_intake(n, b, [(SENDER, "push")], answers=a)
                        for (n, a), b in zip(statuses, bodies, strict=True)
                    ]
                else:
                    news = [_new_document(count + i) for i in range(args.batch)]
                    calls = [
                        log.record_intake(n, b, [(RECIPIENT, "push")])
                        for n, b in zip(news, bodies, strict=True)
                    ]
                count += args.batch
                p0, t0 = time.process_time(), time.thread_time()
                results = await asyncio.gather(*calls)
                if args.marks:  # the broker confirmed them: marked queued with the next batch
                    log.note_published([r.deliveries[0].id for r in results])
                process_s += time.process_time() - p0
                thread_s += time.thread_time() - t0
            per = args.batch * args.batches
            figures = (process_s / per * 1000, thread_s / per * 1000)
            if args.each_round:
                io_now = _io_bytes()
                print(
                    f"{mix}: {count} packages stored, cpu {figures[0]:.3f} ms, "
                    f"loop {figures[1]:.3f} ms{_io_note(io_now, io_then, per)}",
                    file=sys.stderr,
                    flush=True,
                )
                io_then = io_now
            old = best.get(mix, figures)
            best[mix] = (min(old[0], figures[0]), min(old[1], figures[1]))
    return {
        **{f"{mix}.cpu_ms_per_package": round(p, 3) for mix, (p, _) in best.items()},
        **{f"{mix}.loop_thread_ms_per_package": round(t, 3) for mix, (_, t) in best.items()},
    }


def _io_bytes() -> tuple[int, int] | None:
    """Bytes this process has written and read through system calls (Linux only)."""
    try:
        fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    except OSError:
        return None
    return int(fields["wchar"]), int(fields["rchar"])


def _io_note(io_now: tuple[int, int] | None, io_then: tuple[int, int] | None, per: int) -> str:
    """The bytes written and read per package between two ``_io_bytes`` readings."""
    if io_now is None or io_then is None:
        return ""
    written, read = ((now - then) / per / 1024 for now, then in zip(io_now, io_then, strict=True))
    return f", wrote {written:.1f} KiB, read {read:.1f} KiB a package"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from gateway.store import DeliveryLog  # noqa: PLC0415 (after --code-dir)

    url = args.store_url or f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/log.db"
    log = await DeliveryLog.open(url)
    try:
        figures = await (run_intake(args, log) if args.intake else run_worker(args, log))
    finally:
        await log.aclose()
    return {
        "step": "intake" if args.intake else "worker",
        **figures,
        "batch": args.batch,
        "store": "postgresql" if url.startswith("postgresql") else "sqlite",
        "load_average_1m": round(os.getloadavg()[0], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--batch", type=int, default=1, help="deliveries (intakes) per batch")
    parser.add_argument("--batches", type=int, default=100, help="batches per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--claim-check", action="store_true", help="361 KB packages, read back")
    parser.add_argument("--intake", action="store_true", help="the gateway's intake write")
    parser.add_argument("--mix", choices=("small", "real", "both"), default="both")
    parser.add_argument(
        "--marks", action="store_true", help="intake: each batch's deliveries published, as live"
    )
    parser.add_argument(
        "--status", action="store_true", help="intake: status packages answering originals"
    )
    parser.add_argument(
        "--each-round",
        action="store_true",
        help="intake: every round's figures on stderr (how the cost grows with the store)",
    )
    parser.add_argument("--store-url", default=None, help="a PostgreSQL database (default SQLite)")
    parser.add_argument("--code-dir", type=Path, default=None, help="older code to compare")
    args = parser.parse_args()
    root = args.code_dir or Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
