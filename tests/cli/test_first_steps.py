"""The demo's first steps as a new user meets them: one block of absolute commands that work from
any directory, a new DocumentId each time, a demo that cleans up after itself."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import aio_pika
import pytest
from service_sites import BrokerSite

from gateway.broker.messages import METHODS
from gateway.broker.topology import Topology
from gateway.cli import main
from gateway.core.settings import load_settings
from gateway.demo.layout import GENERATED
from gateway.demo.setup import init_demo
from gateway.edxml.xml_codec import parse_package

LGSP = Path(sys.executable).with_name("lgsp")


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LGSP_")}
    return subprocess.run(
        [str(LGSP), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_new_document_gets_a_new_document_id_each_time(tmp_path: Path) -> None:
    ids = []
    for name in ("a.edxml", "b.edxml"):
        made = run(
            tmp_path, "new-document", "--from", "000.00.04.H56", "--to", "000.00.15.H56", "-o", name
        )
        assert made.returncode == 0, made.stderr
        document_id = parse_package((tmp_path / name).read_bytes()).document_id
        assert document_id is not None
        assert f"DocumentId {document_id}" in made.stdout
        ids.append(document_id)
    assert ids[0] != ids[1]

    fixed = run(
        tmp_path,
        "new-document",
        "--from",
        "000.00.04.H56",
        "--to",
        "000.00.15.H56",
        "--number",
        "7",
        "-o",
        "c.edxml",
    )
    assert fixed.returncode == 0, fixed.stderr
    assert ",7/UBND-VP" in (parse_package((tmp_path / "c.edxml").read_bytes()).document_id or "")


def test_demo_init_prints_one_block_of_absolute_commands_that_work_elsewhere(
    tmp_path: Path,
) -> None:
    (tmp_path / "work").mkdir()
    init = run(tmp_path / "work", "demo", "init", "mydemo", "--port", "18999")
    assert init.returncode == 0, init.stderr
    site = tmp_path / "work" / "mydemo"
    out = init.stdout
    assert out.count("Next steps") == 1
    assert "next steps" not in out  # no second, contradictory block
    creds = json.loads((site / "credentials.json").read_text(encoding="utf-8"))
    assert "http://127.0.0.1:18999/admin/" in out
    for name, entry in creds["_console"].items():
        assert f"log in as {name} / {entry['password']}  ({entry['role']})" in out
    commands = [
        line.strip()
        for line in out.splitlines()
        if re.match(r"\s+\S*lgsp (new-document|send|log|run|sim) ", line)
    ]
    assert commands, out
    for command in commands:  # every path in them is absolute
        for word in shlex.split(command.rstrip(" &")):
            assert not word.startswith(("mydemo", "./", "demo/")), command
            if "/" in word:
                assert word.startswith("/"), command

    # the printed new-document command, run from another directory
    [build] = [c for c in commands if " new-document " in c]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    built = subprocess.run(
        [str(LGSP), *shlex.split(build)[1:]],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    assert (site / "first.edxml").is_file()

    info = run(elsewhere, "demo", "info", str(site), "--started")
    assert info.returncode == 0, info.stderr
    assert info.stdout.count("Next steps") == 1
    assert "is starting on http://127.0.0.1:18999 with the national platform simulator" in (
        info.stdout
    )
    assert " run --config" not in info.stdout


def test_demo_without_national_says_documents_to_it_are_refused(tmp_path: Path) -> None:
    init = run(tmp_path, "demo", "init", "site", "--no-national")
    assert init.returncode == 0, init.stderr
    assert "national      disabled" in init.stdout
    assert "refused here, national delivery is disabled" in init.stdout
    assert not load_settings(tmp_path / "site" / "gateway.toml", env={}).national.enabled
    assert not (tmp_path / "site" / "national-sim.toml").exists()


def test_national_secrets_are_private_and_the_simulator_knows_the_gateway(tmp_path: Path) -> None:
    setup = init_demo(tmp_path / "site", national_port=18123)
    settings = load_settings(setup.config_path, env={})
    assert settings.national.secret_file == setup.dir / "national.secret"
    secret = (setup.dir / "national.secret").read_text(encoding="utf-8").strip()
    sim = (setup.dir / "national-sim.toml").read_text(encoding="utf-8")
    assert secret in sim
    assert f'system_id = "{settings.national.system_id}"' in sim
    assert '"000.00.00.G22"' in sim
    for name in ("national.secret", "national-sim.toml"):
        assert stat.S_IMODE((setup.dir / name).stat().st_mode) == 0o600
    assert secret not in setup.config_path.read_text(encoding="utf-8")


async def _queues_exist(url: str, topology: Topology) -> list[bool]:
    connection = await aio_pika.connect(url)
    found = []
    async with connection:
        for name in topology.queue_names():
            channel = await connection.channel()
            try:
                await channel.declare_queue(name, passive=True)
                found.append(True)
            except aio_pika.exceptions.ChannelClosed:
                found.append(False)
    return found


async def test_demo_clean_removes_its_queues_and_generated_files(
    tmp_path: Path, test_broker: BrokerSite, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = init_demo(
        tmp_path / "site",
        broker_url=test_broker.url,
        national_port=18124,
        prefix=test_broker.new_prefix("clean"),
    )
    settings = load_settings(setup.config_path, env={})
    topology = Topology(settings.broker.prefix, METHODS, tuple(settings.broker.retry_delays_s))
    connection = await aio_pika.connect(test_broker.url)
    async with connection, connection.channel() as channel:
        await topology.declare(channel)
    assert all(await _queues_exist(test_broker.url, topology))
    (setup.dir / "first.edxml").write_text("<x/>", encoding="utf-8")
    (setup.dir / "notes.txt").write_text("mine", encoding="utf-8")  # not the demo's: kept

    code = await asyncio.to_thread(main, ["demo", "clean", str(setup.dir)])

    assert code == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert f"deleted the broker queues and exchange {settings.broker.prefix}.*" in out
    assert not any(await _queues_exist(test_broker.url, topology))
    assert sorted(p.name for p in setup.dir.iterdir()) == ["notes.txt"]
    assert set(GENERATED) >= {"gateway.toml", "pki", "var", "credentials.json"}

    (setup.dir / "notes.txt").unlink()
    again = init_demo(setup.dir, broker_url=test_broker.url, prefix=test_broker.new_prefix("c"))
    assert await asyncio.to_thread(main, ["demo", "clean", str(again.dir), "--keep-broker"]) == 0
    assert not again.dir.exists()  # left empty: removed too


def test_demo_clean_refuses_a_directory_it_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "gateway.toml").write_text("[http]\nport = 8080\n", encoding="utf-8")

    assert main(["demo", "clean", str(tmp_path)]) == 2

    err = capsys.readouterr().err
    assert err.startswith("lgsp: config.not_a_demo: ")
    assert (tmp_path / "gateway.toml").exists()
