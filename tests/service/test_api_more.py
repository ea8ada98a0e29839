"""The rest of the HTTP API: JWS intake, admin, OpenAPI, problems, upload limits, mutual TLS."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from directory_kit import stored_directory
from service_kit import COMMUNE, DEPARTMENT, DISTRICT, Gateway, StartGateway, new_document, states

from gateway.demo import pki
from gateway.edxml import json_codec
from gateway.signatures.binding import fingerprint
from gateway.signatures.jws import sign_jws

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)

PROBLEM_JSON = "application/problem+json"
WARD = "000.02.15.H56"  # a participant the admin adds at run time
MB = 1024 * 1024


def _delivered(view: dict[str, Any]) -> bool:
    return all(state == "delivered" for state in states(view).values())


def _ward(**extra: object) -> dict[str, object]:
    return {
        "organ_id": WARD,
        "name": "UBND phường Quảng Tiến",
        "kind": "state",
        "level": "commune",
        "parent": DISTRICT,
        **extra,
    }


async def _admin(
    gw: Gateway, method: str, path: str, token: str | None, body: object = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with gw.session.request(
        method, f"{gw.base_url}/api/v1/admin/participants{path}", json=body, headers=headers
    ) as r:
        return r.status, await r.json(content_type=None)


async def _inbox_status(gw: Gateway, api_key: str) -> tuple[int, dict[str, Any]]:
    async with gw.session.get(
        f"{gw.base_url}/api/v1/inbox", headers={"Authorization": f"Bearer {api_key}"}
    ) as r:
        return r.status, await r.json(content_type=None)


async def test_json_document_signed_as_jws_comes_out_of_the_mailbox_byte_identical(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway()
    ident = pki.load_identity(gw.setup.pki_dir, DEPARTMENT)
    payload = json_codec.dumps(new_document(DEPARTMENT, [COMMUNE]))
    token = sign_jws(payload, ident.key, ident.chain).encode("ascii")

    status, answer = await gw.submit(token, DEPARTMENT, "application/jose")

    assert status == 202, answer
    view = await gw.wait_for(answer["id"], DEPARTMENT, _delivered)
    assert view["format"] == "jws"
    [item] = (await gw.get("/api/v1/inbox", COMMUNE))[1]["items"]
    async with gw.session.get(
        f"{gw.base_url}/api/v1/inbox/{item['id']}", headers=gw.headers(COMMUNE)
    ) as r:
        assert r.status == 200
        assert r.content_type == "application/jose"
        assert await r.read() == token
    again_status, again = await gw.submit(token, DEPARTMENT, "application/jose")
    assert (again_status, again["id"]) == (200, answer["id"])


async def test_admin_participants_need_the_admin_token(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    assert (await _admin(gw, "GET", "", None))[1]["code"] == "auth.required"
    for method, path, body in (
        ("GET", "", None),
        ("POST", "", _ward()),
        ("DELETE", f"/{COMMUNE}", None),
    ):
        status, problem = await _admin(gw, method, path, "lgsp_admin_wrong", body)
        assert (status, problem["code"]) == (401, "auth.invalid_admin_token"), (method, problem)
        status, problem = await _admin(gw, method, path, gw.setup.api_keys[DEPARTMENT], body)
        assert status == 401, "a participant's API key is no admin token"
    status, listing = await _admin(gw, "GET", "", gw.setup.admin_token)
    assert status == 200
    by_id = {p["organ_id"]: p for p in listing["participants"]}
    assert set(gw.setup.api_keys) <= by_id.keys()
    assert WARD not in by_id
    assert "api_key_hashes" not in by_id[COMMUNE]  # fingerprints only, never the hashes
    assert await _inbox_status(gw, gw.setup.api_keys[COMMUNE]) == (200, {"items": []})


async def test_admin_adds_a_participant_with_a_key_then_disables_it_without_restart(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway()
    token = gw.setup.admin_token

    status, created = await _admin(gw, "POST", "", token, _ward(generate_api_key=True))

    assert status == 200, created
    key = created["api_key"]
    assert created["participant"]["api_keys"] == 1
    assert await _inbox_status(gw, key) == (200, {"items": []})
    signed = gw.sign(new_document(DEPARTMENT, [WARD]), DEPARTMENT)
    status, answer = await gw.submit(signed, DEPARTMENT)  # routable at once, too
    assert status == 202, answer
    await gw.wait_for(answer["id"], DEPARTMENT, _delivered)
    assert [i["document"] for i in (await _inbox_status(gw, key))[1]["items"]] == [answer["id"]]

    status, disabled = await _admin(gw, "DELETE", f"/{WARD}", token)

    assert (status, disabled["participant"]["enabled"]) == (200, False)
    status, problem = await _inbox_status(gw, key)
    assert (status, problem["code"]) == (401, "auth.invalid_api_key")
    listing = (await _admin(gw, "GET", "", token))[1]["participants"]
    assert {p["organ_id"]: p["enabled"] for p in listing}[WARD] is False
    stored = (await stored_directory(gw.settings.store.url)).get(WARD)  # kept for a restart
    assert stored is not None
    assert not stored.enabled
    status, problem = await _admin(gw, "DELETE", "/000.09.99.H56", token)
    assert (status, problem["code"]) == (404, "not_found.participant")
    status, problem = await _admin(gw, "POST", "", token, {"organ_id": WARD, "nme": "typo"})
    assert (status, problem["code"]) == (400, "admin.invalid_participant")


async def _problem(response: aiohttp.ClientResponse, status: int, code: str) -> dict[str, Any]:
    assert response.status == status
    assert response.content_type == PROBLEM_JSON
    body: dict[str, Any] = json.loads(await response.read())
    assert body["status"] == status
    assert body["code"] == body["title"] == code
    assert body["type"] == f"urn:lgsp:error:{code}"
    assert isinstance(body["detail"], str)
    return body


async def _openapi_matches_the_router(gw: Gateway) -> None:
    assert gw.service.app is not None
    served: set[tuple[str, str]] = set()
    for resource in gw.service.app.router.resources():
        info = resource.get_info()
        if "app" in info:  # a sub-application (the /admin web console): HTML pages, not the API
            continue
        path = str(info.get("path") or info.get("formatter"))
        served |= {(path, route.method.lower()) for route in resource if route.method != "HEAD"}

    async with gw.session.get(f"{gw.base_url}/api/v1/openapi.json") as r:
        assert r.status == 200
        spec = await r.json()

    documented = {
        (path, method)
        for path, ops in spec["paths"].items()
        for method in ops
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert served == documented
    assert len(served) >= 11


async def test_openapi_routes_problems_and_request_ids(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    await _openapi_matches_the_router(gw)
    async with gw.session.get(
        f"{gw.base_url}/api/v1/nothing-here", headers={"X-Request-Id": "req-404"}
    ) as r:
        problem = await _problem(r, 404, "not_found.route")
        assert r.headers["X-Request-Id"] == problem["request_id"] == "req-404"
    async with gw.session.delete(
        f"{gw.base_url}/api/v1/documents", headers={"X-Request-Id": "req-405"}
    ) as r:
        problem = await _problem(r, 405, "http.method_not_allowed")
        assert r.headers["X-Request-Id"] == problem["request_id"] == "req-405"
        assert "POST" in r.headers["Allow"]
    async with gw.session.get(
        f"{gw.base_url}/api/v1/inbox", headers={"X-Request-Id": "req-401"}
    ) as r:
        problem = await _problem(r, 401, "auth.required")
        assert r.headers["X-Request-Id"] == problem["request_id"] == "req-401"
    async with gw.session.get(f"{gw.base_url}/healthz", headers={"X-Request-Id": "x" * 65}) as r:
        generated = r.headers["X-Request-Id"]  # too long to echo: a new one instead
        assert r.status == 200
        assert generated != "x" * 65
        assert 0 < len(generated) <= 64


async def _zeros(total_bytes: int, sent: list[int]) -> AsyncIterator[bytes]:
    chunk = bytes(MB)
    while sent[0] < total_bytes:
        sent[0] += len(chunk)
        yield chunk


async def test_a_200_mb_upload_is_refused_with_413_and_the_gateway_stays_healthy(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway()
    for declare_length in (False, True):  # chunked, then with a Content-Length of 200 MB
        total, sent = 200 * MB, [0]
        headers = gw.headers(DEPARTMENT)
        if declare_length:
            headers["Content-Length"] = str(total)

        async with gw.session.post(
            f"{gw.base_url}/api/v1/documents", headers=headers, data=_zeros(total, sent)
        ) as r:
            problem = await _problem(r, 413, "edxml.too_large")

        assert "over the limit" in problem["detail"]
        assert sent[0] < total, "the refusal came before the whole body was sent"
        async with gw.session.get(f"{gw.base_url}/readyz") as r:
            assert r.status == 200
    status, answer = await gw.submit(
        gw.sign(new_document(DEPARTMENT, [COMMUNE]), DEPARTMENT), DEPARTMENT
    )
    assert status == 202, answer


# --- mutual TLS ----------------------------------------------------------------------------------


def _write_identity(ident: pki.Identity, where: Path) -> tuple[Path, Path]:
    cert_path, key_path = where / "cert.pem", where / "key.pem"
    where.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in ident.chain[:-1])
    )
    key_path.write_bytes(
        ident.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _client_context(ca_path: Path, client: tuple[Path, Path] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_path))
    context.check_hostname = False  # the test server certificate names no host; the CA still counts
    if client is not None:
        context.load_cert_chain(*client)
    return context


async def _inbox_over_tls(gw: Gateway, context: ssl.SSLContext) -> tuple[int, dict[str, Any]]:
    url = f"https://127.0.0.1:{gw.settings.http.port}/api/v1/inbox"
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session,
        session.get(url) as r,
    ):
        return r.status, await r.json(content_type=None)


async def test_a_registered_client_certificate_authenticates_over_mutual_tls(
    start_gateway: StartGateway, tmp_path: Path
) -> None:
    tls_pki = tmp_path / "tls-pki"
    layout = pki.init_pki(tls_pki, participants=())
    server = _write_identity(
        pki.issue(tls_pki, "gateway-tls", name="localhost", save=False), tmp_path / "server"
    )
    ward_ident = pki.issue(tls_pki, WARD, save=False)
    ward = _write_identity(ward_ident, tmp_path / "ward")
    stranger = _write_identity(
        pki.issue(tls_pki, "000.03.15.H56", save=False), tmp_path / "stranger"
    )
    gw = await start_gateway(
        env={
            "LGSP_HTTP__TLS_CERT": str(server[0]),
            "LGSP_HTTP__TLS_KEY": str(server[1]),
            "LGSP_HTTP__TLS_CLIENT_CA": str(layout.ca_cert_path),
        }
    )
    ca = layout.ca_cert_path
    admin = {"Authorization": f"Bearer {gw.setup.admin_token}"}
    entry = _ward(client_cert_fingerprints=[fingerprint(ward_ident.certificate)])
    url = f"https://127.0.0.1:{gw.settings.http.port}/api/v1/admin/participants"
    async with (
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=_client_context(ca, None))
        ) as session,
        session.post(url, json=entry, headers=admin) as r,
    ):
        assert r.status == 200, await r.text()

    assert await _inbox_over_tls(gw, _client_context(ca, ward)) == (200, {"items": []})
    status, problem = await _inbox_over_tls(gw, _client_context(ca, stranger))
    assert (status, problem["code"]) == (401, "auth.unknown_client_cert")
    status, problem = await _inbox_over_tls(gw, _client_context(ca, None))
    assert (status, problem["code"]) == (401, "auth.required")
