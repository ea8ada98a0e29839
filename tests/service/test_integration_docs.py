"""The integration guide's examples (curl, Python, ``lgsp verify-push``) run against a running
gateway and a real push, exactly as printed in ``docs/integration.md`` (and its Vietnamese twin)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from machine import require
from service_kit import (
    COMMUNE,
    DEPARTMENT,
    DISTRICT,
    Gateway,
    PushReceiver,
    StartGateway,
    new_document,
)

from gateway.cli.push_commands import load_trusted, verify_push
from gateway.core.errors import SignatureError

SQLITE = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)

ROOT = Path(__file__).resolve().parents[2]
GUIDES = (ROOT / "docs" / "integration.md", ROOT / "docs" / "vi" / "integration.md")
LGSP = Path(sys.executable).with_name("lgsp")


def examples(path: Path) -> dict[str, str]:
    """``<!-- example: NAME -->`` followed by a fenced block: NAME -> the block's code."""
    text = path.read_text(encoding="utf-8")
    found = re.findall(r"<!-- example: ([\w-]+) -->\n```\w*\n(.*?)```", text, flags=re.S)
    return dict(found)


EXAMPLES = examples(GUIDES[0])


def python_example(*names: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "example"}
    for name in names:
        exec(compile(EXAMPLES[name], f"docs/integration.md:{name}", "exec"), namespace)
    return namespace


