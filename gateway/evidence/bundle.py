"""``lgsp archive bundle``: the evidence of one document as a file a third party checks offline.

The bundle holds the package bytes as received, the receipt, every event of the document, of its
deliveries and of the status packages answering it (with those packages), the hash-chain path
from those events to the checkpoints after them, the checkpoints' signatures and time-stamps,
and the anchors needed (layout in ``bundle_format``). Events not yet covered by a checkpoint get
one first. The bundle is checked with ``bundle_check.check_bundle`` before it is handed out: a
log changed since its checkpoint gives no bundle but an error naming the span.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from sqlalchemy import Connection, select

from gateway.core.errors import ConflictError, ServiceError
from gateway.evidence.archive_files import ArchiveSource
from gateway.evidence.bundle_check import BundleReport, check_bundle
from gateway.evidence.bundle_format import (
    BUNDLE_FORMAT,
    BUNDLE_TYPE,
    CERTIFICATES,
    CHECKPOINTS,
    MANIFEST,
    PACKAGES,
    PATH,
    RECEIPT,
    RECORDS,
    Trust,
    pem,
    sha256_hex,
    write_zip,
)
from gateway.evidence.checkpoints import Checkpointer, fingerprint
from gateway.evidence.verify import hot_entries
from gateway.intake.receipts import Receipt, ReceiptSigner
from gateway.signatures.identity import Identity
from gateway.signatures.jws import sign_jws
from gateway.store import DeliveryLog, DocumentView
from gateway.store.chain import EVENT_FIELDS, GENESIS, canonical_value, link
from gateway.store.chain_read import StoredEntry, checkpoint_rows, read_events_of
from gateway.store.engine import transaction
from gateway.store.tables import documents

PATH_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class Bundle:
    name: str  # a file name for it: evidence-<document id>.zip
    data: bytes
    report: BundleReport  # what checking it found (its own check, before it is handed out)


class Bundler:
    """Builds bundles from one store, signed with the gateway's identity."""

    def __init__(
        self,
        log: DeliveryLog,
        identity: Identity,
        checkpointer: Checkpointer | None,
        anchors: Sequence[x509.Certificate],
        archive_dir: Path | None = None,
    ) -> None:
        self._archive_dir = archive_dir
        self._log = log
        self._identity = identity
        self._checkpointer = checkpointer
        self._anchors = tuple(anchors)

    async def build(self, ref: str) -> Bundle:
        """The bundle of the document ``ref`` names (a record id or an edXML DocumentId)."""
        view = await self._log.find_view(ref)
        async with transaction(self._log.engines.reader) as conn:
            entries, covering = await conn.run_sync(_entries_and_checkpoints, view.document.id)
        uncovered = entries and (covering is None or covering < entries[-1].id)
        if uncovered and self._checkpointer is not None:
            await self._checkpointer.checkpoint()
        async with transaction(self._log.engines.reader) as conn:
            records, segments, marks = await conn.run_sync(
                _evidence, view.document.id, self._archive_dir
            )
        packages = await self._log.packages(
            _package_of(e) for e in records if e.covered is not None
        )
        members: dict[str, bytes] = {
            RECEIPT: ReceiptSigner(self._identity).sign(Receipt.of(view.document)).encode(),
            RECORDS: _json({"entries": [_record(e) for e in records]}),
            PATH: _json({"segments": segments}),
        }
        members |= {f"{PACKAGES}{sha}.bin": data for sha, data in packages.items()}
        for mark in marks:
            members[f"{CHECKPOINTS}{mark['seq']}.jws"] = str(mark["statement"]).encode()
            if mark["tsa_response"] is not None:
                members[f"{CHECKPOINTS}{mark['seq']}.tsr"] = bytes(mark["tsa_response"])
        members |= {f"{CERTIFICATES}ca-{fingerprint(c)[:16]}.pem": pem(c) for c in self._anchors}
        members[MANIFEST] = self._manifest(view, members).encode()
        data = write_zip(members)
        trust = Trust(self._anchors, (self._identity.certificate,))
        report = await asyncio.to_thread(check_bundle, data, trust)  # CPU: off the event loop
        return Bundle(f"evidence-{view.document.id}.zip", data, report)

    def _manifest(self, view: DocumentView, members: dict[str, bytes]) -> str:
        claims = {
            "typ": BUNDLE_TYPE,
            "format": BUNDLE_FORMAT,
            "document": view.document.id,
            "document_id": view.document.document_id,
            "made_at": datetime.now(UTC).isoformat(),
            "files": {name: sha256_hex(data) for name, data in sorted(members.items())},
        }
        payload = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
        identity = self._identity
        return sign_jws(payload, identity.key, identity.chain, alg=identity.jws_algorithm)


