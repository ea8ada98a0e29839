"""The chain walk: recompute every entry's hash in order and name the first one that was edited,
deleted, inserted or reordered, and the checkpoint it contradicts.

Pure: it reads ``StoredEntry``s (from the store, from archive files, merged by id) and compares
them with the checkpoints' signed hashes; where they come from is the caller's business. An
entry's place is its id, so ids must run 1, 2, 3 … without a gap. When an entry does not chain
from the one before it, the entries after it tell what happened:

- the next entry chains from its *stored* hash: its content was **edited**;
- a later entry, moved to this place, chains from the previous hash: if this one then chains
  after it, the two were **reordered**; if not, this one was **inserted**;
- a missing id: entries were **deleted**; a row with no chain hash, or beyond the head, was
  **inserted**.

A chain recomputed whole by someone who can write the store passes the first test; the signed
checkpoints catch it (the chain's hash at a checkpoint's place differs from the signed one).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from gateway.store.chain import GENESIS, link
from gateway.store.chain_read import StoredEntry

LOOKAHEAD = 16  # entries looked at to tell a reordered entry from an edited one
PROBLEMS_KEPT = 20


class Tamper(StrEnum):
    EDITED = "edited"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    REWRITTEN = "rewritten"  # the stored hashes agree, a signed checkpoint does not


@dataclass(frozen=True, slots=True)
class CheckpointMark:
    """A checkpoint as the walk compares it: the place and hash it signed, and how to name it."""

    seq: int
    hash: str
    label: str  # e.g. "checkpoint 2000 (signed 2026-05-01T10:00:00Z, time-stamped …)"


@dataclass(frozen=True, slots=True)
class Problem:
    kind: Tamper
    seq: int  # the place in the chain where it shows
    what: str  # the entry (or records) concerned
    why: str
    checkpoint: CheckpointMark | None = None  # the first checkpoint at or after ``seq``

    def line(self) -> str:
        against = (
            f"contradicts {self.checkpoint.label}"
            if self.checkpoint is not None
            else "after the last checkpoint (no signed checkpoint covers it yet)"
        )
        return f"{self.kind.value}: {self.what}: {self.why}; {against}"


@dataclass(slots=True)
class WalkResult:
    start_seq: int  # the first place walked
    last_seq: int  # the last place walked (start_seq - 1: nothing)
    last_hash: str
    entries: int = 0
    checkpoints_matched: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0

    def add(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append(problem)


class _Peekable:
    def __init__(self, entries: Iterable[StoredEntry]) -> None:
        self._it = iter(entries)
        self._ahead: deque[StoredEntry] = deque()

    def __iter__(self) -> Iterator[StoredEntry]:
        return self

    def __next__(self) -> StoredEntry:
        return self._ahead.popleft() if self._ahead else next(self._it)

    def peek(self, n: int) -> list[StoredEntry]:
        while len(self._ahead) < n:
            try:
                self._ahead.append(next(self._it))
            except StopIteration:
                break
        return list(self._ahead)[:n]


def walk(
    entries: Iterable[StoredEntry],
    checkpoints: Sequence[CheckpointMark],
    *,
    head_id: int,
    head_hash: str,
    start_seq: int = 1,
    start_hash: str = GENESIS,
) -> WalkResult:
    """Walk ``entries`` (ids ascending, from ``start_seq``) against ``checkpoints`` and the
    head row (``head_id``, ``head_hash``); every problem found, the first one exact."""
    marks = sorted((c for c in checkpoints if c.seq >= start_seq), key=lambda c: c.seq)
    result = WalkResult(start_seq, start_seq - 1, start_hash)
    prev, expected, segment_clean, mark_i = start_hash, start_seq, True, 0
    stream = _Peekable(entries)

    def against(seq: int) -> CheckpointMark | None:
        return next((m for m in marks if m.seq >= seq), None)

    for entry in stream:
        result.entries += 1
        if entry.id > head_id:
            result.add(_beyond_head(entry, head_id))
            segment_clean = False
            continue
        if entry.id < expected:  # ids come sorted: a repeat can only come from a merged source
            result.add(
                Problem(
                    Tamper.INSERTED,
                    entry.id,
                    entry.describe(),
                    "a second entry with this id",
                    against(entry.id),
                )
            )
            continue
        if entry.id > expected:
            result.add(_deleted(expected, entry, against(expected)))
            segment_clean = False
            prev = entry.stored_hash or prev
        elif entry.stored_hash is None:
            result.add(
                Problem(
                    Tamper.INSERTED,
                    entry.id,
                    entry.describe(),
                    "it carries no chain hash (written outside the chain)",
                    against(entry.id),
                )
            )
            segment_clean = False
        else:
            computed = link(prev, entry.digest())
            if entry.flaw is not None:  # a covered record is gone or changed: say which
                kind = Tamper.DELETED if "missing" in entry.flaw else Tamper.EDITED
                result.add(Problem(kind, entry.id, entry.describe(), entry.flaw, against(entry.id)))
            elif computed != entry.stored_hash:
                result.add(_mismatch(prev, entry, stream.peek(LOOKAHEAD), against(entry.id)))
            segment_clean = segment_clean and computed == entry.stored_hash and not entry.flaw
            prev = computed if computed == entry.stored_hash else entry.stored_hash
        expected = entry.id + 1
        while mark_i < len(marks) and marks[mark_i].seq <= entry.id:
            mark = marks[mark_i]
            mark_i += 1
            if mark.seq != entry.id:
                continue  # passed over by a gap: reported as deleted already
            if prev == mark.hash:
                result.checkpoints_matched += 1
            elif segment_clean:
                begin = marks[mark_i - 2].seq + 1 if mark_i >= 2 else start_seq
                result.add(
                    Problem(
                        Tamper.REWRITTEN,
                        begin,
                        f"the entries {begin}..{mark.seq}",
                        "their stored hashes agree with each other but not with the signed "
                        "hash: the chain was recomputed after changes",
                        mark,
                    )
                )
            segment_clean = True
        result.last_seq, result.last_hash = entry.id, prev
    _check_end(result, marks, head_id, head_hash)
    return result


def _check_end(
    result: WalkResult,
    marks: Sequence[CheckpointMark],
    head_id: int,
    head_hash: str,
) -> None:
    last = result.last_seq
    if last < head_id:
        result.add(
            Problem(
                Tamper.DELETED,
                last + 1,
                f"the entries {last + 1}..{head_id} (the end of the chain)",
                f"the chain head records {head_id} entries, the log ends at {last}",
                next((m for m in marks if m.seq > last), None),
            )
        )
    elif last == head_id and result.last_hash != head_hash and not result.problem_count:
        result.add(
            Problem(
                Tamper.EDITED,
                head_id,
                "the chain head row",
                f"it records hash {head_hash[:16]}…, the chain ends at {result.last_hash[:16]}…",
            )
        )
    beyond = [m for m in marks if m.seq > max(last, head_id)]
    if beyond:
        result.add(
            Problem(
                Tamper.DELETED,
                max(last, head_id) + 1,
                f"the entries {max(last, head_id) + 1}..{beyond[-1].seq}",
                "a signed checkpoint covers entries the log no longer has",
                beyond[0],
            )
        )


def _beyond_head(entry: StoredEntry, head_id: int) -> Problem:
    return Problem(
        Tamper.INSERTED,
        entry.id,
        entry.describe(),
        f"it lies beyond the chain head ({head_id})",
    )


def _deleted(expected: int, entry: StoredEntry, mark: CheckpointMark | None) -> Problem:
    missing = f"{expected}" if entry.id == expected + 1 else f"{expected}..{entry.id - 1}"
    return Problem(
        Tamper.DELETED,
        expected,
        f"the entry {missing}" if entry.id == expected + 1 else f"the entries {missing}",
        f"missing before {entry.describe()}",
        mark,
    )


def _mismatch(
    prev: str, entry: StoredEntry, ahead: list[StoredEntry], mark: CheckpointMark | None
) -> Problem:
    """Why ``entry`` does not chain from ``prev``: edited, reordered or inserted."""
    stored = entry.stored_hash
    nxt = ahead[0] if ahead else None
    if nxt is not None and nxt.stored_hash == link(str(stored), nxt.digest()):
        return Problem(
            Tamper.EDITED,
            entry.id,
            entry.describe(),
            "its content differs from what was chained (the next entry chains from it)",
            mark,
        )
    for other in ahead:
        hashed = link(prev, other.digest(at_id=entry.id))
        if hashed not in (other.stored_hash, stored):
            continue
        if link(hashed, entry.digest(at_id=entry.id + 1)) in (stored, ahead[0].stored_hash):
            return Problem(
                Tamper.REORDERED,
                entry.id,
                entry.describe(),
                f"it and the entry now at {other.id} were swapped (that one belongs at "
                f"{entry.id}, this one after it)",
                mark,
            )
        return Problem(
            Tamper.INSERTED,
            entry.id,
            entry.describe(),
            f"it is not in the chain: the entry now at {other.id} belongs at {entry.id}",
            mark,
        )
    return Problem(
        Tamper.EDITED,
        entry.id,
        entry.describe(),
        "it does not chain from the entry before it (edited, or its hash was)",
        mark,
    )
