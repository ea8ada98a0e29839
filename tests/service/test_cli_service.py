"""``lgsp send``, ``config check`` and ``log show`` (processes and in-process) on a live gateway."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from service_kit import COMMUNE, DEPARTMENT, DISTRICT, StartGateway, free_port, new_document

from gateway.cli import main
from gateway.demo.setup import init_demo
from gateway.edxml.xml_codec import serialize_package

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)

LGSP = Path(sys.executable).with_name("lgsp")
UNKNOWN = "000.00.99.H56"


@dataclass(frozen=True, slots=True)
class Done:
    code: int
    out: str
    err: str


async def lgsp_process(*args: str) -> Done:
    """Run the ``lgsp`` console script without blocking the loop the in-process gateway uses."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LGSP_")}
    proc = await asyncio.create_subprocess_exec(
        str(LGSP),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


@pytest.fixture
def lgsp(capsys: pytest.CaptureFixture[str]) -> Callable[..., Awaitable[Done]]:
    """``await lgsp(*argv)``: ``gateway.cli.main`` in a thread (cheaper than a process)."""

    async def run(*args: str) -> Done:
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(args))
        captured = capsys.readouterr()
        return Done(code, captured.out, captured.err)

    return run


Lgsp = Callable[..., Awaitable[Done]]


def _unsigned(tmp_path: Path, recipients: list[str], name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(serialize_package(new_document(DEPARTMENT, recipients)))
    return path


async def test_send_prints_the_answer_and_log_show_traces_the_delivery(
    start_gateway: StartGateway, tmp_path: Path
) -> None:
    gw = await start_gateway()
    config = str(gw.setup.config_path)
    package = _unsigned(tmp_path, [COMMUNE, DISTRICT], "cong-van.edxml")

    sent = await lgsp_process(
        "send", str(package), "--config", config, "--as", DEPARTMENT, "--json"
    )

    assert sent.code == 0, sent
    answer: dict[str, Any] = json.loads(sent.out)
    assert answer["duplicate"] is False
    assert sorted(r["organ_id"] for r in answer["recipients"]) == sorted([COMMUNE, DISTRICT])
    await gw.wait_for(
        answer["id"], DEPARTMENT, lambda v: all(r["state"] == "delivered" for r in v["recipients"])
    )

    shown = await lgsp_process("log", "show", answer["id"], "--config", config)

    assert shown.code == 0, shown
    lines = shown.out.splitlines()
    assert lines[0] == f"document     {answer['id']}"
    for recipient in answer["recipients"]:
        [line] = [ln for ln in lines if recipient["delivery_id"] in ln]
        assert line.split()[:3] == [recipient["organ_id"], "mailbox", "delivered"]
    trail = lines[lines.index("trail") + 1 :]
    kinds = [line.split()[1] for line in trail]
    assert kinds[0] == "received"
    assert kinds.count("delivered") == 2


async def test_send_exits_1_with_the_problem_when_refused_or_unreachable(
    start_gateway: StartGateway, tmp_path: Path, lgsp: Lgsp, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = await start_gateway()
    config = str(gw.setup.config_path)
    package = _unsigned(tmp_path, [COMMUNE, UNKNOWN], "unknown-recipient.edxml")

    refused = await lgsp_process(
        "send", str(package), "--config", config, "--as", DEPARTMENT, "--json"
    )

    assert refused.code == 1, refused
    [line] = refused.err.splitlines()
    assert line.startswith(f"lgsp: acl.recipients_refused: refused recipients: {UNKNOWN}")
    problem = json.loads(refused.out)
    assert (problem["status"], problem["code"]) == (422, "acl.recipients_refused")
    assert [r["organ_id"] for r in problem["recipients"]] == [UNKNOWN]

    # in-process from here: the gateway's own log lines share this stdout, but no request
    # reaches it any more
    monkeypatch.setenv("LGSP_HTTP__PORT", str(free_port()))  # where nobody listens
    down = await lgsp("send", str(package), "--config", config, "--as", DEPARTMENT)
    assert down.code == 1, down
    assert down.err.startswith("lgsp: unavailable.gateway: cannot reach the gateway")


async def test_config_check_on_a_demo(
    tmp_path: Path, store_url: str, lgsp: Lgsp, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = init_demo(
        tmp_path / "demo",
        port=free_port(),
        store_url=store_url,
        broker_url="amqp://guest:guest@127.0.0.1:5672/lgsp-demo",
    )
    config = str(setup.config_path)

    checked = await lgsp("config", "check", "--config", config)

    assert checked.code == 0, checked
    assert checked.out.startswith(f"OK: {setup.config_path} is valid (7 participants, ")
    assert f"http.port = {setup.port}" in checked.out.splitlines()
    masked = json.loads((await lgsp("config", "check", "--config", config, "--json")).out)
    assert masked["broker"]["url"] == "amqp://guest:***@127.0.0.1:5672/lgsp-demo"
    assert masked["admin"]["api_token_hashes"] == ["***"]

    monkeypatch.setenv("LGSP_BROKER__PREFETCH", "0")
    broken = await lgsp("config", "check", "--config", config)
    assert broken.code == 2
    assert "broker.prefetch" in broken.err