def _package_of(entry: StoredEntry) -> str:
    """The package SHA-256 a received entry covers (``chain.covered_record``'s last part)."""
    assert entry.covered is not None
    package = entry.covered[2]
    assert isinstance(package, list)
    return str(package[0])


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True).encode()


def _record(entry: StoredEntry) -> dict[str, object]:
    return {
        "event": {name: canonical_value(entry.row[name]) for name in EVENT_FIELDS},
        "covers": entry.covered,
        "chain_hash": entry.stored_hash,
    }


def _family(sync: Connection, document: str) -> list[str]:
    """The document and the status packages answering it."""
    answers = sync.execute(select(documents.c.id).where(documents.c.in_reply_to == document))
    return [document, *answers.scalars()]


def _entries_and_checkpoints(
    sync: Connection, document: str
) -> tuple[list[StoredEntry], int | None]:
    entries = read_events_of(sync, _family(sync, document))
    rows = checkpoint_rows(sync)
    return entries, rows[-1]["seq"] if rows else None


def _evidence(
    sync: Connection, document: str, archive_dir: Path | None
) -> tuple[list[StoredEntry], list[dict[str, object]], list[dict[str, Any]]]:
    """The entries, the path segments (one per checkpoint that covers some of them) and those
    checkpoints' rows; ``ConflictError`` when the last entries have no checkpoint yet."""
    entries = read_events_of(sync, _family(sync, document))
    flawed = [e for e in entries if e.flaw is not None]
    if flawed:
        raise ServiceError(
            f"{flawed[0].describe()}: {flawed[0].flaw}; run lgsp archive verify",
            code="evidence.log_tampered",
        )
    rows = checkpoint_rows(sync)
    groups: dict[int, list[StoredEntry]] = {}
    for entry in entries:
        mark = next((r for r in rows if r["seq"] >= entry.id), None)
        if mark is None:
            raise ConflictError(
                f"{entry.describe()} is not covered by a checkpoint yet: run "
                "lgsp archive checkpoint (a TSA must be reachable) and ask again",
                code="conflict.not_checkpointed",
            )
        groups.setdefault(int(mark["seq"]), []).append(entry)
    segments = [_segment(sync, group[0].id, seq, archive_dir) for seq, group in groups.items()]
    marks = [r for r in rows if r["seq"] in groups]
    for segment, mark in zip(segments, marks, strict=True):
        if segment["end_hash"] != mark["hash"]:
            raise ServiceError(
                f"the log from entry {segment['start']} to checkpoint {mark['seq']} does not "
                "match the checkpoint; run lgsp archive verify",
                code="evidence.log_tampered",
            )
    return entries, [_without_end(s) for s in segments], marks


def _segment(sync: Connection, first: int, seq: int, archive_dir: Path | None) -> dict[str, object]:
    """The digests of entries ``first``..``seq`` and the hash before ``first``, from the store
    and the archive files (a path may cross entries archived since)."""
    after = max(first - 2, 0)
    stream: Iterator[StoredEntry] = hot_entries(sync, after, PATH_CHUNK, check_packages=False)
    if archive_dir is not None:
        stream = ArchiveSource(archive_dir, []).merge(sync, stream, after + 1)
    start_hash, digests = GENESIS, []
    running = GENESIS
    for entry in stream:
        if entry.id == first - 1:
            start_hash = running = str(entry.stored_hash)
            continue
        if entry.id > seq:
            break
        digest = entry.digest()
        digests.append([entry.id, digest])
        running = link(running, digest)
    return {
        "checkpoint": seq,
        "start": first,
        "start_hash": start_hash,
        "digests": digests,
        "end_hash": running,
    }


def _without_end(segment: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in segment.items() if k != "end_hash"}
