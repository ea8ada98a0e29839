"""National-protocol kit: a running simulator and a client that behaves like the Java SDK.

Test modules import names from here (``from national_kit import …``); ``conftest.py`` only
re-exports the fixtures (several ``conftest`` modules cannot be told apart by import).

``JavaSdkClient`` is written from the reference (§3.1a), independently of gateway/national, to
reproduce the vendor jar (SDKVXP 2.0.1) byte for byte: it keeps ONE header map per object (the
timestamp formatted once, at construction, from the JVM's time zone, then ageing; keys
accumulating across calls), iterates it in Java ``HashMap`` order, serialises the sign-header as
Gson does (HTML-safe escapes), sends ``Content-Type`` also under its own name, and uploads a file
as its raw bytes followed by CRLF (``application/octet-stream``, ``Content-Length`` = size + 2)
with the unpadded-hex ``hash-file`` of the file alone. ``sdk_doc_id`` and ``sdk_agencies`` read
answers as the SDK does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from adapters.national.protocol import SystemCredentials
from gateway.national.simulator import NationalSimulator, SimConfig, SimSystem

VN = timezone(timedelta(hours=7))  # a JVM in Vietnam time
UTC_JVM = UTC  # a JVM in a container's default zone
H56_SYSTEM, H41_SYSTEM = "lgsp-thanhhoa", "lgsp-nghean"


# --- the Java SDK, re-implemented from its observed behaviour ------------------------------------


def java_string_hash(text: str) -> int:
    """Java ``String.hashCode`` (UTF-16 code units), as a signed 32-bit int."""
    h = 0
    units = text.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i : i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def java_hashmap_order(keys: list[str]) -> list[str]:
    """Iteration order of a ``java.util.HashMap`` holding ``keys`` (inserted in this order)."""
    capacity = 16
    while len(keys) > capacity * 0.75:
        capacity *= 2

    def bucket(key: str) -> int:
        h = java_string_hash(key) & 0xFFFFFFFF
        return (h ^ (h >> 16)) & (capacity - 1)

    return sorted(keys, key=lambda k: (bucket(k), keys.index(k)))


def gson_compact(obj: dict[str, str]) -> str:
    """``new Gson().toJson(jsonObject)``: compact, non-ASCII kept, HTML characters escaped."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("=", "\\u003d"),
        ("'", "\\u0027"),
    ):
        text = text.replace(char, escape)
    return text


def java_unpadded_hex(data: bytes) -> str:
    """``Integer.toHexString(b & 0xFF)`` per byte of the SHA-256 (no zero padding)."""
    return "".join(hex(b)[2:] for b in hashlib.sha256(data).digest())


