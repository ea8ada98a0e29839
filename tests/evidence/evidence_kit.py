"""Evidence test kit: a delivery log written by every writer of the chain (SQLite and
PostgreSQL), a local TSA, the demo PKI, and ``lgsp`` (in-process, or its entry point run as a
user runs it).
Test modules import from here (``from evidence_kit import …``); ``conftest.py`` registers the
fixtures."""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.cli import main
from gateway.edxml.formats import PackageFormat
from gateway.edxml.model import PackageKind, StatusCode
from gateway.store import DeliveryLog, DeliveryState, NewDocument
from gateway.store.attempts import AttemptReport
from gateway.store.records import StatusAnswer

LGSP = str(Path(sys.executable).with_name("lgsp"))
SENDER = "000.00.00.H56"
DEPARTMENT = "000.00.04.H56"
DISTRICT = "000.00.15.H56"
BUSINESS = "0101234567"


SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
"""For a test whose point does not depend on the database: what it checks reads the rows the
same way on both (each module keeps its dialect-dependent tests, e.g. every writer's events
chained and verified, retention's deletes, checkpoints, migration, on PostgreSQL too)."""


@dataclass(frozen=True, slots=True)
class Filled:
    """A store written through the delivery log's every writer, and a settings file naming it."""

    url: str
    config: Path
    document: str  # documents.id of the main document (three deliveries, a status answer)
    document_id: str  # its edXML DocumentId
    status: str  # documents.id of the status package answering it


def new_document(number: str, *, sender: str = SENDER, **overrides: object) -> NewDocument:
    fields: dict[str, object] = {
        "dedup_key": f"{sender}|{number}|{secrets.token_hex(4)}",
        "kind": PackageKind.DOCUMENT,
        "sender": sender,
        "document_id": f"{sender},2026/05/02,{number}",
        "format": PackageFormat.XML,
        "signer_fingerprint": "ab" * 32,
        "signer_subject": f"CN={sender}",
        "algorithm": "ecdsa-sha256",
        "caller": f"client:{sender}",
        "received_at": datetime.now(UTC),
        "subject": "Công văn về việc triển khai",
    }
    fields.update(overrides)
    return NewDocument(**fields)  # type: ignore[arg-type]


async def fill(url: str, where: Path, received_at: datetime | None = None) -> Filled:
    """Intake (group commit, with published marks), the worker's batch, single attempts, a status
    package, a mailbox acknowledgement, a dead letter and its replay: every kind of writer.
    ``received_at``: the documents' time of receipt (default: now)."""
    at = {"received_at": received_at} if received_at is not None else {}
    tag = secrets.token_hex(2)  # DocumentIds of their own, however many fills share the store
    log = await DeliveryLog.open(url)
    try:
        first = await log.record_intake(
            new_document(f"12/UBND-VP-{tag}", **at),
            f"<edXML>first {tag}</edXML>".encode(),
            [(DEPARTMENT, "push"), (DISTRICT, "push"), (BUSINESS, "mailbox")],
        )
        dept, district, business = (
            next(d for d in first.deliveries if d.recipient == r)
            for r in (DEPARTMENT, DISTRICT, BUSINESS)
        )
        log.note_published([dept.id, district.id, business.id])  # written by the next batch
        other = await log.record_intake(
            new_document(f"13/UBND-VP-{tag}", **at),
            f"<edXML>second {tag}</edXML>".encode(),
            [(DEPARTMENT, "push")],
        )
        await log.mark_published([other.deliveries[0].id])
        await log.record_attempts(
            [
                AttemptReport(dept.id, DeliveryState.DELIVERED, "HTTP 200"),
                AttemptReport(district.id, DeliveryState.RETRYING, "HTTP 503", "busy"),
                AttemptReport(business.id, DeliveryState.DELIVERED, "stored in mailbox"),
            ]
        )
        await log.record_attempts([AttemptReport(dept.id, DeliveryState.DELIVERED, "again")])
        await log.record_attempt(
            other.deliveries[0].id,
            outcome="refused",
            detail="HTTP 410",
            next_state=DeliveryState.FAILED,
            error="gone",
        )
        await log.record_attempt(
            district.id,
            outcome="dead_lettered",
            detail="retries exhausted",
            next_state=DeliveryState.DEAD_LETTERED,
            error="HTTP 503",
        )
        await log.replay(district.id, "console:operator")
        await log.mark_published([district.id], republished=True, actor="console:operator")
        await log.mark_delivered(district.id, detail="HTTP 200")
        await log.ack_inbox(BUSINESS, business.id)
        status = await log.record_intake(
            new_document(
                "03",
                sender=DEPARTMENT,
                kind=PackageKind.STATUS,
                document_id=first.document.document_id,
                status_code=StatusCode("03"),
                subject=None,
                **at,
            ),
            f"<edXML>status 03 {tag}</edXML>".encode(),
            [(SENDER, "push")],
            answers=StatusAnswer(
                organ_id=SENDER, document_id=str(first.document.document_id), code=StatusCode("03")
            ),
        )
        await log.set_business_status(
            district.id, "05", datetime.now(UTC) - timedelta(minutes=1), "status-by-hand"
        )
    finally:
        await log.aclose()
    config = where / "gateway.toml"
    config.write_text(
        f'[store]\nurl = "{url}"\n\n[archive]\ndir = "{where / "archive"}"\n', encoding="utf-8"
    )
    return Filled(
        url, config, first.document.id, str(first.document.document_id), status.document.id
    )


