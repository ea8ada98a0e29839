"""HTTP push adapter against a real aiohttp server that checks what the gateway sends."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import aiohttp
import pybase64
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from adapters.base import (
    DeliveryOutcome,
    OutboundDelivery,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from adapters.http_push import (
    MAX_REASON_CHARS,
    SIGN_IN_THREAD_BYTES,
    HttpPushAdapter,
    certificate_thumbprint,
    sign_push,
    verify_push_signature,
)
from gateway.core.errors import SignatureError
from gateway.demo import pki


@dataclass
class Receiver:
    """A recipient's endpoint: verifies each request, records it, answers per path."""

    gateway: pki.Identity
    received: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            signed = verify_push_signature(request.headers, body, self.gateway.certificate)
        except SignatureError as exc:
            return web.Response(status=401, text=exc.code)
        assert request.headers["Idempotency-Key"] == signed.delivery_id
        kind = request.match_info["kind"]
        self.received.append((kind, body, dict(request.headers)))
        answer: Callable[[], Awaitable[web.StreamResponse]] = getattr(self, kind)
        return await answer()

    async def ok(self) -> web.StreamResponse:
        return web.Response(status=202, text="queued")

    async def fail(self) -> web.StreamResponse:
        return web.Response(status=500, text="database is down")

    async def bad(self) -> web.StreamResponse:
        return web.Response(status=400, text="x" * 5000)

    async def busy(self) -> web.StreamResponse:
        return web.Response(status=429, headers={"Retry-After": "7"})

    async def maintenance(self) -> web.StreamResponse:
        when = datetime.now(UTC) + timedelta(seconds=120)
        return web.Response(status=503, headers={"Retry-After": format_datetime(when, usegmt=True)})

    async def moved(self) -> web.StreamResponse:
        return web.Response(status=308, headers={"Location": "/push/ok"})

    async def slow(self) -> web.StreamResponse:
        await self.release.wait()
        return web.Response(status=200)


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    pki.init_pki(root, key_type="ec", participants=())
    pki.issue(root, "gateway-rsa", key_type="rsa", san=False)
    pki.issue(root, "impostor", key_type="ec", san=False)
    return root


@pytest.fixture(scope="module")
def gateway_identity(pki_dir: Path) -> pki.Identity:
    return pki.load_identity(pki_dir, pki.GATEWAY_ID)


