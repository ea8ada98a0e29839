"""The console over plain HTTP: sessions and cookies, CSRF, roles, audit trail, participants."""

from __future__ import annotations

import asyncio
import html
import json
import re
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from console_kit import ConsoleClient, console_password, dead_letter
from directory_kit import stored_directory
from service.service_kit import (
    DEPARTMENT,
    DISTRICT,
    PushReceiver,
    StartGateway,
    new_document,
)

from gateway.web.keys import BROKER

# The console's own behaviour does not depend on the store: run on SQLite (the store's
# queries are tested on both backends in tests/store and test_console_stats).
pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def _cookie(response: object, name: str) -> dict[str, str]:
    """The attributes of the Set-Cookie for ``name`` (lower-case keys; flags map to '')."""
    for header in response.headers.getall("Set-Cookie", []):  # type: ignore[attr-defined]
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        if name in jar:
            morsel = jar[name]
            attrs = {k: str(v) for k, v in morsel.items() if v}
            return {"value": morsel.value, **attrs, "raw": header}
    raise AssertionError(f"no Set-Cookie {name}")


async def test_log_in_refusals_session_cookie_and_log_out(
    start_gateway: StartGateway, console_clients: list[ConsoleClient]
) -> None:
    gw = await start_gateway()
    client = ConsoleClient(gw.base_url)
    console_clients.append(client)

    for username, password in (
        ("operator", "not-the-password"),
        ("nobody", "x"),
        ("viewer", console_password(gw, "operator")),
    ):
        response = await client.login(username, password)
        assert response.status == 401, username
        assert "lgsp_console=" not in " ".join(response.headers.getall("Set-Cookie", []))
    status, page, _ = await client.post(
        "/admin/login",
        {  # no token from the log-in form
            "username": "operator",
            "password": console_password(gw, "operator"),
        },
    )
    assert status == 403
    assert "console.csrf_missing" in page

    status, _, response = await client.get("/admin/documents")
    assert status == 303
    location = urlsplit(response.headers["Location"])
    assert (location.path, parse_qs(location.query)) == (
        "/admin/login",
        {"next": ["/admin/documents"]},
    )

    response = await client.login("operator", console_password(gw, "operator"))
    assert response.status == 303
    session = _cookie(response, "lgsp_console")
    assert "HttpOnly" in session["raw"]
    assert session["samesite"] == "Strict"
    assert session["path"] == "/admin"
    assert "Secure" not in session["raw"]  # plain HTTP here; Secure when the gateway serves TLS
    stolen = session["value"]
    status, _, response = await client.get("/admin/documents")
    assert status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]

    status, _, response = await client.post("/admin/logout", {"csrf_token": client.csrf})
    assert (status, response.headers["Location"]) == (303, "/admin/login")
    replayed = ConsoleClient(gw.base_url)
    console_clients.append(replayed)
    replayed.session.cookie_jar.update_cookies({"lgsp_console": stolen})
    status, _, _ = await replayed.get("/admin/documents")
    assert status == 303  # the session is gone on the server, not only from the browser


async def test_search_dates_out_of_range_are_400s_not_500s(
    start_gateway: StartGateway, console_clients: list[ConsoleClient]
) -> None:
    gw = await start_gateway()
    client = ConsoleClient(gw.base_url)
    console_clients.append(client)
    assert (await client.login("viewer", console_password(gw, "viewer"))).status == 303
    for query in (
        "until=9999-12-31",
        "since=0001-01-01",
        "since_h=99999999999",
        "until=2026-02-30",
        "since_h=%C2%B2",
    ):
        status, page, response = await client.get(f"/admin/documents?{query}")
        expected = 200 if query.startswith("since_h=%C2") else 400  # "²" is not a number: unused
        assert status == expected, (query, page[:300])
        assert response.content_type == "text/html"
        if expected == 400:
            assert 'class="error" role="alert"' in page
            assert query.split("=")[0] + ":" in page  # the field is named


