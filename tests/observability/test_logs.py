"""structlog lines: request and delivery ids on every line, never a secret or package content."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from service.service_kit import (
    DEPARTMENT,
    DISTRICT,
    PushReceiver,
    StartGateway,
    delete_topology,
    free_port,
    new_document,
    states,
)
from service_sites import BrokerSite
from structlog.testing import capture_logs

from gateway.core.directory import Delivery, load_directory, write_directory
from gateway.core.methods import DeliveryMethod
from gateway.core.settings import load_settings
from gateway.demo import pki
from gateway.demo.setup import DemoSetup, init_demo
from gateway.edxml.xml_codec import serialize_package
from gateway.signatures.xmldsig import sign_xml

LGSP = Path(sys.executable).with_name("lgsp")
SUBJECT = "thử nghiệm liên thông văn bản"  # new_document's subject


def package_pieces(signed: bytes) -> list[str]:
    """Content of the package that no log line may carry: attachment, signature, subject."""
    text = signed.decode()
    attachment = re.search(r"ContentTransferEncoded[^>]*>([^<]+)<", text)
    signature = re.search(r"SignatureValue[^>]*>\s*([^<\s]+)", text)
    assert attachment is not None
    assert signature is not None
    return [attachment.group(1)[:40], signature.group(1)[:40], SUBJECT]


def assert_no_secret(text: str, secrets_: list[str]) -> None:
    for secret in secrets_:
        assert secret not in text, f"{secret[:12]}… reached the logs"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_every_line_of_a_request_or_delivery_carries_its_ids(
    start_gateway: StartGateway, push_receiver: PushReceiver
) -> None:
    gw = await start_gateway(push={DISTRICT: push_receiver.url})
    push_receiver.script = [503]  # one retry, so the delivery logs a failed attempt too
    signed = gw.sign(new_document(DEPARTMENT, [DISTRICT]), DEPARTMENT)
    wrong_key = f"wrong-{secrets.token_urlsafe(24)}"

    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as entries:
        status, answer = await gw.submit(signed, DEPARTMENT)
        assert status == 202, answer
        await gw.wait_for(answer["id"], DEPARTMENT, lambda v: states(v)[DISTRICT] == "delivered")
        async with gw.session.post(
            f"{gw.base_url}/api/v1/documents",
            data=signed,
            headers={"Authorization": f"Bearer {wrong_key}", "Content-Type": "application/xml"},
        ) as r:
            assert r.status == 401

    orphans = [e for e in entries if "request_id" not in e and "delivery_id" not in e]
    assert orphans == []
    [post] = [
        e
        for e in entries
        if e["event"] == "request" and e["method"] == "POST" and e["status"] == 202
    ]
    assert post["document"] == answer["id"]
    [recorded] = [e for e in entries if e["event"] == "document_recorded"]
    assert (recorded["request_id"], recorded["document"]) == (post["request_id"], answer["id"])
    [refused] = [e for e in entries if e["event"] == "request_refused"]
    assert refused["code"] == "auth.invalid_api_key"
    assert "document" not in refused
    delivery_id = answer["recipients"][0]["delivery_id"]
    delivery_lines = [e for e in entries if "delivery_id" in e]
    assert {e["event"] for e in delivery_lines} >= {"delivery_retry", "delivered"}
    for entry in delivery_lines:
        assert (entry["delivery_id"], entry["document"]) == (delivery_id, answer["id"]), entry
    assert_no_secret(
        repr(entries), [gw.setup.api_keys[DEPARTMENT], wrong_key, *package_pieces(signed)]
    )


# --- a real run: `lgsp run` processes writing JSON lines to stderr ------------------------------


async def _wait_until_up(session: aiohttp.ClientSession, url: str) -> None:
    for _ in range(300):  # a deadline, not a timing assertion
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered 200")


async def _lgsp_run(
    setup: DemoSetup, role: str, env: Mapping[str, str]
) -> asyncio.subprocess.Process:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LGSP_")}
    return await asyncio.create_subprocess_exec(
        str(LGSP),
        "run",
        "--config",
        str(setup.config_path),
        "--role",
        role,
        env={**clean, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _stop(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.fixture
async def demo(
    tmp_path: Path, test_broker: BrokerSite, push_receiver: PushReceiver
) -> AsyncIterator[DemoSetup]:
    """A demo whose district is a push recipient; its broker topology deleted afterwards."""
    setup = init_demo(
        tmp_path / "demo",
        port=free_port(),
        broker_url=test_broker.url,
        prefix=test_broker.new_prefix("o"),
    )
    directory = load_directory(setup.directory_path)  # seeds the empty store at start
    district = directory.get(DISTRICT)
    assert district is not None
    pushed = replace(district, delivery=Delivery(DeliveryMethod.PUSH, push_receiver.url))
    write_directory(setup.directory_path, directory.with_participant(pushed))
    yield setup
    await delete_topology(load_settings(setup.config_path))


def _json_lines(stderr: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert lines, "no log lines"
    for line in lines:
        assert {"event", "level", "timestamp"} <= line.keys(), line
    return lines


async def test_a_real_run_logs_json_lines_with_ids_and_no_secret(
    demo: DemoSetup, push_receiver: PushReceiver
) -> None:
    """``lgsp run --role gateway`` and ``--role worker`` as processes, as in production."""
    push_receiver.script = [503]
    metrics_port = free_port()
    env = {"LGSP_LOG__JSON": "true", "LGSP_BROKER__RETRY_DELAYS_S": "0.2,0.4"}
    gateway = await _lgsp_run(demo, "gateway", env)
    worker = await _lgsp_run(demo, "worker", {**env, "LGSP_METRICS__PORT": str(metrics_port)})
    ident = pki.load_identity(demo.pki_dir, DEPARTMENT)
    signed = sign_xml(
        serialize_package(new_document(DEPARTMENT, [DISTRICT])), ident.key, ident.chain
    )
    api_key = demo.api_keys[DEPARTMENT]
    base = f"http://127.0.0.1:{demo.port}"
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {api_key}"}) as http:
            await _wait_until_up(http, f"{base}/readyz")
            await _wait_until_up(http, f"http://127.0.0.1:{metrics_port}/metrics")
            async with http.post(
                f"{base}/api/v1/documents", data=signed, headers={"Content-Type": "application/xml"}
            ) as r:
                assert r.status == 202, await r.text()
                answer = await r.json()
            for _ in range(300):  # a deadline, not a timing assertion
                async with http.get(f"{base}/api/v1/documents/{answer['id']}") as r:
                    if states(await r.json())[DISTRICT] == "delivered":
                        break
                await asyncio.sleep(0.1)
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as r:
                worker_metrics = await r.text()
    finally:
        (gateway_code, gateway_err), (worker_code, worker_err) = await asyncio.gather(
            _stop(gateway), _stop(worker)
        )

    assert (gateway_code, worker_code) == (0, 0), gateway_err[-2000:] + worker_err[-2000:]
    assert 'lgsp_deliveries_total{adapter="push",outcome="delivered"} 1.0' in worker_metrics
    at_gateway, at_worker = _json_lines(gateway_err), _json_lines(worker_err)
    [post] = [e for e in at_gateway if e["event"] == "request" and e["method"] == "POST"]
    assert (post["status"], post["document"]) == (202, answer["id"])
    assert all("request_id" in e for e in at_gateway if e["event"].startswith("request"))
    delivery_id = answer["recipients"][0]["delivery_id"]
    delivery_lines = [e for e in at_worker if "delivery_id" in e]
    assert {"delivery_retry", "delivered"} <= {e["event"] for e in delivery_lines}
    for entry in delivery_lines:
        assert (entry["delivery_id"], entry["document"]) == (delivery_id, answer["id"]), entry
    assert_no_secret(gateway_err + worker_err, [api_key, demo.admin_token, *package_pieces(signed)])
