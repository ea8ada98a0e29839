"""Archive files: the documents of one period moved out of the hot store, with every chain entry
about them, so that ``lgsp archive verify`` walks the chain across the store and its archives.

``<archive dir>/archives/archive-YYYY-MM.zip`` (deflated) holds:

    entries.jsonl          one chain entry a line, ids ascending: the event as chained, what it
                           covers (a received event), its chain hash
    documents.jsonl        the documents' and deliveries' rows as they last stood (for reading)
    packages/<sha256>.bin  the packages as received
    manifest.jws           the gateway's JWS over {period, entries, documents, files: {name: sha}}

The store's ``archives`` table records each file's SHA-256; the walk checks it, then reads the
entries lazily (a month may hold millions) and merges them with the store's by id.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, select

from gateway.evidence.walk import Problem, Tamper
from gateway.signatures.identity import Identity
from gateway.signatures.jws import sign_jws
from gateway.store.chain import EVENT_FIELDS, canonical_value
from gateway.store.chain_read import StoredEntry
from gateway.store.tables import archives

ARCHIVES_DIR = "archives"
ARCHIVE_TYPE = "lgsp-archive+jwt"
ENTRIES = "entries.jsonl"
DOCUMENTS = "documents.jsonl"
PACKAGES = "packages/"
MANIFEST = "manifest.jws"
_READ_BYTES = 1024 * 1024


def archive_path(archive_dir: Path, period: str) -> Path:
    return archive_dir / ARCHIVES_DIR / f"archive-{period}.zip"


def entry_line(entry: StoredEntry) -> bytes:
    record = {
        "event": {name: canonical_value(entry.row[name]) for name in EVENT_FIELDS},
        "covers": entry.covered,
        "chain_hash": entry.stored_hash,
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


@dataclass(frozen=True, slots=True)
class ArchiveContent:
    """What one period's file holds: its entries, the documents' and deliveries' rows, the
    packages by SHA-256."""

    period: str
    entries: Iterable[StoredEntry]  # ids ascending
    rows: Iterable[Mapping[str, object]]
    packages: Iterable[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Written:
    sha256: str
    entries: int
    documents: int
    last_id: int


def write_archive(path: Path, content: ArchiveContent, identity: Identity) -> Written:
    """Write the archive file (to a temporary name, then in place), streaming its parts."""
    counts = {ENTRIES: 0, DOCUMENTS: 0}
    last_id = 0

    def entry_lines() -> Iterator[bytes]:
        nonlocal last_id
        for entry in content.entries:
            counts[ENTRIES] += 1
            last_id = entry.id
            yield entry_line(entry)

    def row_lines() -> Iterator[bytes]:
        for row in content.rows:
            counts[DOCUMENTS] += 1
            yield json.dumps(row, ensure_ascii=False, default=str).encode() + b"\n"

    path.parent.mkdir(parents=True, exist_ok=True)
    members: dict[str, str] = {}
    partial = path.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        members[ENTRIES] = _write(archive, ENTRIES, entry_lines())
        members[DOCUMENTS] = _write(archive, DOCUMENTS, row_lines())
        for sha, data in content.packages:
            members[f"{PACKAGES}{sha}.bin"] = _write(archive, f"{PACKAGES}{sha}.bin", [data])
        claims = {
            "typ": ARCHIVE_TYPE,
            "period": content.period,
            "entries": counts[ENTRIES],
            "documents": counts[DOCUMENTS],
            "files": members,
        }
        payload = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
        token = sign_jws(payload, identity.key, identity.chain, alg=identity.jws_algorithm)
        archive.writestr(MANIFEST, token)
    digest = _file_sha256(partial)
    partial.replace(path)
    return Written(digest, counts[ENTRIES], counts[DOCUMENTS], last_id)


def _write(archive: zipfile.ZipFile, name: str, chunks: Iterator[bytes] | list[bytes]) -> str:
    digest = hashlib.sha256()
    with archive.open(name, "w", force_zip64=True) as out:
        for chunk in chunks:
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_READ_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ArchiveSource:
    """The archive files a store's ``archives`` table lists, read for the walk."""

    archive_dir: Path
    problems: list[Problem]

    def merge(
        self, sync: Connection, hot: Iterator[StoredEntry], start_seq: int
    ) -> Iterator[StoredEntry]:
        """The store's entries and the archived ones, by id, from ``start_seq``."""
        streams: list[Iterator[StoredEntry]] = [hot]
        for row in sync.execute(select(archives).order_by(archives.c.period)).mappings():
            stream = self._open(row)
            if stream is not None:
                streams.append(e for e in stream if e.id >= start_seq)
        return heapq.merge(*streams, key=lambda e: e.id)

    def _open(self, row: Mapping[Any, Any]) -> Iterator[StoredEntry] | None:
        path = self.archive_dir / ARCHIVES_DIR / str(row["file"])
        what = f"archive file {row['file']} (period {row['period']})"
        if not path.is_file():
            self.problems.append(Problem(Tamper.DELETED, 0, what, "it is missing"))
            return None
        if _file_sha256(path) != row["sha256"]:
            self.problems.append(
                Problem(Tamper.EDITED, 0, what, "its SHA-256 is not the one the store recorded")
            )
            return None
        return _entries(path)


def _entries(path: Path) -> Iterator[StoredEntry]:
    with zipfile.ZipFile(path) as archive, archive.open(ENTRIES) as lines:
        for line in lines:
            record = json.loads(line)
            yield _stored(record, archive)


def _stored(record: dict[str, Any], archive: zipfile.ZipFile) -> StoredEntry:
    row = {**record["event"], "chain_hash": record["chain_hash"]}
    covers = record["covers"]
    flaw = None
    if covers is not None:
        sha, size = covers[2]
        try:
            with archive.open(f"{PACKAGES}{sha}.bin") as data:
                flaw = _package_flaw(data, sha, size)
        except KeyError:
            flaw = f"its package {sha} is missing from the archive file"
    return StoredEntry(row, covers, flaw)


def _package_flaw(data: IO[bytes], sha: str, size: int) -> str | None:
    digest, length = hashlib.sha256(), 0
    while chunk := data.read(_READ_BYTES):
        digest.update(chunk)
        length += len(chunk)
    if digest.hexdigest() != sha or length != size:
        return f"its package {sha} no longer hashes to its SHA-256"
    return None