async def test_only_an_operator_posting_the_session_token_replays_selected_or_all(
    start_gateway: StartGateway, push_receiver: PushReceiver, console_clients: list[ConsoleClient]
) -> None:
    dead = await dead_letter(start_gateway, push_receiver)
    gw, doc_id, delivery_id = dead.gateway, dead.doc_id, dead.delivery_id
    operator, viewer, anonymous = (ConsoleClient(gw.base_url) for _ in range(3))
    console_clients.extend([operator, viewer, anonymous])
    await operator.login("operator", console_password(gw, "operator"))
    await viewer.login("viewer", console_password(gw, "viewer"))

    attempts = [
        (operator, {"one": delivery_id}, "console.csrf_missing"),
        (operator, {"one": delivery_id, "csrf_token": "forged"}, "console.csrf_invalid"),
        (operator, {"one": delivery_id, "csrf_token": viewer.csrf}, "console.csrf_invalid"),
        (viewer, {"one": delivery_id, "csrf_token": viewer.csrf}, "console.operator_only"),
        (anonymous, {"one": delivery_id, "csrf_token": "x"}, "console.csrf_missing"),
    ]
    for client, form, code in attempts:
        status, page, _ = await client.post("/admin/dead-letters/replay", form)
        assert status == 403, (form, page[:300])
        assert code in page
    status, page, _ = await viewer.get("/admin/dead-letters")
    assert status == 200
    assert delivery_id in page
    assert 'name="one"' not in page
    assert "/admin/dead-letters/replay-all" not in page
    status, _, _ = await viewer.get("/admin/participants/new")
    assert status == 403
    status, _, _ = await viewer.post(
        f"/admin/participants/{DISTRICT}/disable", {"csrf_token": viewer.csrf}
    )
    assert status == 403
    assert (await stored_directory(gw.settings.store.url)).get(DISTRICT).enabled  # type: ignore[union-attr]

    status, view = await gw.get(f"/api/v1/documents/{doc_id}", DEPARTMENT)
    assert status == 200
    assert view["recipients"][0]["state"] == "dead_lettered"  # nothing was replayed
    assert len(push_receiver.received) == 1
    status, page, _ = await operator.get("/admin/audit")
    assert "replay" not in re.findall(r'data-action="([^"]+)"', page)

    # A second dead letter to the same destination; the operator replays the first as
    # "selected", then "all for the destination" (only the second one is left).
    push_receiver.script = [400]
    status, second = await gw.submit(
        gw.sign(new_document(DEPARTMENT, [DISTRICT]), DEPARTMENT), DEPARTMENT
    )
    assert status == 202, second
    await gw.wait_for(
        second["id"], DEPARTMENT, lambda v: v["recipients"][0]["state"] == "dead_lettered"
    )
    second_delivery = second["recipients"][0]["delivery_id"]
    status, _, response = await operator.post(
        "/admin/dead-letters/replay", [("csrf_token", operator.csrf), ("delivery_id", delivery_id)]
    )
    assert status == 303
    assert response.headers["Location"].endswith("?replayed=1&refused=0")
    status, _, response = await operator.post(
        "/admin/dead-letters/replay-all", {"csrf_token": operator.csrf, "recipient": DISTRICT}
    )
    assert status == 303
    assert response.headers["Location"].endswith("?replayed=1&refused=0")
    for document in (doc_id, second["id"]):
        await gw.wait_for(
            document, DEPARTMENT, lambda v: v["recipients"][0]["state"] == "delivered"
        )
    keys = sorted(headers["Idempotency-Key"] for headers, _ in push_receiver.received)
    assert keys == sorted([delivery_id] * 2 + [second_delivery] * 2)
    assert len(push_receiver.delivered) == 2
    status, page, _ = await operator.get("/admin/dead-letters")
    assert "data-delivery=" not in page
    status, page, _ = await operator.get("/admin/audit")
    replays = re.findall(
        r'data-action="replay">.*?<td>operator</td>.*?<code>([0-9a-f-]{36})'
        r"</code></td><td><code>(\{.*?\})</code>",
        html.unescape(page),
    )
    assert sorted((target, json.loads(detail)["mode"]) for target, detail in replays) == sorted(
        [(delivery_id, "selected"), (second_delivery, "destination")]
    )

    # With the gateway's broker connection gone, a replay is still recorded and audited, and
    # left to the outbox relay.
    push_receiver.script = [400]
    status, third = await gw.submit(
        gw.sign(new_document(DEPARTMENT, [DISTRICT]), DEPARTMENT), DEPARTMENT
    )
    assert status == 202, third
    await gw.wait_for(
        third["id"], DEPARTMENT, lambda v: v["recipients"][0]["state"] == "dead_lettered"
    )
    assert gw.service.app is not None
    await gw.service.app[BROKER].aclose()
    third_delivery = third["recipients"][0]["delivery_id"]
    status, _, response = await operator.post(
        "/admin/dead-letters/replay", {"csrf_token": operator.csrf, "one": third_delivery}
    )
    assert status == 303
    assert response.headers["Location"].endswith("?replayed=1&refused=0&deferred=1")
    status, view = await gw.get(f"/api/v1/documents/{third['id']}", DEPARTMENT)
    assert view["recipients"][0]["state"] == "accepted"
    status, page, _ = await operator.get("/admin/audit")
    [(target, detail)] = re.findall(
        r'data-action="replay">.*?<code>([0-9a-f-]{36})</code></td><td><code>(\{.*?\})</code>',
        html.unescape(page),
    )[:1]
    assert target == third_delivery
    assert json.loads(detail)["published"] is False


