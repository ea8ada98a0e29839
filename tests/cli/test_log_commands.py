"""``lgsp log list|show|tail`` against a real delivery log filled through the DeliveryLog API."""

from __future__ import annotations

import asyncio
import json
import queue
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from adapters.national.protocol import AckStatus
from gateway.cli import main
from gateway.edxml.formats import PackageFormat
from gateway.edxml.model import PackageKind
from gateway.national.received import ReceivedLog
from gateway.store import DeliveryLog, DeliveryState, NewDocument

PG_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
LGSP = Path(sys.executable).with_name("lgsp")
T0 = datetime(2024, 5, 2, 8, 30, tzinfo=UTC)
LONG_SUBJECT = "Công văn về việc triển khai liên thông văn bản điện tử giữa các cơ quan nhà nước"


@dataclass(frozen=True, slots=True)
class Filled:
    config: Path
    store_url: str
    first: str  # documents.id: H56 -> 000.00.04.H56 (delivered, status 03) + 000.00.15.H56 (retry)
    second: str  # documents.id: A56 -> 0101234567 (queued), an hour later


def _new(sender: str, number: str, subject: str, received_at: datetime) -> NewDocument:
    return NewDocument(
        dedup_key=f"{sender}|{number}|{secrets.token_hex(4)}",
        kind=PackageKind.DOCUMENT,
        sender=sender,
        document_id=f"{sender},2024/05/02,{number}",
        format=PackageFormat.XML,
        signer_fingerprint="ab" * 32,
        signer_subject=f"CN={sender}",
        algorithm="rsa-sha256",
        caller=f"client:{sender}",
        received_at=received_at,
        subject=subject,
    )


async def _fill(url: str) -> tuple[str, str]:
    log = await DeliveryLog.open(url)
    try:
        first = await log.record_intake(
            _new("000.00.00.H56", "123/UBND-VP", LONG_SUBJECT, T0),
            b"<one/>",
            [("000.00.04.H56", "mailbox"), ("000.00.15.H56", "push")],
        )
        to_dept, to_district = first.deliveries
        await log.mark_published([to_dept.id, to_district.id])
        await log.mark_delivered(to_dept.id, detail="stored in mailbox")
        await log.record_attempt(
            to_district.id,
            outcome="http_503",
            detail="server busy",
            next_state=DeliveryState.RETRYING,
            error="HTTP 503",
        )
        await log.set_business_status(to_dept.id, "03", T0 + timedelta(minutes=5), "status-1")
        second = await log.record_intake(
            _new("000.00.00.A56", "45-BC/TU", "Báo cáo tình hình", T0 + timedelta(hours=1)),
            b"<two/>",
            [("0101234567", "mailbox")],
        )
        await log.mark_published([second.deliveries[0].id])
        return first.document.id, second.document.id
    finally:
        await log.aclose()


def _filled(url: str, where: Path) -> Filled:
    first, second = asyncio.run(_fill(url))
    config = where / "gateway.toml"
    config.write_text(f'[store]\nurl = "{url}"\n', encoding="utf-8")
    return Filled(config, url, first, second)


