"""CLI polish: every option has help, refusals are one line (whole with --json), ``run --port``,
and the error-code table of the integration guides is the one the code has."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from service_sites import BrokerSite

from gateway.cli import build_parser, main
from gateway.cli.errors_commands import error_codes, markdown_table
from gateway.demo.setup import init_demo

LGSP = Path(sys.executable).with_name("lgsp")
ROOT = Path(__file__).resolve().parents[2]
TABLE_BEGIN, TABLE_END = "<!-- error-codes:begin -->", "<!-- error-codes:end -->"


Parsers = list[tuple[str, argparse.ArgumentParser]]


def _parsers(parser: argparse.ArgumentParser, name: str) -> Parsers:
    found = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                found += _parsers(sub, f"{name} {sub_name}")
    return found


def test_every_option_and_argument_has_help() -> None:
    missing = []
    parsers = _parsers(build_parser(), "lgsp")
    for name, parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            if not action.help:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []
    assert len(parsers) > 20


def test_a_refusal_is_one_line_and_json_gives_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.edxml"
    bad.write_text("<!DOCTYPE x [<!ENTITY a 'b'>]><x/>", encoding="utf-8")
    assert main(["pki", "init", str(tmp_path / "pki")]) == 0
    capsys.readouterr()

    assert main(["verify", str(bad), "--pki", str(tmp_path / "pki")]) == 1
    plain = capsys.readouterr()
    assert plain.out == ""
    [line] = plain.err.splitlines()
    assert line.startswith("lgsp: edxml.dtd_forbidden: ")

    assert main(["verify", str(bad), "--pki", str(tmp_path / "pki"), "--json"]) == 1
    whole = capsys.readouterr()
    problem = json.loads(whole.out)
    assert (problem["code"], problem["status"]) == ("edxml.dtd_forbidden", 400)
    assert problem["type"] == "urn:lgsp:error:edxml.dtd_forbidden"
    assert whole.err.splitlines() == [line]


def test_send_without_a_destination_or_key_says_what_to_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = tmp_path / "p.edxml"
    package.write_bytes(b"<x/>")

    assert main(["send", str(package)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lgsp: config.bad_argument: say where to send: --url")

    os.environ.pop("LGSP_API_KEY", None)
    assert main(["send", str(package), "--url", "http://127.0.0.1:1"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "--api-key" in line

    assert main(["send", str(package), "--url", "ftp://x", "--api-key", "k"]) == 2
    assert "is not an http:// or https:// URL" in capsys.readouterr().err


def test_run_listens_on_the_host_and_port_given(tmp_path: Path, test_broker: BrokerSite) -> None:
    setup = init_demo(
        tmp_path / "site",
        broker_url=test_broker.url,  # its port: 8080
        prefix=test_broker.new_prefix("run"),
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LGSP_")}
    proc = subprocess.Popen(
        [
            str(LGSP),
            "run",
            "--config",
            str(setup.config_path),
            "--role",
            "gateway",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        for _ in range(300):
            try:
                with urllib.request.urlopen(url, timeout=1) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
        else:
            pytest.fail("the gateway did not listen on --port")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)  # also closes the pipe
    assert proc.returncode == 0, err


@pytest.mark.parametrize("doc", ["docs/integration.md", "docs/vi/integration.md"])
def test_the_error_code_tables_are_generated_from_the_code(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    table = text.split(TABLE_BEGIN)[1].split(TABLE_END)[0].strip()
    assert table == markdown_table(error_codes()), (
        f"{doc} is out of date: paste `lgsp errors --markdown` between its error-codes markers"
    )


def test_error_codes_come_with_their_http_status() -> None:
    codes = {e.code: e for e in error_codes()}
    assert codes["routing.no_adapter"].http_status == 422
    assert codes["conflict.duplicate_document"].http_status == 409
    assert codes["auth.invalid_api_key"].http_status == 401
    assert codes["unavailable.store"].retryable
    assert not any(code.startswith("config.") for code in codes)
