"""Retention: whole months move to archive files (one per month) and ``lgsp archive verify``
still walks the whole chain, archives included (SQLite and PostgreSQL); a changed or missing
archive file is named (SQLite: the files and the verifier are the same for both)."""

from __future__ import annotations

import asyncio
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from evidence_kit import SQLITE_ONLY, Filled, Tsa, fill, lgsp, sql, with_pki_and_tsa

from gateway.evidence.archive_files import ENTRIES


async def filled_months(store_url: str, where: Path, pki_dir: Path, tsa: Tsa) -> Filled:
    """January and February 2025, and today: documents, their status answers, every writer."""
    await fill(store_url, where, datetime(2025, 1, 15, 9, tzinfo=UTC))
    await fill(store_url, where, datetime(2025, 2, 10, 9, tzinfo=UTC))
    return with_pki_and_tsa(await fill(store_url, where), pki_dir, tsa)


def verify(filled: Filled) -> tuple[int, str, str]:
    done = lgsp("archive", "verify", "--config", str(filled.config))
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


async def retained(store_url: str, tmp_path: Path, pki_dir: Path, tsa: Tsa) -> Filled:
    filled = await filled_months(store_url, tmp_path, pki_dir, tsa)
    done = lgsp("archive", "retain", "--before", "2025-03-01", "--config", str(filled.config))
    assert done.returncode == 0, done.stderr
    lines = [x for x in done.stdout.splitlines() if x.startswith("lgsp archive retain: ")]
    assert [line.split(":")[1].strip() for line in lines] == [
        "2025-01",
        "2025-02",
    ]
    return filled


async def test_archived_months_leave_the_store_and_the_chain_still_verifies(
    store_url: str, tmp_path: Path, pki_dir: Path, tsa: Tsa
) -> None:
    filled = await filled_months(store_url, tmp_path, pki_dir, tsa)
    (events_before,) = await sql(filled.url, "SELECT count(*) FROM events")
    done = lgsp("archive", "retain", "--before", "2025-03-01", "--config", str(filled.config))
    assert done.returncode == 0, done.stderr
    assert "2025-01: 3 documents, " in done.stdout  # the document, another, a status answer
    files = sorted(p.name for p in (tmp_path / "archive" / "archives").iterdir())
    assert files == ["archive-2025-01.zip", "archive-2025-02.zip"]
    assert await sql(filled.url, "SELECT count(*) FROM documents") == [3]  # today's only
    (hot,) = await sql(filled.url, "SELECT count(*) FROM events")
    assert 0 < int(str(hot)) < int(str(events_before)) / 2

    code, out, err = verify(filled)
    assert (code, err) == (0, ""), err
    assert f" {events_before} entries (1..{events_before}) " in out
    again = lgsp("archive", "retain", "--before", "2025-03-01", "--config", str(filled.config))
    assert "no month ended by 2025-03-01 is left in the store" in again.stdout
    # the chain goes on after the archived entries, and a path may start from one of them
    assert lgsp("archive", "checkpoint", "--config", str(filled.config)).returncode == 0
    assert verify(filled)[0] == 0
    out = tmp_path / "today.zip"
    made = lgsp(
        "archive", "bundle", filled.document, "-o", str(out), "--config", str(filled.config)
    )
    assert made.returncode == 0, made.stderr
    trust = str(tmp_path / "archive" / "trust")
    checked = lgsp("archive", "verify-bundle", str(out), "--trust", trust)
    assert checked.returncode == 0, checked.stderr


@SQLITE_ONLY
async def test_an_edited_archive_file_is_named(
    store_url: str, tmp_path: Path, pki_dir: Path, tsa: Tsa
) -> None:
    filled = await retained(store_url, tmp_path, pki_dir, tsa)
    path = tmp_path / "archive" / "archives" / "archive-2025-01.zip"
    await asyncio.to_thread(_rewrite_entry, path, 2, "outcome", "forged")
    code, _, err = verify(filled)
    assert code == 1
    assert "edited: archive file archive-2025-01.zip (period 2025-01): its SHA-256 is not " in err

    # and with the store's record of the file changed to match: the chain names the entry
    await sql(filled.url, "UPDATE archives SET sha256 = :sha WHERE period = '2025-01'",
              sha=_sha256(path))  # fmt: skip
    code, _, err = verify(filled)
    assert code == 1
    first = err.splitlines()[0]
    assert first.startswith("lgsp: archive verify: edited: event ")
    assert "contradicts checkpoint " in first


@SQLITE_ONLY
async def test_a_missing_archive_file_is_named(
    store_url: str, tmp_path: Path, pki_dir: Path, tsa: Tsa
) -> None:
    filled = await retained(store_url, tmp_path, pki_dir, tsa)
    (tmp_path / "archive" / "archives" / "archive-2025-02.zip").unlink()
    code, _, err = verify(filled)
    assert code == 1
    assert "deleted: the entries " in err.splitlines()[0]
    assert "deleted: archive file archive-2025-02.zip (period 2025-02): it is missing" in err


def _rewrite_entry(path: Path, index: int, field: str, value: str) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    lines = members[ENTRIES].decode().splitlines()
    record = json.loads(lines[index])
    record["event"][field] = value
    lines[index] = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    members[ENTRIES] = ("\n".join(lines) + "\n").encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _sha256(path: Path) -> str:
    import hashlib  # noqa: PLC0415

    return hashlib.sha256(path.read_bytes()).hexdigest()