@pytest.fixture
async def receiver(gateway_identity: pki.Identity) -> AsyncIterator[tuple[Receiver, TestServer]]:
    state = Receiver(gateway_identity)
    app = web.Application(client_max_size=4 * SIGN_IN_THREAD_BYTES)
    app.router.add_post("/push/{kind:ok|fail|bad|busy|maintenance|moved|slow}", state.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield state, server
    state.release.set()
    await server.close()


@pytest.fixture
async def adapter(gateway_identity: pki.Identity) -> AsyncIterator[HttpPushAdapter]:
    async with HttpPushAdapter(
        gateway_identity.key,
        gateway_identity.certificate,
        timeout_s=0.5,
        allow_private_hosts=["127.0.0.1"],
    ) as push:
        yield push


PACKAGE = "<?xml version='1.0' encoding='UTF-8'?><edXMLEnvelope>Văn bản</edXMLEnvelope>\n".encode()


def outbound(server: TestServer, kind: str, **changes: object) -> OutboundDelivery:
    base = OutboundDelivery(
        delivery_id="5f0c7a52-6d1e-4c57-9d0e-2f0b8f0e1a01",
        document_id="8c1f9b7e-0000-4000-8000-000000000001",
        organ_id="000.00.15.H56",
        package=PACKAGE,
        content_type="application/xml; charset=utf-8",
        url=str(server.make_url(f"/push/{kind}")),
        attempt=2,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def test_2xx_is_delivered_with_the_exact_bytes_and_signed_headers(
    receiver: tuple[Receiver, TestServer], adapter: HttpPushAdapter
) -> None:
    state, server = receiver
    outcome = await adapter.deliver(outbound(server, "ok"))
    assert outcome == DeliveryOutcome(True, "HTTP 202", 202)
    [(kind, body, headers)] = state.received
    assert kind == "ok"
    assert body == PACKAGE
    assert headers["Content-Type"] == "application/xml; charset=utf-8"
    assert headers["Idempotency-Key"] == "5f0c7a52-6d1e-4c57-9d0e-2f0b8f0e1a01"
    assert headers["X-LGSP-Delivery-Id"] == "5f0c7a52-6d1e-4c57-9d0e-2f0b8f0e1a01"
    assert headers["X-LGSP-Document-Id"] == "8c1f9b7e-0000-4000-8000-000000000001"
    assert headers["X-LGSP-Attempt"] == "2"
    header_part, payload_part, _sig = headers["X-LGSP-Signature"].split(".")
    assert header_part
    assert payload_part == ""  # detached: the body is the payload


async def test_large_body_is_signed_and_verified(
    receiver: tuple[Receiver, TestServer], adapter: HttpPushAdapter
) -> None:
    state, server = receiver
    big = PACKAGE + b"\n<!-- padding -->" * (SIGN_IN_THREAD_BYTES // 16 + 1)
    outcome = await adapter.deliver(outbound(server, "ok", package=big))
    assert outcome.delivered
    assert state.received[0][1] == big


async def test_5xx_is_transient(
    receiver: tuple[Receiver, TestServer], adapter: HttpPushAdapter
) -> None:
    _, server = receiver
    with pytest.raises(TransientDeliveryError) as info:
        await adapter.deliver(outbound(server, "fail"))
    assert info.value.retryable
    assert info.value.status_code == 500
    assert info.value.code == "delivery.http_status"
    assert "database is down" in info.value.message
    assert info.value.retry_after_s is None


async def test_4xx_is_permanent_with_a_truncated_reason(
    receiver: tuple[Receiver, TestServer], adapter: HttpPushAdapter
) -> None:
    _, server = receiver
    with pytest.raises(PermanentDeliveryError) as info:
        await adapter.deliver(outbound(server, "bad"))
    assert not info.value.retryable
    assert info.value.status_code == 400
    assert info.value.code == "delivery.refused"
    assert info.value.message.startswith("HTTP 400: xxx")
    assert len(info.value.message) == len("HTTP 400: ") + MAX_REASON_CHARS


async def test_429_is_transient_and_honours_retry_after_seconds(
    receiver: tuple[Receiver, TestServer], adapter: HttpPushAdapter
) -> None:
    _, server = receiver
    with pytest.raises(TransientDeliveryError) as info:
        await adapter.deliver(outbound(server, "busy"))
    assert info.value.status_code == 429
    assert info.value.retry_after_s == 7.0


async def test_503_honours_retry_after_as_an_http_date(
    receiver: tuple[Receiver, TestServer], adapter: HttpPushAdapter
) -> None:
    _, server = receiver
    with pytest.raises(TransientDeliveryError) as info:
        await adapter.deliver(outbound(server, "maintenance"))
    assert info.value.retry_after_s is not None
    assert 100 < info.value.retry_after_s <= 120


async def test_redirects_are_not_followed(
    receiver: tuple[Receiver, TestServer], adapter: HttpPushAdapter
) -> None:
    state, server = receiver
    with pytest.raises(PermanentDeliveryError) as info:
        await adapter.deliver(outbound(server, "moved"))
    assert info.value.status_code == 308
    assert [kind for kind, _, _ in state.received] == ["moved"]


async def test_slow_recipient_times_out_as_transient(
    receiver: tuple[Receiver, TestServer], adapter: HttpPushAdapter
) -> None:
    _, server = receiver
    with pytest.raises(TransientDeliveryError) as info:
        await adapter.deliver(outbound(server, "slow"))
    assert info.value.code == "delivery.timeout"
    assert info.value.status_code is None


async def test_connection_refused_is_transient(adapter: HttpPushAdapter) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    delivery = OutboundDelivery(
        "d-1",
        "doc-1",
        "000.00.15.H56",
        PACKAGE,
        "application/xml",
        url=f"http://127.0.0.1:{port}/push",
    )
    with pytest.raises(TransientDeliveryError) as info:
        await adapter.deliver(delivery)
    assert info.value.code == "delivery.connection"


async def test_missing_url_is_permanent(adapter: HttpPushAdapter) -> None:
    delivery = OutboundDelivery("d-1", "doc-1", "000.00.15.H56", PACKAGE, "application/xml")
    with pytest.raises(PermanentDeliveryError) as info:
        await adapter.deliver(delivery)
    assert info.value.code == "delivery.no_url"


async def test_a_shared_session_is_left_open_for_its_owner(
    receiver: tuple[Receiver, TestServer], pki_dir: Path
) -> None:
    _, server = receiver
    rsa_identity = pki.load_identity(pki_dir, "gateway-rsa")
    async with aiohttp.ClientSession() as session:
        async with HttpPushAdapter(
            rsa_identity.key, rsa_identity.certificate, session=session
        ) as push:
            delivery = outbound(server, "ok")
            headers = await push._headers(delivery)
            await push.aclose()
        assert not session.closed
        async with session.post(delivery.url or "", data=PACKAGE, headers=headers) as response:
            # The receiver pins the EC gateway certificate, so the RSA signature is refused.
            assert response.status == 401
            assert await response.text() == "jws.unknown_key"
    signed = verify_push_signature(headers, PACKAGE, rsa_identity.certificate)
    assert signed.algorithm == "RS256"


# --- verify_push_signature on its own ------------------------------------------------------------


def signed_headers(
    identity: pki.Identity,
    body: bytes = PACKAGE,
    *,
    delivery_id: str = "d-1",
    now: float | None = None,
) -> dict[str, str]:
    signature = sign_push(body, delivery_id, identity.key, identity.certificate, now=now)
    return {"x-lgsp-signature": signature, "x-lgsp-delivery-id": delivery_id}


def refusal(
    headers: Mapping[str, str], certificate: x509.Certificate, body: bytes = PACKAGE
) -> str:
    """The code of the ``SignatureError`` that ``verify_push_signature`` must raise."""
    with pytest.raises(SignatureError) as refused:
        verify_push_signature(headers, body, certificate)
    return refused.value.code


def test_verify_accepts_an_untouched_request(gateway_identity: pki.Identity) -> None:
    signed = verify_push_signature(
        signed_headers(gateway_identity), PACKAGE, gateway_identity.certificate
    )
    assert signed.delivery_id == "d-1"
    assert signed.algorithm == "ES256"
    assert abs(signed.issued_at.timestamp() - time.time()) < 60


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 65537])
def test_every_body_length_signs_and_verifies_and_one_byte_more_does_not(
    gateway_identity: pki.Identity, pki_dir: Path, size: int
) -> None:
    """The payload's base64 ends in 0, 1 or 2 padding characters, which the signing input
    leaves out (RFC 7515 section 2): each case verifies, with either key type."""
    body = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    for identity in (gateway_identity, pki.load_identity(pki_dir, "gateway-rsa")):
        headers = signed_headers(identity, body)
        assert verify_push_signature(headers, body, identity.certificate).delivery_id == "d-1"
        assert refusal(headers, identity.certificate, body + b"=") == "jws.invalid"


@pytest.mark.parametrize("size", [0, 1, 2, 3, 47, 48, 49, 4096, 65537, 361 * 1024 + 1])
def test_the_fast_base64_is_the_standard_librarys(size: int) -> None:
    """The signer's base64url (``pybase64``, SIMD) is byte for byte the standard library's, on
    every length modulo 3 and across the sizes where SIMD encoders change loops."""
    body = bytes((i * 7919 + size) % 256 for i in range(size))
    assert pybase64.urlsafe_b64encode(body) == base64.urlsafe_b64encode(body)


def test_verify_refuses_a_changed_body(gateway_identity: pki.Identity) -> None:
    headers = signed_headers(gateway_identity)
    changed = PACKAGE.replace(b"V", b"W")
    assert refusal(headers, gateway_identity.certificate, changed) == "jws.invalid"


def test_verify_refuses_another_delivery_id(gateway_identity: pki.Identity) -> None:
    headers = signed_headers(gateway_identity) | {"x-lgsp-delivery-id": "d-2"}
    assert refusal(headers, gateway_identity.certificate) == "jws.delivery_mismatch"


def test_verify_refuses_old_or_future_signatures(gateway_identity: pki.Identity) -> None:
    for skew in (-3600, 3600):
        headers = signed_headers(gateway_identity, now=time.time() + skew)
        assert refusal(headers, gateway_identity.certificate) == "jws.stale"


def test_verify_refuses_another_signer(gateway_identity: pki.Identity, pki_dir: Path) -> None:
    impostor = pki.load_identity(pki_dir, "impostor")
    assert refusal(signed_headers(impostor), gateway_identity.certificate) == "jws.unknown_key"
    # Naming the gateway's certificate does not help when the key is not the gateway's.
    forged = sign_push(PACKAGE, "d-1", impostor.key, gateway_identity.certificate)
    headers = {"X-LGSP-Signature": forged, "X-LGSP-Delivery-Id": "d-1"}
    assert refusal(headers, gateway_identity.certificate) == "jws.invalid"


@pytest.mark.parametrize("value", [None, "", "not-a-jws", "a.b.c.d", "!!!..sig"])
def test_verify_refuses_missing_or_garbled_headers(
    gateway_identity: pki.Identity, value: str | None
) -> None:
    headers = {} if value is None else {"X-LGSP-Signature": value}
    assert refusal(headers, gateway_identity.certificate) == "jws.malformed"


def test_the_algorithm_follows_the_gateway_key(
    gateway_identity: pki.Identity, pki_dir: Path
) -> None:
    rsa_identity = pki.load_identity(pki_dir, "gateway-rsa")
    for identity, algorithm in ((gateway_identity, "ES256"), (rsa_identity, "RS256")):
        headers = signed_headers(identity)
        header = json.loads(
            base64.urlsafe_b64decode(headers["x-lgsp-signature"].split(".")[0] + "==")
        )
        assert header["alg"] == algorithm
        assert header["x5t#S256"] == certificate_thumbprint(identity.certificate)
        signed = verify_push_signature(headers, PACKAGE, identity.certificate)
        assert signed.algorithm == algorithm
    # an RSA signature naming the P-256 certificate: the key type does not fit the algorithm
    forged = sign_push(PACKAGE, "d-1", rsa_identity.key, gateway_identity.certificate)
    headers = {"X-LGSP-Signature": forged, "X-LGSP-Delivery-Id": "d-1"}
    assert refusal(headers, gateway_identity.certificate) == "jws.invalid"


def test_a_key_without_a_push_algorithm_is_refused_when_the_adapter_is_made(
    gateway_identity: pki.Identity,
) -> None:
    with pytest.raises(SignatureError) as info:
        HttpPushAdapter(ec.generate_private_key(ec.SECP384R1()), gateway_identity.certificate)
    assert info.value.code == "jws.unsupported_algorithm"
