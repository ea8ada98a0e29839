"""structlog lines: request and delivery ids on every line, never a secret or package content."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import signal
from typing import Any

import aiohttp
import pytest
import structlog
from process_kit import NewProcess, RunningGateway, post_document
from service.service_kit import (
    DEPARTMENT,
    DISTRICT,
    PushReceiver,
    StartGateway,
    free_port,
    new_document,
    states,
)
from structlog.testing import capture_logs

from gateway.demo import pki
from gateway.edxml.xml_codec import serialize_package
from gateway.signatures.xmldsig import sign_xml

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


def _json_lines(stderr: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert lines, "no log lines"
    for line in lines:
        assert {"event", "level", "timestamp"} <= line.keys(), line
    return lines


async def test_a_real_run_logs_json_lines_with_ids_and_no_secret(
    lgsp_run: RunningGateway, lgsp_processes: NewProcess, push_receiver: PushReceiver
) -> None:
    """``lgsp run --role gateway`` and ``--role worker`` as processes, as in production."""
    push_receiver.script = [503]
    gateway, demo = lgsp_run, lgsp_run.setup
    worker = lgsp_processes(demo, "worker")
    metrics_port = free_port()
    env = {"LGSP_LOG__JSON": "true"}
    ident = pki.load_identity(demo.pki_dir, DEPARTMENT)
    signed = sign_xml(
        serialize_package(new_document(DEPARTMENT, [DISTRICT])), ident.key, ident.chain
    )
    api_key = demo.api_keys[DEPARTMENT]
    base = gateway.base_url
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {api_key}"}) as http:
        await asyncio.gather(
            gateway.start(http, "gateway", env),
            worker.start(http, "worker", {**env, "LGSP_METRICS__PORT": str(metrics_port)}),
        )
        answer = await post_document(http, base, signed, {"Content-Type": "application/xml"})
        assert not isinstance(answer, str), answer
        assert answer[0] == 202, answer
        document = answer[1]
        for _ in range(300):  # a deadline, not a timing assertion
            async with http.get(f"{base}/api/v1/documents/{document['id']}") as r:
                if states(await r.json())[DISTRICT] == "delivered":
                    break
            await asyncio.sleep(0.1)
        async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as r:
            worker_metrics = await r.text()
    gateway_code, worker_code = await asyncio.gather(
        gateway.stop(signal.SIGTERM), worker.stop(signal.SIGTERM)
    )

    gateway_err = gateway.output.read_text()
    worker_err = worker.output.read_text()
    assert (gateway_code, worker_code) == (0, 0), gateway_err[-2000:] + worker_err[-2000:]
    assert 'lgsp_deliveries_total{adapter="push",outcome="delivered"} 1.0' in worker_metrics
    at_gateway, at_worker = _json_lines(gateway_err), _json_lines(worker_err)
    [post] = [e for e in at_gateway if e["event"] == "request" and e["method"] == "POST"]
    assert (post["status"], post["document"]) == (202, document["id"])
    assert all("request_id" in e for e in at_gateway if e["event"].startswith("request"))
    delivery_id = document["recipients"][0]["delivery_id"]
    delivery_lines = [e for e in at_worker if "delivery_id" in e]
    assert {"delivery_retry", "delivered"} <= {e["event"] for e in delivery_lines}
    for entry in delivery_lines:
        assert (entry["delivery_id"], entry["document"]) == (delivery_id, document["id"]), entry
    assert_no_secret(gateway_err + worker_err, [api_key, demo.admin_token, *package_pieces(signed)])