async def test_operator_adds_edits_and_disables_a_participant_never_seeing_secrets(
    start_gateway: StartGateway, console_clients: list[ConsoleClient]
) -> None:
    gw = await start_gateway()
    operator = ConsoleClient(gw.base_url)
    console_clients.append(operator)
    await operator.login("operator", console_password(gw, "operator"))
    inbox = f"{gw.base_url}/api/v1/inbox"

    status, page, _ = await operator.get("/admin/participants")
    assert status == 200
    district = (await stored_directory(gw.settings.store.url)).get(DISTRICT)
    assert district is not None
    assert district.api_key_hashes[0][:12] in page
    assert district.api_key_hashes[0] not in page
    assert all(key not in page for key in gw.setup.api_keys.values())

    new_id = "000.02.15.H56"
    form = {
        "csrf_token": operator.csrf,
        "is_new": "1",
        "organ_id": new_id,
        "name": "UBND xã Quảng Bình",
        "kind": "state",
        "level": "commune",
        "parent": DISTRICT,
        "delivery_method": "mailbox",
        "delivery_url": "",
        "allowed_algorithms": "rsa-sha256\necdsa-sha256",
        "may_send_to": "",
        "may_speak_for": "",
        "signing_cert_fingerprints": "",
        "client_cert_fingerprints": "",
        "enabled": "on",
        "generate_api_key": "on",
    }
    status, page, _ = await operator.post("/admin/participants/save", form)
    assert status == 200
    found = re.search(r'id="api-key">(lgsp_[A-Za-z0-9_-]+)<', page)
    assert found, page[:500]
    api_key = found.group(1)
    async with gw.session.get(inbox, headers={"Authorization": f"Bearer {api_key}"}) as r:
        assert r.status == 200

    status, page, _ = await operator.post("/admin/participants/save", form)
    assert status == 400
    assert "Đơn vị 000.02.15.H56 đã có." in page
    status, page, _ = await operator.post(
        "/admin/participants/save",
        {**form, "is_new": "0", "delivery_method": "push", "generate_api_key": ""},
    )
    assert status == 400
    assert "push delivery needs an http(s) URL" in page

    edited = {**form, "is_new": "0", "name": "UBND xã Quảng Bình (mới)", "generate_api_key": ""}
    status, _, _ = await operator.post("/admin/participants/save", edited)
    assert status == 303
    saved = (await stored_directory(gw.settings.store.url)).get(new_id)  # in the store
    assert saved is not None
    assert saved.name == "UBND xã Quảng Bình (mới)"
    assert len(saved.api_key_hashes) == 1  # the edit kept the key

    status, _, _ = await operator.post(
        f"/admin/participants/{new_id}/disable", {"csrf_token": operator.csrf}
    )
    assert status == 303
    disabled = (await stored_directory(gw.settings.store.url)).get(new_id)
    assert disabled is not None
    assert not disabled.enabled
    async with gw.session.get(inbox, headers={"Authorization": f"Bearer {api_key}"}) as r:
        assert r.status == 401

    status, page, _ = await operator.get("/admin/audit")
    actions = re.findall(
        r'data-action="([^"]+)">.*?<td>(\w+)</td><td>[^<]*</td>'
        r"<td><code>([^<]*)</code>",
        page,
    )
    assert actions[:4] == [
        ("participant.disable", "operator", new_id),
        ("participant.save", "operator", new_id),
        ("participant.save", "operator", new_id),
        ("login", "operator", "operator"),
    ]
    assert api_key not in page


def _client_from(base_url: str, address: str) -> ConsoleClient:
    """A console client whose connections come from ``address`` (another loopback address)."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    return ConsoleClient(
        base_url,
        aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)),
    )


async def test_failed_log_ins_grow_a_delay_for_that_name_across_addresses_never_a_lockout(
    start_gateway: StartGateway, console_clients: list[ConsoleClient]
) -> None:
    gw = await start_gateway()
    here, there = ConsoleClient(gw.base_url), _client_from(gw.base_url, "127.0.0.2")
    console_clients += [here, there]
    for client in (here, there, here):  # the free failures, from two addresses
        assert (await client.login("operator", "guess")).status == 401

    waiting = await there.login("operator", console_password(gw, "operator"))

    assert waiting.status == 429  # even the right password waits, from any address
    assert int(waiting.headers["Retry-After"]) == 1
    assert "lgsp_console=" not in " ".join(waiting.headers.getall("Set-Cookie", []))
    elsewhere = ConsoleClient(gw.base_url)
    console_clients.append(elsewhere)
    viewer = await elsewhere.login("viewer", console_password(gw, "viewer"))
    assert viewer.status == 303  # other names are not delayed
    await asyncio.sleep(1.1)
    assert (await here.login("operator", "guess")).status == 401
    doubled = await there.login("operator", console_password(gw, "operator"))
    assert (doubled.status, doubled.headers["Retry-After"]) == (429, "2")
    await asyncio.sleep(2.1)
    assert (await there.login("operator", console_password(gw, "operator"))).status == 303
