"""``lgsp archive verify|checkpoint|bundle|verify-bundle|retain``: the tamper-evident log."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.cli.ops_commands import settings_from
from gateway.cli.subcommands import command_group, configured_command, with_log
from gateway.core.errors import ConfigError
from gateway.evidence.bundle import Bundle
from gateway.evidence.bundle_check import check_bundle
from gateway.evidence.bundle_format import Trust
from gateway.evidence.checkpoints import CHECKPOINTS_DIR, Checkpoint
from gateway.evidence.components import (
    build_bundler,
    build_checkpoint_checker,
    build_checkpointer,
    build_retainer,
)
from gateway.evidence.retention import Archived
from gateway.evidence.verify import CheckpointCheck, Verdict, verify_store
from gateway.store import DeliveryLog


def register(commands: argparse._SubParsersAction[Any]) -> None:
    sub = command_group(
        commands, "archive", "the tamper-evident log: verify it, checkpoints, evidence bundles"
    )

    verify = configured_command(
        sub,
        "verify",
        _verify,
        help="walk the hash chain and the checkpoints; exit 1 naming the first tampered entry",
    )
    verify.add_argument(
        "--from",
        dest="since",
        metavar="DATE",
        help="start at the last checkpoint signed on or before DATE (ISO; naive = UTC)",
    )
    verify.add_argument(
        "--no-packages",
        action="store_true",
        help="do not re-hash the stored package bytes (faster; the chain is still walked)",
    )
    verify.add_argument("--json", action="store_true", help="print the verdict as JSON")

    configured_command(
        sub,
        "checkpoint",
        _checkpoint,
        help="sign the chain's head now (and time-stamp it when [archive] tsa_url is set)",
    )

    bundle = configured_command(
        sub,
        "bundle",
        _bundle,
        help="write a document's evidence bundle (checked offline by verify-bundle)",
    )
    bundle.add_argument("document", metavar="DOCUMENT", help="the record id or the DocumentId")
    bundle.add_argument(
        "-o", "--output", type=Path, required=True, metavar="FILE.zip", help="where to write it"
    )

    check = sub.add_parser(
        "verify-bundle", help="check an evidence bundle offline (no gateway, no store)"
    )
    check.add_argument("bundle", type=Path, metavar="FILE.zip", help="the bundle to check")
    check.add_argument(
        "--trust",
        type=Path,
        metavar="DIR",
        help="the anchors and the gateway certificate to hold it to (the gateway's "
        "archive/trust directory); without it, the bundle's own anchors, by fingerprint",
    )
    check.set_defaults(handler=_verify_bundle)

    retain = configured_command(
        sub,
        "retain",
        _retain,
        help="move whole months older than [archive] retain_days into archive files",
    )
    retain.add_argument(
        "--before",
        metavar="DATE",
        help="archive the months that ended by DATE (default: now - [archive] retain_days)",
    )


def parse_date(text: str, option: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"{option}: not an ISO date: {text!r}", code="config.invalid") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _verify(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    since = parse_date(args.since, "--from") if args.since else None

    checker: list[CheckpointCheck] = []

    def check(row: dict[str, Any], store_id: str) -> str | None:
        if not checker:  # only when there are checkpoints: the PKI is needed for them
            checker.append(build_checkpoint_checker(settings))
        return checker[0](row, store_id)

    async def work(log: DeliveryLog) -> Verdict:
        return await verify_store(
            log.engines,
            since=since,
            check_checkpoint=check,
            archive_dir=settings.archive.dir,
            check_packages=not args.no_packages,
        )

    verdict = with_log(settings.store.url, work)
    if args.json:
        print(json.dumps(verdict_json(verdict), ensure_ascii=False, indent=2))
    else:
        print(f"lgsp archive verify: {verdict.summary()}")
    if verdict.intact:
        if not args.json:
            print("intact: every entry chains, every checkpoint matches")
        return 0
    first, *others = verdict.problems
    sys.stderr.write(f"lgsp: archive verify: {first.line()}\n")
    for problem in others[:4]:
        sys.stderr.write(f"  then {problem.line()}\n")
    if verdict.walk.problem_count > 1:
        sys.stderr.write(f"  {verdict.walk.problem_count} problems in all\n")
    return 1


def _checkpoint(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    async def work(log: DeliveryLog) -> Checkpoint | None:
        return await build_checkpointer(settings, log.engines).checkpoint()

    made = with_log(settings.store.url, work)
    if made is None:
        print("lgsp archive checkpoint: the chain's head is checkpointed already")
        return 0
    stamped = (
        f", time-stamped {made.tsa.gen_time:%Y-%m-%dT%H:%M:%SZ}" if made.tsa else ", no TSA set"
    )
    where = settings.archive.dir / CHECKPOINTS_DIR / f"checkpoint-{made.seq:012d}.jws"
    print(f"lgsp archive checkpoint: entry {made.seq} signed{stamped}: {where}")
    return 0


def _bundle(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    async def work(log: DeliveryLog) -> Bundle:
        return await build_bundler(settings, log).build(args.document)

    made = with_log(settings.store.url, work)
    args.output.write_bytes(made.data)
    print(f"lgsp archive bundle: {args.output} ({len(made.data)} bytes), checked:")
    print("\n".join(f"  {line}" for line in made.report.lines))
    return 0


def _verify_bundle(args: argparse.Namespace) -> int:
    trust = Trust.from_dir(args.trust) if args.trust is not None else None
    report = check_bundle(args.bundle.read_bytes(), trust)
    print(f"lgsp archive verify-bundle: {args.bundle} verifies:")
    print("\n".join(f"  {line}" for line in report.lines))
    if not report.pinned:
        print(
            "  checked against the anchors the bundle carries itself: compare the fingerprints "
            "above with the published ones, or pass --trust DIR"
        )
    return 0


def _retain(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.before:
        before = parse_date(args.before, "--before")
    elif settings.archive.retain_days:
        before = datetime.now(UTC) - timedelta(days=settings.archive.retain_days)
    else:
        raise ConfigError(
            "set [archive] retain_days or give --before", code="config.invalid", path="--before"
        )

    async def work(log: DeliveryLog) -> list[Archived]:
        return await build_retainer(settings, log).retain(before)

    done = with_log(settings.store.url, work)
    for made in done:
        w = made.written
        print(
            f"lgsp archive retain: {made.period}: {w.documents} documents, {w.entries} events "
            f"-> {made.path} (sha256:{w.sha256})"
        )
    if not done:
        print(f"lgsp archive retain: no month ended by {before:%Y-%m-%d} is left in the store")
    return 0


def verdict_json(verdict: Verdict) -> dict[str, object]:
    return {
        "intact": verdict.intact,
        "store_id": verdict.head.store_id,
        "entries": verdict.walk.entries,
        "first_seq": verdict.walk.start_seq,
        "last_seq": verdict.walk.last_seq,
        "checkpoints": verdict.checkpoints,
        "checkpoints_matched": verdict.walk.checkpoints_matched,
        "seconds": round(verdict.seconds, 3),
        "entries_per_s": round(verdict.rate_per_s),
        "problem_count": verdict.walk.problem_count,
        "problems": [
            {
                "kind": p.kind.value,
                "seq": p.seq,
                "what": p.what,
                "why": p.why,
                "checkpoint": p.checkpoint.seq if p.checkpoint else None,
                "line": p.line(),
            }
            for p in verdict.problems
        ],
    }