@pytest.fixture
def filled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Filled:
    monkeypatch.delenv("LGSP_CONFIG", raising=False)
    return _filled(f"sqlite+aiosqlite:///{tmp_path}/log.db", tmp_path)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (as in tests/store/conftest.py), dropped afterwards."""
    name = f"lgsp_test_{secrets.token_hex(6)}"

    async def admin(sql: str) -> None:
        engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(sql))
        finally:
            await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _list_ids(capsys: pytest.CaptureFixture[str], filled: Filled, *args: str) -> list[str]:
    code, out, err = _run(capsys, "log", "list", "--config", str(filled.config), *args)
    assert (code, err) == (0, "")
    return [line.split()[1] for line in out.splitlines()[:-1]]


# --- list ----------------------------------------------------------------------------------------


def test_list_prints_one_line_per_document_newest_first(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "log", "list", "--config", str(filled.config))

    assert code == 0
    newest, oldest, footer = out.splitlines()
    assert newest.startswith(f"2024-05-02T09:30:00+00:00  {filled.second}  document")
    assert "000.00.00.A56 -> 0101234567[queued]" in newest
    assert "000.00.00.A56,2024/05/02,45-BC/TU  Báo cáo tình hình" in newest
    assert oldest.startswith(f"2024-05-02T08:30:00+00:00  {filled.first}")
    assert "000.00.00.H56 -> 000.00.04.H56[delivered/03], 000.00.15.H56[retrying]" in oldest
    assert LONG_SUBJECT[:40] in oldest
    assert LONG_SUBJECT not in oldest
    assert oldest.endswith("…")
    assert footer == "(1-2 of 2 documents)"


def test_list_filters(filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = filled.first, filled.second
    assert _list_ids(capsys, filled, "--sender", "000.00.00.A56") == [second]
    assert _list_ids(capsys, filled, "--recipient", "000.00.15.H56") == [first]
    assert _list_ids(capsys, filled, "--document-id", "000.00.00.H56,2024/05/02,123/UBND-VP") == [
        first
    ]
    assert _list_ids(capsys, filled, "--state", "retrying") == [first]
    assert _list_ids(capsys, filled, "--state", "delivered", "--recipient", "000.00.15.H56") == []
    assert _list_ids(capsys, filled, "--status", "3") == [first]
    assert _list_ids(capsys, filled, "--since", "2024-05-02T09:00:00") == [second]
    assert _list_ids(capsys, filled, "--until", "2024-05-02T16:00:00+07:00") == [first]
    assert _list_ids(capsys, filled, "--text", "bao cao") == [second]
    assert _list_ids(capsys, filled, "--limit", "1", "--offset", "1") == [first]


def test_list_on_an_empty_store_and_past_the_end(
    filled: Filled, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text(
        f'[store]\nurl = "sqlite+aiosqlite:///{tmp_path}/empty.db"\n', encoding="utf-8"
    )
    assert _run(capsys, "log", "list", "--config", str(empty)) == (0, "(no documents)\n", "")
    assert _run(capsys, "log", "list", "--config", str(filled.config), "--offset", "5") == (
        0,
        "(none of 2 documents)\n",
        "",
    )


def test_list_json(filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "log", "list", "--config", str(filled.config), "--json")

    assert code == 0
    rows = json.loads(out)
    assert [row["document"]["id"] for row in rows] == [filled.second, filled.first]
    assert rows[1]["document"]["subject"] == LONG_SUBJECT
    assert [(d["recipient"], d["state"], d["business_status"]) for d in rows[1]["deliveries"]] == [
        ("000.00.04.H56", "delivered", "03"),
        ("000.00.15.H56", "retrying", None),
    ]


@pytest.mark.parametrize("bad", [["--since", "yesterday"], ["--status", "99"]])
def test_list_bad_argument_exits_2_in_one_line(
    filled: Filled, capsys: pytest.CaptureFixture[str], bad: list[str]
) -> None:
    code, out, err = _run(capsys, "log", "list", "--config", str(filled.config), *bad)

    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert f"config.bad_argument: {bad[0]} {bad[1]!r}" in err


def test_list_unknown_state_is_a_usage_error(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["log", "list", "--config", str(filled.config), "--state", "lost"])

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--state" in err


def test_list_on_postgresql(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    filled = _filled(pg_url, tmp_path)

    assert _list_ids(capsys, filled) == [filled.second, filled.first]
    assert _list_ids(capsys, filled, "--text", "TRIEN KHAI") == [filled.first]


# --- show ----------------------------------------------------------------------------------------


def test_show_prints_document_deliveries_and_trail_in_order(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "log", "show", filled.first, "--config", str(filled.config))

    assert code == 0
    assert f"document     {filled.first}" in out
    assert f"  subject    {LONG_SUBJECT}" in out
    deliveries = out.split("deliveries\n")[1].split("trail\n")[0].splitlines()
    assert deliveries[0].split()[:4] == ["000.00.04.H56", "mailbox", "delivered", "attempts"]
    assert "business status 03 at 2024-05-02T08:35:00+00:00" in deliveries[0]
    assert deliveries[1].split()[:3] == ["000.00.15.H56", "push", "retrying"]
    assert deliveries[2] == "    last error: HTTP 503"
    trail = out.split("trail\n")[1].splitlines()
    kinds = [line.split()[1] for line in trail]
    assert kinds == [
        "received",
        "published",
        "published",
        "delivered",
        "retry_scheduled",
        "business_status",
    ]
    assert trail[4].split()[2:4] == ["http_503", "000.00.15.H56"]
    assert '"message": "server busy"' in trail[4]


def test_show_json_has_events_in_order(filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys, "log", "show", filled.second, "--json", "--config", str(filled.config)
    )

    assert code == 0
    shown = json.loads(out)
    assert shown["document"]["sender"] == "000.00.00.A56"
    assert [e["kind"] for e in shown["events"]] == ["received", "published"]
    assert shown["events"][0]["detail"]["recipients"] == 1


def test_show_names_the_national_doc_id_a_document_arrived_under(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    async def remember() -> None:
        received = await ReceivedLog.open(filled.store_url)
        try:
            await received.record(
                "vdxp-7f3a",
                message_type="edoc",
                outcome=AckStatus.DONE,
                document=filled.second,
                detail="recorded",
            )
        finally:
            await received.aclose()

    asyncio.run(remember())
    code, out, _ = _run(capsys, "log", "show", filled.second, "--config", str(filled.config))
    assert code == 0
    assert "  national   docId vdxp-7f3a" in out
    code, out, _ = _run(
        capsys, "log", "show", filled.second, "--json", "--config", str(filled.config)
    )
    assert json.loads(out)["national_doc_ids"] == ["vdxp-7f3a"]
    code, out, _ = _run(capsys, "log", "show", filled.first, "--config", str(filled.config))
    assert "national" not in out


def test_show_unknown_document_exits_1(filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "log", "show", "no-such-id", "--config", str(filled.config))

    assert (code, out) == (1, "")
    assert err == (
        "lgsp: not_found.document: no document no-such-id in the delivery log "
        "(neither a record id nor a DocumentId); `lgsp log list` lists them\n"
    )


def test_show_by_document_id_and_an_ambiguous_one_lists_the_ids(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        capsys, "log", "show", "000.00.00.A56,2024/05/02,45-BC/TU", "--config", str(filled.config)
    )
    assert code == 0
    assert out.splitlines()[0] == f"document     {filled.second}"

    async def same_id_again() -> str:  # another document with the first one's DocumentId
        log = await DeliveryLog.open(filled.store_url)
        try:
            new = _new("000.00.00.H56", "123/UBND-VP", "Bản khác", T0 + timedelta(hours=2))
            return (await log.record_intake(new, b"<three/>", [])).document.id
        finally:
            await log.aclose()

    third = asyncio.run(same_id_again())
    code, out, err = _run(
        capsys,
        "log",
        "show",
        "000.00.00.H56,2024/05/02,123/UBND-VP",
        "--config",
        str(filled.config),
    )
    assert (code, out) == (1, "")
    assert err.startswith("lgsp: conflict.ambiguous_document: DocumentId ")
    assert filled.first in err
    assert third in err


# --- tail ----------------------------------------------------------------------------------------


def test_tail_prints_the_latest_events_oldest_first(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "log", "tail", "--limit", "3", "--config", str(filled.config))

    assert code == 0
    lines = out.splitlines()
    assert [line.split()[2] for line in lines] == ["business_status", "received", "published"]
    assert all(f"document {filled.second}" in line for line in lines[1:])
    ids = [int(line.split()[1].lstrip("#")) for line in lines]
    assert ids == sorted(ids)


def _reader(stream: object) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _next_line(lines: queue.Queue[str]) -> str:
    return lines.get(timeout=30)  # a deadline against hanging, not a timing assertion


def test_tail_follow_prints_new_events_until_ctrl_c(filled: Filled) -> None:
    proc = subprocess.Popen(
        [
            str(LGSP),
            "log",
            "tail",
            "--follow",
            "--interval",
            "0.1",
            "--limit",
            "2",
            "--config",
            str(filled.config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = _reader(proc.stdout)
        assert "received" in _next_line(lines)
        assert "published" in _next_line(lines)

        async def add_event() -> None:
            log = await DeliveryLog.open(filled.store_url)
            try:
                view = await log.get_document(filled.second)
                assert view is not None
                await log.mark_delivered(view.deliveries[0].id, detail="stored in mailbox")
            finally:
                await log.aclose()

        asyncio.run(add_event())
        new = _next_line(lines)
        assert new.split()[2:4] == ["delivered", "delivered"]
        assert f"document {filled.second}" in new

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):  # the reader thread ends at end of file
            if pipe is not None:
                pipe.close()
