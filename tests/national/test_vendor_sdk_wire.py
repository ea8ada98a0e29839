"""The test client reproduces the vendor jar's wire form: checked on a capturing server, and its
Java-defined parts (HashMap order, SimpleDateFormat, Integer.toHexString) against a real JVM."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from machine import require
from national_kit import (
    UTC_JVM,
    VN,
    JavaSdkClient,
    java_hashmap_order,
    java_string_hash,
    java_unpadded_hex,
)
from service.service_kit import local_site

# What the jar does with its header map, in Java, for the parts Java itself defines.
JAVA_PROBE = """
import java.nio.file.*; import java.security.*; import java.text.*; import java.util.*;
public class Probe {
  public static void main(String[] a) throws Exception {
    TimeZone.setDefault(TimeZone.getTimeZone(a[0]));
    System.out.println(new SimpleDateFormat("ddMMyyyy'T'HHmmss+SSSS")
        .format(new Date(Long.parseLong(a[1]))));
    byte[] d = MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(Paths.get(a[2])));
    StringBuilder hex = new StringBuilder();
    for (byte b : d) hex.append(Integer.toHexString(b & 0xFF));
    System.out.println(hex);
    HashMap<String, String> map = new HashMap<>();
    for (int i = 3; i < a.length; i++) map.put(a[i], "v");
    System.out.println(String.join(";", map.keySet()));
  }
}
"""


@pytest.fixture
async def capture() -> AsyncIterator[tuple[str, list[web.Request], list[bytes]]]:
    """A server that records each request (headers as sent, body) and answers OK."""
    requests: list[web.Request] = []
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        requests.append(request)
        bodies.append(await request.read())
        return web.json_response(
            {"status": "OK", "ErrorCode": "0", "ErrorDesc": "", "DocId": "d1", "data": []}
        )

    app = web.Application()
    app.router.add_post("/XrdAdapter/adapter/{op}", handle)
    async with local_site(app) as base_url:
        yield f"{base_url}/XrdAdapter/adapter", requests, bodies


def file_with_a_short_byte() -> bytes:
    """A file whose SHA-256 has a byte below 0x10 (so the unpadded hex is shorter)."""
    n = 0
    while min(hashlib.sha256(data := f"<edXML n='{n}'/>".encode()).digest()) >= 0x10:
        n += 1
    return data


async def test_the_client_sends_what_the_jar_sends(
    capture: tuple[str, list[web.Request], list[bytes]],
) -> None:
    endpoint, requests, bodies = capture
    created = datetime(2024, 3, 5, 1, 2, 3, 45_000, tzinfo=UTC_JVM)
    file = file_with_a_short_byte()
    async with aiohttp.ClientSession() as session:
        sdk = JavaSdkClient(session, endpoint, "sys-1", "secret", created_at=created, zone=UTC_JVM)
        await sdk.get_received_edoc_list("edoc")
        await sdk.get_edoc("D1", "/opt/edoc")
        await sdk.send_edoc(file, "vb.edxml", from_="000.00.04.H56", to=["000.00.15.H56"])
        await sdk.update_status("D1", "done")

    send = requests[2]
    assert bodies[2] == file + b"\r\n"
    assert send.headers["Content-Length"] == str(len(file) + 2)
    assert send.headers["Content-Type"] == "application/octet-stream"
    assert send.headers["XroadVnpt-Content-Type"] == "application/octet-stream"
    assert b"multipart" not in bodies[2]
    assert not send.content_type.startswith("multipart")
    assert send.headers["XroadVnpt-hash-file"] == java_unpadded_hex(file)
    assert len(java_unpadded_hex(file)) < 64
    assert send.headers["XroadVnpt-to"] == '["000.00.15.H56"]'
    # One timestamp, formatted once from the JVM's zone (UTC here), in every call.
    assert {r.headers["XroadVnpt-timestamp"] for r in requests} == {"05032024T010203+0045"}
    # Keys accumulate: the last call still carries getEdoc's docId and sendEdoc's hash-file.
    names = requests[3].headers["XroadVnpt-sign-header-key"].split(";")
    assert {"docId", "filePath", "hash-file", "to", "docid", "status"} <= set(names)
    assert requests[3].headers["XroadVnpt-Content-Type"] == "application/json"
    for request in requests:  # names in HashMap order, sign-header in the same order
        listed = request.headers["XroadVnpt-sign-header-key"].split(";")
        assert listed == java_hashmap_order(listed)
        assert list(json.loads(request.headers["XroadVnpt-sign-header"])) == [
            f"XroadVnpt-{name}" for name in listed
        ]
        assert request.headers["User-Agent"] == "JAVASDKAgent/1.0.0 XRoad/VPCP"
    vn = JavaSdkClient(session, endpoint, "sys-1", "s", created_at=created, zone=VN)
    assert vn.header_map["timestamp"] == "05032024T080203+0045"


def test_java_string_hash_is_javas() -> None:
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("polygenelubricants") == -(2**31)


def test_the_java_parts_agree_with_a_real_jvm(tmp_path: Path) -> None:
    require([] if shutil.which("java") else ["a JDK (java)"], "comparing with a real JVM")
    probe = tmp_path / "Probe.java"
    probe.write_text(JAVA_PROBE, encoding="utf-8")
    file = tmp_path / "vb.edxml"
    file.write_bytes(file_with_a_short_byte())
    keys = [
        "timestamp",
        "systemid",
        "Content-Type",
        "servicetype",
        "messagetype",
        "docId",
        "filePath",
        "from",
        "to",
        "hash-file",
        "docid",
        "status",
        "pageSize",
        "pageIndex",
    ]
    at = datetime(2024, 12, 31, 23, 59, 58, 7_000, tzinfo=UTC_JVM) + timedelta(hours=-8)
    for zone_id, zone in (("UTC", UTC_JVM), ("Asia/Ho_Chi_Minh", VN)):
        out = subprocess.run(
            ["java", str(probe), zone_id, str(int(at.timestamp() * 1000)), str(file), *keys],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.splitlines()
        sdk = JavaSdkClient(None, "", "s", "k", created_at=at, zone=zone)  # type: ignore[arg-type]
        assert out[0] == sdk.header_map["timestamp"], zone_id
        assert out[1] == java_unpadded_hex(file.read_bytes())
        assert out[2].split(";") == java_hashmap_order(keys)
