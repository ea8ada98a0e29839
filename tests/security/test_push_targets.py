"""Push URL policy: non-public targets are refused at delivery time, on the addresses the
connection would use, unless their host is allowed by name; bad URLs are 400s at the admin API."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from service.service_kit import (
    DEPARTMENT,
    DISTRICT,
    PushReceiver,
    StartGateway,
    new_document,
    states,
)

from adapters.base import OutboundDelivery, PermanentDeliveryError
from adapters.http_push import HttpPushAdapter
from adapters.push_targets import TargetPolicy, is_public
from gateway.demo import pki

PACKAGE = b"<edXMLEnvelope/>"
sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[list[bytes], TestServer]]:
    """A local endpoint (on 127.0.0.1) that records what reaches it."""
    received: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/push", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield received, server
    await server.close()


@pytest.fixture
def identity(tmp_path: Path) -> pki.Identity:
    pki.init_pki(tmp_path / "pki")
    return pki.load_identity(tmp_path / "pki", pki.GATEWAY_ID)


def delivery(url: str) -> OutboundDelivery:
    return OutboundDelivery("d-1", "doc-1", DISTRICT, PACKAGE, "application/xml", url=url)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]"])
async def test_loopback_targets_are_refused_by_default_and_nothing_is_sent(
    receiver: tuple[list[bytes], TestServer],
    identity: pki.Identity,
    host: str,
) -> None:
    received, server = receiver
    async with HttpPushAdapter(identity.key, identity.certificate) as push:
        for _ in range(2):  # a refused URL stays refused (the adapter keeps only allowed ones)
            with pytest.raises(PermanentDeliveryError) as info:
                await push.deliver(delivery(f"http://{host}:{server.port}/push"))
            assert info.value.code == "delivery.forbidden_target"
    assert received == []


async def test_a_host_allowed_by_name_is_reached_and_only_that_one(
    receiver: tuple[list[bytes], TestServer],
    identity: pki.Identity,
) -> None:
    received, server = receiver
    async with HttpPushAdapter(
        identity.key, identity.certificate, allow_private_hosts=["localhost"]
    ) as push:
        outcome = await push.deliver(delivery(f"http://localhost:{server.port}/push"))
        again = await push.deliver(delivery(f"http://localhost:{server.port}/push"))
        with pytest.raises(PermanentDeliveryError) as info:  # the same address by another name
            await push.deliver(delivery(f"http://127.0.0.1:{server.port}/push"))
    assert outcome.delivered
    assert again.delivered
    assert info.value.code == "delivery.forbidden_target"
    assert received == [PACKAGE, PACKAGE]


@pytest.mark.parametrize("url", ["ftp://example.org/x", "file:///etc/passwd", "http:///nohost"])
async def test_non_http_urls_are_permanent_bad_urls(identity: pki.Identity, url: str) -> None:
    async with HttpPushAdapter(identity.key, identity.certificate) as push:
        with pytest.raises(PermanentDeliveryError) as info:
            await push.deliver(delivery(url))
    assert info.value.code == "delivery.bad_url"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("169.254.169.254", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("fd00:ec2::254", False),
        ("fe80::1", False),
        ("::1", False),
        ("::ffff:169.254.169.254", False),
        ("64:ff9b::a9fe:a9fe", False),
        ("2002:a9fe:a9fe::1", False),
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
    ],
)
def test_which_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_an_ip_literal_is_checked_against_the_allowed_names() -> None:
    policy = TargetPolicy(["10.0.0.5"])
    assert policy.check_url("https://10.0.0.5/in").host == "10.0.0.5"
    with pytest.raises(PermanentDeliveryError):
        policy.check_url("https://10.0.0.6/in")


@sqlite_only
async def test_a_gateway_without_the_allowance_dead_letters_a_push_to_loopback(
    start_gateway: StartGateway,
    push_receiver: PushReceiver,
) -> None:
    gw = await start_gateway(
        push={DISTRICT: push_receiver.url}, env={"LGSP_PUSH__ALLOW_PRIVATE_HOSTS": ""}
    )
    signed = gw.sign(new_document(DEPARTMENT, [DISTRICT]), DEPARTMENT)
    _, answer = await gw.submit(signed, DEPARTMENT)

    view = await gw.wait_for(
        answer["id"], DEPARTMENT, lambda v: states(v)[DISTRICT] == "dead_lettered"
    )

    assert view["recipients"][0]["error_code"] == "delivery.forbidden_target"
    assert push_receiver.received == []


@sqlite_only
@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/in",
        "javascript:alert(1)",
        "http://",
        "https://exa mple.org/",
        "http://h:99999/",
        "http://[::1",
    ],
)
async def test_the_admin_api_answers_a_bad_push_url_with_400(
    start_gateway: StartGateway,
    url: str,
) -> None:
    gw = await start_gateway()
    entry = {
        "organ_id": "000.00.77.H56",
        "name": "Sở thử nghiệm",
        "kind": "state",
        "delivery": {"method": "push", "url": url},
    }
    headers = {"Authorization": f"Bearer {gw.setup.admin_token}"}
    async with gw.session.post(
        f"{gw.base_url}/api/v1/admin/participants", json=entry, headers=headers
    ) as r:
        problem = json.loads(await r.text())
    assert (r.status, problem["code"]) == (400, "admin.invalid_participant")


def test_allowed_names_are_compared_without_case_brackets_or_final_dot() -> None:
    policy = TargetPolicy(["LocalHost.", "[::1]"])
    assert policy.host_allowed("localhost")
    assert policy.host_allowed("::1")
    assert not policy.host_allowed("localhost.example")
