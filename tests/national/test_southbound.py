"""A local system built on the national SDK drives the gateway through /XrdAdapter/adapter/.

The client is ``national_kit.JavaSdkClient``, which reproduces the vendor jar's wire behaviour
(written from the reference, not from gateway/national), against a whole demo gateway (HTTP +
workers, real broker, SQLite store). Access control and replays: ``test_southbound_access.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
from datetime import datetime, timedelta, timezone

import pytest
from national_kit import UTC_JVM, VN, SdkFactory, sdk_agencies, sdk_doc_id
from service.service_kit import (  # noqa: F401 (start_gateway is a fixture)
    StartGateway,
    new_document,
    start_gateway,
    status_for,
)
from southbound_kit import (
    ANSWER_KEYS,
    DEPARTMENT,
    DISTRICT,
    delivered_to,
    endpoint,
    only_item,
    post_raw,
    sdk_for,
    sqlite_only,
)

from gateway.cli import main
from gateway.core.settings import load_settings
from gateway.demo.layout import DemoSetup
from gateway.national.local_systems import load_local_systems


@sqlite_only
@pytest.mark.parametrize(
    ("zone", "age"),
    [
        (VN, timedelta(minutes=20)),  # a JVM in Vietnam time, an SDK object 20 minutes old
        (UTC_JVM, timedelta(hours=2)),  # a container's JVM (UTC: 7 h "behind"), object 2 h old
    ],
    ids=["vietnam-time", "utc-2h-old"],
)
async def test_the_vendor_jars_complete_cycle_works_unchanged(
    start_gateway: StartGateway,  # noqa: F811
    java_sdk: SdkFactory,
    zone: timezone,
    age: timedelta,
) -> None:
    gateway = await start_gateway()
    created_at = datetime.now(zone) - age  # one SDK object per system, kept for its whole life
    department = sdk_for(java_sdk, gateway, DEPARTMENT, zone=zone, created_at=created_at)
    district = sdk_for(java_sdk, gateway, DISTRICT, zone=zone, created_at=created_at)

    status, agencies = await department.get_agencies_list()
    assert (status, agencies["status"]) == (200, "OK")
    parents = sdk_agencies(agencies)  # the SDK reads the parent from "pid"
    assert parents[DISTRICT] == parents[DEPARTMENT] == "000.00.00.H56"
    assert {"pid", "pcode"} <= set(agencies["data"][0])

    document = new_document(DEPARTMENT, [DISTRICT])
    signed = gateway.sign(document, DEPARTMENT)
    status, sent = await department.send_edoc(
        signed, "cong-van.edxml", from_=DEPARTMENT, to=[DISTRICT]
    )
    assert (status, set(sent)) == (200, ANSWER_KEYS | {"DocId"}), sent
    assert (sent["status"], sent["ErrorCode"]) == ("OK", "0")
    assert department.bodies[-1] == signed + b"\r\n"  # the jar's body: the file, then CRLF
    wire = department.sent[-1]
    assert wire["Content-Type"] == "application/octet-stream"
    assert wire["User-Agent"] == "JAVASDKAgent/1.0.0 XRoad/VPCP"
    assert (
        wire["XroadVnpt-hash-header"]
        == hmac.new(
            department.secret.encode(),
            wire["XroadVnpt-sign-header"].encode(),
            hashlib.sha256,
        ).hexdigest()
    )
    # Same pipeline and delivery log as /api/v1: the DocId is the document's id there, and
    # the delivered bytes are the file's, without the CRLF.
    view = await gateway.wait_for(str(sdk_doc_id(sent)), DEPARTMENT, delivered_to(DISTRICT))
    assert view["caller"] == DEPARTMENT

    status, empty = await district.get_received_edoc_list("status")
    assert (status, empty["data"]) == (200, [])
    item = await only_item(district, "edoc")
    assert (item["from"], item["to"]) == (DEPARTMENT, DISTRICT)
    status, got = await district.get_edoc(item["docId"], "/opt/edoc/store=inbox")
    assert (status, set(got)) == (200, ANSWER_KEYS | {"data"})
    assert base64.b64decode(got["data"]) == signed
    status, acked = await district.update_status(item["docId"], "done")
    assert (status, set(acked), acked["status"]) == (200, ANSWER_KEYS, "OK"), acked
    last = district.sent[-1]  # docId and filePath from getEdoc are still in the map, and signed
    assert {"docId", "filePath", "docid", "status"} <= set(
        last["XroadVnpt-sign-header-key"].split(";")
    )
    assert "\\u003d" in last["XroadVnpt-sign-header"]  # Gson's escape of '=' in filePath
    status, listed = await district.get_received_edoc_list("edoc")  # stale docId: still a poll
    assert (status, listed["data"]) == (200, [])
    assert district.sent[-1]["XroadVnpt-hash-header"] == last["XroadVnpt-hash-header"]

    # The district answers with a status package (03) through the same SDK object.
    reply = gateway.sign(status_for(document, DISTRICT, "03"), DISTRICT)
    status, sent_status = await district.send_edoc(
        reply, "status.edxml", from_=DISTRICT, to=[DEPARTMENT], messagetype="status"
    )
    assert (status, sent_status["status"]) == (200, "OK"), sent_status
    await gateway.wait_for(sent_status["DocId"], DISTRICT, delivered_to(DEPARTMENT))
    status_item = await only_item(department, "status")
    status, fetched = await department.get_edoc(status_item["docId"], "/opt/edoc")
    assert base64.b64decode(fetched["data"]) == reply
    status, failed = await department.update_status(status_item["docId"], "fail")
    assert (status, failed["status"]) == (200, "OK")
    for sdk in (department, district):  # every call carried the object's first timestamp
        assert {h["XroadVnpt-timestamp"] for h in sdk.sent} == {sdk.header_map["timestamp"]}

    view = await gateway.wait_for(
        sent["DocId"], DEPARTMENT, lambda v: v["recipients"][0]["business_status"] == "03"
    )
    trail = view["recipients"][0]["trace"]
    assert ("inbox_acked", "acked") in {(e["kind"], e["outcome"]) for e in trail}
    _, status_view = await gateway.get(f"/api/v1/documents/{sent_status['DocId']}", DISTRICT)
    outcomes = {(e["kind"], e["outcome"]) for e in status_view["trace"]}
    assert ("inbox_acked", "failed") in outcomes


@sqlite_only
async def test_every_answer_has_the_fields_the_sdk_reads_and_bodies_are_the_file_exactly(
    start_gateway: StartGateway,  # noqa: F811
    java_sdk: SdkFactory,
) -> None:
    gateway = await start_gateway()
    department = sdk_for(java_sdk, gateway, DEPARTMENT)
    signed = gateway.sign(new_document(DEPARTMENT, [DISTRICT]), DEPARTMENT)

    # A FAIL answer of sendEdoc carries DocId: the SDK's caller sees the error code.
    status, answer = await department.send_edoc(
        signed.replace(b"UBND-VP", b"UBND-XX"), "sua.edxml", from_=DEPARTMENT, to=[DISTRICT]
    )
    assert (status, answer["status"], sdk_doc_id(answer)) == (422, "FAIL", "")
    assert answer["ErrorCode"].startswith("signature.")
    department.header_map["hash-file"] = "0" * 64  # the body is not the file the hash names
    status, answer = await post_raw(
        gateway, "sendEdoc", department._wire_headers(), body=signed + b"\r\n"
    )
    assert (status, answer["ErrorCode"], sdk_doc_id(answer)) == (400, "national.hash_mismatch", "")
    wrong = java_sdk(endpoint(gateway), DEPARTMENT, "not-the-secret")
    status, answer = await wrong.send_edoc(signed, "x.edxml", from_=DEPARTMENT, to=[DISTRICT])
    assert (status, answer["ErrorCode"], sdk_doc_id(answer)) == (401, "auth.bad_hmac", "")
    for call in (wrong.get_received_edoc_list("edoc"), wrong.get_agencies_list()):
        status, answer = await call
        assert (status, answer["status"], answer["data"]) == (401, "FAIL", [])
    status, answer = await department.get_edoc("no-such-item", "/tmp")
    assert (status, answer["ErrorCode"], answer["data"]) == (404, "national.no_such_doc", "")

    # The same kind of file three ways: the jar's CRLF body, the raw file, a multipart file_doc.
    files = set()
    for sdk, body_of in (
        (sdk_for(java_sdk, gateway, DEPARTMENT), lambda f: f + b"\r\n"),
        (sdk_for(java_sdk, gateway, DEPARTMENT), lambda f: f),
        (sdk_for(java_sdk, gateway, DEPARTMENT, multipart=True), None),
    ):
        file = gateway.sign(new_document(DEPARTMENT, [DISTRICT]), DEPARTMENT)
        if body_of is None:
            status, answer = await sdk.send_edoc(file, "vb.edxml", from_=DEPARTMENT, to=[DISTRICT])
        else:
            sdk.header_map.update(
                {
                    "Content-Type": "application/octet-stream",
                    "hash-file": hashlib.sha256(file).hexdigest(),
                }
            )
            status, answer = await post_raw(
                gateway, "sendEdoc", sdk._wire_headers(), body=body_of(file)
            )
        assert (status, answer["status"]) == (200, "OK"), answer
        await gateway.wait_for(answer["DocId"], DEPARTMENT, delivered_to(DISTRICT))
        files.add(file)
    district = sdk_for(java_sdk, gateway, DISTRICT)
    status, listed = await district.get_received_edoc_list("edoc")
    assert (status, len(listed["data"])) == (200, 3)
    delivered = set()
    for item in listed["data"]:
        status, got = await district.get_edoc(item["docId"], "/opt/edoc")
        delivered.add(base64.b64decode(got["data"]))
    assert delivered == files  # exactly the files' bytes, without the jar's CRLF


@sqlite_only
async def test_the_gateway_refuses_bad_credentials_stale_tampered_and_replayed_calls(
    start_gateway: StartGateway,  # noqa: F811
    java_sdk: SdkFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gateway = await start_gateway()
    check_demo_secrets(gateway.setup, capsys)
    systems = gateway.settings.southbound.systems_path
    assert systems is not None
    # The file is re-read on change: the district now allows only 60 s of timestamp age.
    text = systems.read_text(encoding="utf-8").replace(
        f'organ_id = "{DISTRICT}"\n', f'organ_id = "{DISTRICT}"\ntimestamp_window_s = 60\n'
    )
    systems.write_text(text, encoding="utf-8")
    two_minutes_ago = datetime.now(VN) - timedelta(minutes=2)

    wrong = java_sdk(endpoint(gateway), DEPARTMENT, "not-the-secret")
    stale = sdk_for(java_sdk, gateway, DISTRICT, created_at=two_minutes_ago)
    for client, code in ((wrong, "auth.bad_hmac"), (stale, "auth.stale_timestamp")):
        status, answer = await client.get_received_edoc_list("edoc")
        assert (status, answer["status"], answer["ErrorCode"]) == (401, "FAIL", code)
    ancient = sdk_for(
        java_sdk, gateway, DEPARTMENT, created_at=datetime.now(VN) - timedelta(days=40)
    )  # no window by default: any age, any zone
    assert (await ancient.get_received_edoc_list("edoc"))[0] == 200

    department = sdk_for(java_sdk, gateway, DEPARTMENT)
    await department.update_status("no-such-item", "done")
    replayed = department.sent[-1]
    status, answer = await post_raw(gateway, "updateStatus", replayed)
    assert (status, answer["ErrorCode"]) == (401, "auth.replayed")
    tampered = replayed.copy()
    tampered["XroadVnpt-docid"] = "another-item"
    status, answer = await post_raw(gateway, "updateStatus", tampered)
    assert (status, answer["ErrorCode"]) == (401, "auth.tampered")
    missing = replayed.copy()
    del missing["XroadVnpt-status"]
    status, answer = await post_raw(gateway, "updateStatus", missing)
    assert (status, answer["ErrorCode"]) == (401, "auth.tampered")


def check_demo_secrets(setup: DemoSetup, capsys: pytest.CaptureFixture[str]) -> None:
    """``lgsp demo init`` wrote the secrets file (0600) and credentials; config check loads the
    file without printing a secret, and names it when it is broken."""
    settings = load_settings(setup.config_path, env={})
    systems = settings.southbound.systems_path
    assert systems == setup.dir / "national-systems.toml"
    assert stat.S_IMODE(systems.stat().st_mode) == 0o600
    creds = json.loads(setup.credentials_path.read_text(encoding="utf-8"))
    local = load_local_systems(systems, settings.southbound.timestamp_window_s)
    assert set(local) == set(setup.national_secrets)
    assert DEPARTMENT in local
    for system_id, system in local.items():
        assert creds[system.organ_id]["system_id"] == system_id
        assert creds[system.organ_id]["secret"] == system.credentials.secret
        assert system.credentials.timestamp_window_s is None  # the default: any timestamp
    assert "000.00.00.G22" not in local  # the national platform is not a local system

    assert main(["config", "check", "--config", str(setup.config_path)]) == 0
    printed = capsys.readouterr().out
    assert "southbound.systems_path" in printed
    assert not any(secret in printed for secret in setup.national_secrets.values())
    intact = systems.read_text(encoding="utf-8")
    systems.write_text("[[system]]\nsystem_id = 1\n", encoding="utf-8")
    assert main(["config", "check", "--config", str(setup.config_path)]) == 2
    assert "southbound.systems_path" in capsys.readouterr().err
    systems.write_text(intact, encoding="utf-8")