@pytest.fixture
async def filled(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Filled:
    monkeypatch.delenv("LGSP_CONFIG", raising=False)
    return await fill(store_url, tmp_path)


@dataclass(frozen=True, slots=True)
class Tsa:
    url: str
    ca: Path  # the TSA's root certificate (PEM)


@pytest.fixture(scope="session")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tsa]:
    """A local Time-Stamping Authority (``openssl ts -reply`` behind HTTP) for the session."""
    assert shutil.which("openssl"), "the tests' TSA needs the openssl command"
    where = tmp_path_factory.mktemp("tsa")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("tsa_site.py")), str(where), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1) as answer:
                    assert answer.status == 200
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the test TSA did not start"
                time.sleep(0.1)
        yield Tsa(url, where / "tsa-ca.pem")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo PKI: a root CA, its trust store, and the gateway's own P-256 identity."""
    where = tmp_path_factory.mktemp("pki") / "pki"
    assert main(["pki", "init", str(where)]) == 0
    return where


def with_pki_and_tsa(filled: Filled, pki_dir: Path, tsa: Tsa) -> Filled:
    """``filled``'s settings given a PKI and a TSA: checkpoints can be made and checked."""
    filled.config.write_text(
        f'[store]\nurl = "{filled.url}"\n\n[pki]\ndir = "{pki_dir}"\n\n'
        f'[archive]\ndir = "{filled.config.parent / "archive"}"\ntsa_url = "{tsa.url}"\n'
        f'tsa_ca = "{tsa.ca}"\n',
        encoding="utf-8",
    )
    return filled


@pytest.fixture
async def signed(filled: Filled, pki_dir: Path, tsa: Tsa) -> Filled:
    """``filled`` (SQLite and PostgreSQL) with a PKI and a TSA in its settings."""
    return with_pki_and_tsa(filled, pki_dir, tsa)


async def sql(url: str, *statements: str, **params: object) -> list[object]:
    """Run statements straight on the database (as a database administrator could), in one
    transaction; the first column of each statement's first row, if it returns rows."""
    engine = create_async_engine(url)
    results: list[object] = []
    try:
        async with engine.begin() as conn:
            for statement in statements:
                result = await conn.execute(text(statement), params)
                results.append(result.scalar() if result.returns_rows else None)
    finally:
        await engine.dispose()
    return results


def lgsp_process(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """``lgsp ARGS`` run as a user runs it: the installed entry point, in a process of its own
    (about 2 s of imports each: the tests that prove the entry point use it, the rest ``lgsp``)."""
    return subprocess.run(
        [LGSP, *args], capture_output=True, text=True, timeout=timeout_s, check=False
    )


def lgsp(*args: str) -> subprocess.CompletedProcess[str]:
    """``lgsp ARGS`` in this process (the same ``main`` the entry point calls), its exit code,
    stdout and stderr captured. It runs on a thread of its own: the commands call
    ``asyncio.run`` and the tests calling this are coroutines (their loop waits, as it does on a
    subprocess)."""
    out, err = io.StringIO(), io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                return main(list(args))
            except SystemExit as exit_:  # argparse's usage errors and --help
                return exit_.code if isinstance(exit_.code, int) else 1

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lgsp") as pool:
        code = pool.submit(run).result()
    return subprocess.CompletedProcess([LGSP, *args], code, out.getvalue(), err.getvalue())