@dataclass
class JavaSdkClient:
    """``KnobstickServiceImp`` + ``VnptService``: one long-lived header map, calls as POSTs."""

    session: aiohttp.ClientSession
    endpoint: str
    system_id: str
    secret: str
    created_at: datetime = field(default_factory=lambda: datetime.now(VN))
    zone: timezone = VN  # the JVM's default time zone (SimpleDateFormat formats local time)
    multipart: bool = False  # True: a multipart file_doc upload, as other clients send
    header_map: dict[str, str] = field(default_factory=dict)
    sent: list[CIMultiDict[str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        local = self.created_at.astimezone(self.zone)
        stamp = local.strftime("%d%m%YT%H%M%S") + f"+{local.microsecond // 1000:04d}"
        self.header_map["timestamp"] = stamp  # never refreshed: it ages with the object
        self.header_map["systemid"] = self.system_id

    def _wire_headers(self) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict()
        signed: dict[str, str] = {}
        names: list[str] = []
        for name in java_hashmap_order(list(self.header_map)):
            value = self.header_map[name]
            headers.add(f"XroadVnpt-{name}", value)
            signed[f"XroadVnpt-{name}"] = value
            names.append(name)
            if name == "Content-Type":
                headers.add(name, value)
        sign_header = gson_compact(signed)
        headers.add("XroadVnpt-sign-header-key", ";".join(names))
        headers.add("XroadVnpt-sign-header", sign_header)
        digest = hmac.new(self.secret.encode(), sign_header.encode(), hashlib.sha256).hexdigest()
        headers.add("XroadVnpt-hash-header", digest)
        headers.add("User-Agent", "JAVASDKAgent/1.0.0 XRoad/VPCP")
        headers.add("XroadVnpt-version", "3.0.201608")
        return headers

    async def _post(self, name: str, body: Any) -> tuple[int, dict[str, Any]]:
        headers = self._wire_headers()
        self.sent.append(headers)
        self.bodies.append(body if isinstance(body, bytes) else b"")
        async with self.session.post(
            f"{self.endpoint}/{name}", data=body, headers=headers
        ) as response:
            raw = await response.read()
            assert response.content_type == "application/json", raw[:300]
            return response.status, json.loads(raw)

    async def json_call(self, name: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The JSON-parameter calls: keys merged into the map, an empty form as the body."""
        self.header_map["Content-Type"] = "application/json"
        self.header_map.update(params)
        return await self._post(name, b"")

    async def send_edoc(
        self, data: bytes, filename: str, *, from_: str, to: list[str], messagetype: str = "edoc"
    ) -> tuple[int, dict[str, Any]]:
        self.header_map.update(
            {
                "Content-Type": "application/octet-stream",
                "from": from_,
                "servicetype": "eDoc",
                "messagetype": messagetype,
                "to": json.dumps(to),
                "hash-file": java_unpadded_hex(data),
            }
        )
        if not self.multipart:  # the jar writes the file, then CRLF, and no boundary at all
            return await self._post("sendEdoc", data + b"\r\n")
        writer = aiohttp.MultipartWriter("form-data", boundary=secrets.token_hex(16))
        part = writer.append(data, {"Content-Type": "application/octet-stream"})
        part.set_content_disposition("form-data", name="file_doc", filename=filename)
        return await self._post("sendEdoc", writer)  # explicit Content-Type wins, as in Java

    async def get_received_edoc_list(self, messagetype: str) -> tuple[int, dict[str, Any]]:
        return await self.json_call(
            "getReceivedEdocList", {"servicetype": "eDoc", "messagetype": messagetype}
        )

    async def get_edoc(self, doc_id: str, store_dir: str) -> tuple[int, dict[str, Any]]:
        return await self.json_call("getEdoc", {"docId": doc_id, "filePath": store_dir})

    async def update_status(self, doc_id: str, status: str) -> tuple[int, dict[str, Any]]:
        return await self.json_call("updateStatus", {"docid": doc_id, "status": status})

    async def get_agencies_list(self) -> tuple[int, dict[str, Any]]:
        return await self.json_call("getAgenciesList", {})


def sdk_doc_id(answer: dict[str, Any]) -> str | None:
    """What ``sendEdoc`` returns to the SDK's caller: ``DocId`` read unconditionally (a missing
    one throws inside the SDK, which returns null and hides the error code)."""
    try:
        return str(answer["DocId"])
    except KeyError:
        return None


def sdk_agencies(answer: dict[str, Any]) -> dict[str, str | None]:
    """``getAgenciesList`` as the SDK 2.0.1 reads it: code -> parent (read from ``pid``)."""
    return {str(item["code"]): item.get("pid") for item in answer.get("data") or []}


# --- fixtures ------------------------------------------------------------------------------------


@dataclass
class RunningSimulator:
    simulator: NationalSimulator
    endpoint: str
    secrets: dict[str, str]

    async def restart(self) -> None:
        """Stop, then serve again from the same database on the same port."""
        port = self.simulator.port
        assert port is not None
        await self.simulator.stop()
        self.simulator = NationalSimulator(self.simulator.config, self.simulator.db_path)
        await self.simulator.start(port=port)


def two_provinces(window_s: float | None = 3600.0) -> tuple[SimConfig, dict[str, str]]:
    keys = {H56_SYSTEM: secrets.token_urlsafe(24), H41_SYSTEM: secrets.token_urlsafe(24)}
    config = SimConfig(
        (
            SimSystem(SystemCredentials(H56_SYSTEM, keys[H56_SYSTEM], window_s), ("*.H56",)),
            SimSystem(
                SystemCredentials(H41_SYSTEM, keys[H41_SYSTEM], 60.0), ("000.00.00.H41", "*.H41")
            ),
        )
    )
    return config, keys


@pytest.fixture
async def national_sim(tmp_path: Path) -> AsyncIterator[RunningSimulator]:
    """The simulator with Thanh Hóa (window 1 h) and Nghệ An (window 60 s) connected."""
    config, keys = two_provinces()
    simulator = NationalSimulator(config, tmp_path / "national-sim.db")
    endpoint = await simulator.start()
    running = RunningSimulator(simulator, endpoint, keys)
    yield running
    await running.simulator.stop()


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


SdkFactory = Callable[..., JavaSdkClient]


@pytest.fixture
def java_sdk(http_session: aiohttp.ClientSession) -> SdkFactory:
    """``java_sdk(endpoint, system_id, secret, created_at=…)``: an SDK client object."""

    def make(endpoint: str, system_id: str, secret: str, **kwargs: Any) -> JavaSdkClient:
        return JavaSdkClient(http_session, endpoint, system_id, secret, **kwargs)

    return make
