"""``lgsp archive verify``: walk the whole chain of a store (and its archive files) against the
signed checkpoints, at a rate fit for millions of events.

The walk reads the store in chunks of ``CHUNK`` events in id order, in one read-only transaction
(one snapshot: events appended meanwhile are left for the next run), with the records each
``received`` event covers and its package's bytes. Entries of documents moved to archive files
come from those files, merged in by id (``gateway.evidence.archive_files``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from gateway.evidence.archive_files import ArchiveSource
from gateway.evidence.walk import CheckpointMark, Problem, Tamper, WalkResult, walk
from gateway.store.chain import GENESIS, ChainHead, read_head
from gateway.store.chain_read import (
    StoredEntry,
    checkpoint_rows,
    read_chunk,
    unchained_documents,
)
from gateway.store.engine import Engines, transaction

CHUNK = 5000

# Checks one checkpoint row of a store (signature, time-stamp): None, or why it is not valid.
CheckpointCheck = Callable[[dict[str, Any], str], str | None]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What ``verify_store`` found; ``intact`` when nothing at all."""

    head: ChainHead
    walk: WalkResult
    checkpoints: int  # checkpoints considered (from the start of the walk)
    seconds: float

    @property
    def intact(self) -> bool:
        return self.walk.problem_count == 0

    @property
    def problems(self) -> list[Problem]:
        return self.walk.problems

    @property
    def rate_per_s(self) -> float:
        return self.walk.entries / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        w = self.walk
        span = f"{w.start_seq}..{w.last_seq}" if w.entries else "none"
        return (
            f"{w.entries} entries ({span}) of store {self.head.store_id}, "
            f"{w.checkpoints_matched} of {self.checkpoints} checkpoints matched, "
            f"in {self.seconds:.1f} s ({self.rate_per_s:,.0f} entries/s)"
        )


def checkpoint_label(row: dict[str, Any]) -> str:
    label = f"checkpoint {row['seq']} (signed {row['signed_at']:%Y-%m-%dT%H:%M:%SZ}"
    if row.get("tsa_time") is not None:
        label += f", time-stamped {row['tsa_time']:%Y-%m-%dT%H:%M:%SZ}"
    return label + ")"


async def verify_store(
    engines: Engines,
    *,
    since: datetime | None = None,
    check_checkpoint: CheckpointCheck | None = None,
    archive_dir: Path | None = None,
    check_packages: bool = True,
    chunk: int = CHUNK,
) -> Verdict:
    """Walk the chain from the start, or from the last checkpoint signed at or before ``since``;
    with ``archive_dir``, the entries of the archive files the store lists are merged in."""
    started = time.perf_counter()
    async with transaction(engines.reader) as conn:
        head, result, considered = await conn.run_sync(
            _verify,
            since=since,
            check_checkpoint=check_checkpoint,
            archive_dir=archive_dir,
            check_packages=check_packages,
            chunk=chunk,
        )
    return Verdict(head, result, considered, time.perf_counter() - started)


def _verify(
    sync: Connection,
    *,
    since: datetime | None,
    check_checkpoint: CheckpointCheck | None,
    archive_dir: Path | None,
    check_packages: bool,
    chunk: int,
) -> tuple[ChainHead, WalkResult, int]:
    head = read_head(sync)
    rows = checkpoint_rows(sync)
    start = [r for r in rows if since is not None and r["signed_at"] <= since]
    start_seq, start_hash = (start[-1]["seq"] + 1, start[-1]["hash"]) if start else (1, GENESIS)
    rows = [r for r in rows if r["seq"] >= start_seq - 1]
    invalid = [
        (r, why) for r in rows if check_checkpoint and (why := check_checkpoint(r, head.store_id))
    ]
    valid = [r for r in rows if all(r is not bad for bad, _ in invalid)]
    marks = [CheckpointMark(r["seq"], r["hash"], checkpoint_label(r)) for r in valid]
    entries = hot_entries(sync, start_seq - 1, chunk, check_packages=check_packages)
    source = ArchiveSource(archive_dir, []) if archive_dir is not None else None
    if source is not None:
        entries = source.merge(sync, entries, start_seq)
    result = walk(
        entries,
        marks,
        head_id=head.last_id,
        head_hash=head.hash,
        start_seq=start_seq,
        start_hash=start_hash,
    )
    for problem in source.problems if source is not None else ():
        result.add(problem)
    for row, why in invalid:
        result.add(
            Problem(Tamper.EDITED, int(row["seq"]), checkpoint_label(row), f"not valid: {why}")
        )
    for doc_id in unchained_documents(sync) if start_seq == 1 else ():
        result.add(
            Problem(
                Tamper.INSERTED,
                0,
                f"document {doc_id}",
                "it has no received event in the chain (written outside it)",
            )
        )
    return head, result, len(rows)


def hot_entries(
    sync: Connection, after_id: int, chunk: int, *, check_packages: bool
) -> Iterator[StoredEntry]:
    """The store's entries after ``after_id``, read ``chunk`` at a time."""
    while batch := read_chunk(sync, after_id, chunk, check_packages=check_packages):
        yield from batch
        after_id = batch[-1].id