def shell(name: str, **env: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash
    return subprocess.run(
        [bash, "-euo", "pipefail", "-c", EXAMPLES[name]],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_both_guides_carry_the_same_examples() -> None:
    assert set(EXAMPLES) == {
        "submit-curl",
        "submit-python",
        "verify-push-python",
        "receive-push-python",
        "mailbox-curl",
        "mailbox-python",
    }
    assert examples(GUIDES[1]) == EXAMPLES


def _json_values(text: str) -> list[Any]:
    """The JSON values printed one after the other (curl adds no newline)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while at < len(text.rstrip()):
        value, at = decoder.raw_decode(text, at)
        values.append(value)
        while at < len(text) and text[at].isspace():
            at += 1
    return values


def _delivered(view: dict[str, Any]) -> bool:
    return all(r["state"] == "delivered" for r in view["recipients"])


@SQLITE
async def test_curl_examples_submit_fetch_and_acknowledge(
    start_gateway: StartGateway, tmp_path: Path
) -> None:
    require([] if shutil.which("curl") else ["curl"], "running the documented curl examples")
    gw = await start_gateway()
    signed = gw.sign(new_document(DEPARTMENT, [COMMUNE]), DEPARTMENT)
    (tmp_path / "signed.edxml").write_bytes(signed)

    sent = await asyncio.to_thread(
        shell,
        "submit-curl",
        GATEWAY=gw.base_url,
        API_KEY=gw.setup.api_keys[DEPARTMENT],
        FILE=str(tmp_path / "signed.edxml"),
    )

    assert sent.returncode == 0, sent.stderr
    answer = json.loads(sent.stdout)
    assert answer["recipients"][0]["organ_id"] == COMMUNE
    await gw.wait_for(answer["id"], DEPARTMENT, _delivered)
    _, inbox = await gw.get("/api/v1/inbox", COMMUNE)
    [item] = inbox["items"]

    pulled = await asyncio.to_thread(
        shell,
        "mailbox-curl",
        GATEWAY=gw.base_url,
        API_KEY=gw.setup.api_keys[COMMUNE],
        ITEM=item["id"],
        OUT=str(tmp_path / "received.edxml"),
    )

    assert pulled.returncode == 0, pulled.stderr
    listed, acked = _json_values(pulled.stdout)  # the list's and the ack's answers
    assert [i["id"] for i in listed["items"]] == [item["id"]]
    assert acked["id"] == item["id"]
    assert (tmp_path / "received.edxml").read_bytes() == signed
    _, inbox = await gw.get("/api/v1/inbox", COMMUNE)
    assert inbox["items"] == []


@SQLITE
async def test_python_examples_submit_refuse_follow_and_poll(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    code = python_example("submit-python", "mailbox-python")
    document = new_document(DEPARTMENT, [COMMUNE], number="15")
    key = gw.setup.api_keys[DEPARTMENT]

    signed = gw.sign(document, DEPARTMENT)
    answer = await asyncio.to_thread(code["submit"], gw.base_url, key, signed)
    assert answer["duplicate"] is False
    changed = replace(document, header=replace(document.header, subject="V/v khác"))
    with pytest.raises(code["Refused"]) as refused:
        await asyncio.to_thread(code["submit"], gw.base_url, key, gw.sign(changed, DEPARTMENT))
    assert refused.value.problem["code"] == "conflict.duplicate_document"
    assert refused.value.problem["document_id"] == document.document_id
    await gw.wait_for(answer["id"], DEPARTMENT, _delivered)
    state = await asyncio.to_thread(code["document_state"], gw.base_url, key, answer["id"])
    assert state["recipients"][0]["state"] == "delivered"

    taken: list[tuple[dict[str, Any], bytes]] = []
    commune_key = gw.setup.api_keys[COMMUNE]
    count = await asyncio.to_thread(
        code["poll_mailbox"],
        gw.base_url,
        commune_key,
        lambda item, package: taken.append((item, package)),
    )
    assert count == 1
    assert taken[0][0]["document_id"] == document.document_id
    assert taken[0][1] == signed  # the bytes the sender signed
    again = await asyncio.to_thread(code["poll_mailbox"], gw.base_url, commune_key, None)
    assert again == 0  # acknowledged: not listed again


async def _a_real_push(gw: Gateway, receiver: PushReceiver) -> tuple[dict[str, str], bytes]:
    status, answer = await gw.submit(
        gw.sign(new_document(DEPARTMENT, [DISTRICT]), DEPARTMENT), DEPARTMENT
    )
    assert status == 202, answer
    await gw.wait_for(answer["id"], DEPARTMENT, _delivered)
    headers, body = receiver.received[0]
    return dict(headers), body


def _none_token(token: str) -> str:
    header = json.loads(base64.urlsafe_b64decode(token.split(".", maxsplit=1)[0] + "=="))
    header["alg"] = "none"
    forged = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return f"{forged}.."


@SQLITE
async def test_the_documented_push_verifier_on_a_real_push(
    start_gateway: StartGateway, push_receiver: PushReceiver, tmp_path: Path
) -> None:
    gw = await start_gateway(push={DISTRICT: push_receiver.url})
    headers, body = await _a_real_push(gw, push_receiver)
    trusted = (gw.setup.pki_dir / "gateway" / "cert.pem").read_bytes()
    code = python_example("verify-push-python", "receive-push-python")

    protected = code["verify_lgsp_push"](headers, body, trusted)
    assert protected["lgsp-delivery-id"] == headers["X-LGSP-Delivery-Id"]
    for bad_body, bad_headers, pem in (
        (body + b" ", headers, trusted),  # changed on the way
        (body, {**headers, "X-LGSP-Delivery-Id": "other"}, trusted),
        (body, {**headers, "X-LGSP-Signature": _none_token(headers["X-LGSP-Signature"])}, trusted),
        (body, headers, (gw.setup.pki_dir / "participants" / DISTRICT / "cert.pem").read_bytes()),
        # ^ another certificate than the gateway's
    ):
        with pytest.raises(Exception):  # noqa: B017, PT011 (ValueError or joserfc's errors)
            code["verify_lgsp_push"](bad_headers, bad_body, pem)

    stored: dict[str, bytes] = {}

    def handle(h: dict[str, str], b: bytes) -> int:
        result: int = code["handle_push"](h, b, trusted, stored.__setitem__, stored.__contains__)
        return result

    assert handle(headers, body) == 200
    assert handle(headers, body) == 200  # a retry of the same delivery: stored once
    assert list(stored.values()) == [body]
    assert handle(headers, body + b"x") == 401


@SQLITE
async def test_lgsp_verify_push_on_a_real_push(
    start_gateway: StartGateway, push_receiver: PushReceiver, tmp_path: Path
) -> None:
    gw = await start_gateway(push={DISTRICT: push_receiver.url})
    headers, body = await _a_real_push(gw, push_receiver)
    cert = gw.setup.pki_dir / "gateway" / "cert.pem"
    (tmp_path / "headers.txt").write_text(
        "POST /inbox HTTP/1.1\n" + "".join(f"{k}: {v}\n" for k, v in headers.items()),
        encoding="utf-8",
    )
    (tmp_path / "body.bin").write_bytes(body)
    (tmp_path / "changed.bin").write_bytes(body.replace(b"</", b" </", 1))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(LGSP), "verify-push", "--trust", str(cert), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    ok = await asyncio.to_thread(
        run, "--headers", str(tmp_path / "headers.txt"), "--body", str(tmp_path / "body.bin")
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK: signed by CN=")
    assert headers["X-LGSP-Delivery-Id"] in ok.stdout

    changed = await asyncio.to_thread(
        run, "--headers", str(tmp_path / "headers.txt"), "--body", str(tmp_path / "changed.bin")
    )
    assert changed.returncode == 1
    assert changed.stderr.startswith("lgsp: jws.invalid: ")

    none = await asyncio.to_thread(
        run,
        "--signature",
        _none_token(headers["X-LGSP-Signature"]),
        "--delivery-id",
        headers["X-LGSP-Delivery-Id"],
        "--body",
        str(tmp_path / "body.bin"),
        "--json",
    )
    assert none.returncode == 1
    assert json.loads(none.stdout)["code"] == "jws.algorithm_refused"

    # the library function: pinned to the certificates given, fresh only
    trusted = load_trusted([cert])
    assert verify_push(headers, body, trusted).delivery_id == headers["X-LGSP-Delivery-Id"]
    other = tmp_path / "other.pem"
    other.write_bytes((gw.setup.pki_dir / "participants" / DISTRICT / "cert.pem").read_bytes())
    with pytest.raises(SignatureError) as unknown:
        verify_push(headers, body, load_trusted([other]))
    assert unknown.value.code == "jws.unknown_key"
    with pytest.raises(SignatureError) as stale:
        verify_push(headers, body, trusted, now=9e9)
    assert stale.value.code == "jws.stale"
