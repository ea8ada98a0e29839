"""The national delivery adapter against the simulator (a real server) and failing endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from national_kit import H41_SYSTEM, H56_SYSTEM, RunningSimulator
from provinces import organization
from service.service_kit import local_site

from adapters.base import (
    DeliveryOutcome,
    OutboundDelivery,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from adapters.national.adapter import NationalAdapter
from adapters.national.client import NationalClient
from gateway.core.errors import ConfigError
from gateway.core.settings import NationalSettings
from gateway.edxml import build
from gateway.edxml.model import StatusCode
from gateway.edxml.xml_codec import serialize_package
from gateway.national.connection import national_client

DEPARTMENT, PROVINCE_H41 = "000.00.04.H56", "000.00.00.H41"


def adapter(endpoint: str, secret: str, system_id: str = H56_SYSTEM) -> NationalAdapter:
    return NationalAdapter(NationalClient(endpoint, system_id, secret, timeout_s=5))


def outbound(
    package: bytes, recipient: str = PROVINCE_H41, content_type: str = "application/xml"
) -> OutboundDelivery:
    return OutboundDelivery(
        delivery_id="d-1",
        document_id="doc-1",
        organ_id=recipient,
        package=package,
        content_type=content_type,
    )


def document(recipient: str = PROVINCE_H41) -> bytes:
    doc = build.new_document(
        organization(DEPARTMENT),
        [organization(recipient)],
        code_number="15",
        code_notation="SNV-VP",
        subject="Liên thông",
    )
    return serialize_package(doc)


async def deliver(adapter: NationalAdapter, delivery: OutboundDelivery) -> DeliveryOutcome:
    async with adapter:
        return await adapter.deliver(delivery)


async def test_a_document_is_sent_as_received_to_its_one_recipient(
    national_sim: RunningSimulator,
) -> None:
    package = document()
    outcome = await deliver(
        adapter(national_sim.endpoint, national_sim.secrets[H56_SYSTEM]), outbound(package)
    )

    assert outcome.delivered
    receiver = NationalClient(national_sim.endpoint, H41_SYSTEM, national_sim.secrets[H41_SYSTEM])
    [item] = await receiver.get_received_edoc_list("edoc")
    assert (item.from_, item.to, item.message_type) == (DEPARTMENT, PROVINCE_H41, "edoc")
    assert await receiver.get_edoc(item.doc_id) == package  # the sender's bytes, unchanged
    await receiver.aclose()
    sent = NationalClient(national_sim.endpoint, H56_SYSTEM, national_sim.secrets[H56_SYSTEM])
    [entry] = await sent.get_sent_edoc_list("edoc")
    await sent.aclose()
    assert outcome.detail == f"national DocId {entry.sender_doc_id}"


async def test_a_status_package_travels_as_messagetype_status(
    national_sim: RunningSimulator,
) -> None:
    original = build.new_document(
        organization(PROVINCE_H41),
        [organization(DEPARTMENT)],
        code_number="7",
        code_notation="UBND",
        subject="Gửi Sở",
    )
    status = serialize_package(
        build.status_for(original, organization(DEPARTMENT), StatusCode.ACCEPTANCE)
    )

    await deliver(
        adapter(national_sim.endpoint, national_sim.secrets[H56_SYSTEM]), outbound(status)
    )

    receiver = NationalClient(national_sim.endpoint, H41_SYSTEM, national_sim.secrets[H41_SYSTEM])
    assert await receiver.get_received_edoc_list("edoc") == []
    [item] = await receiver.get_received_edoc_list("status")
    assert (item.from_, item.to) == (DEPARTMENT, PROVINCE_H41)
    await receiver.aclose()


async def test_a_recipient_no_system_owns_is_refused_for_good(
    national_sim: RunningSimulator,
) -> None:
    with pytest.raises(PermanentDeliveryError) as refused:
        await deliver(
            adapter(national_sim.endpoint, national_sim.secrets[H56_SYSTEM]),
            outbound(document("000.00.00.H29"), recipient="000.00.00.H29"),
        )
    assert refused.value.code == "delivery.national_refused"
    assert "national.unknown_recipient" in refused.value.message
    assert not refused.value.retryable


async def test_an_unreachable_platform_is_transient(national_sim: RunningSimulator) -> None:
    await national_sim.simulator.stop()
    with pytest.raises(TransientDeliveryError) as down:
        await deliver(
            adapter(national_sim.endpoint, national_sim.secrets[H56_SYSTEM]), outbound(document())
        )
    assert down.value.code == "delivery.national_unavailable"
    assert down.value.retryable


@pytest.fixture
async def failing_platform() -> AsyncIterator[str]:
    """A platform endpoint that answers every call with 503 and an HTML page."""

    async def unavailable(_: web.Request) -> web.Response:
        return web.Response(
            status=503, text="<html>Service Unavailable</html>", content_type="text/html"
        )

    app = web.Application()
    app.router.add_post("/XrdAdapter/adapter/{operation}", unavailable)
    async with local_site(app) as base_url:
        yield f"{base_url}/XrdAdapter/adapter"


async def test_a_platform_answering_5xx_is_transient(failing_platform: str) -> None:
    with pytest.raises(TransientDeliveryError) as down:
        await deliver(adapter(failing_platform, "secret"), outbound(document()))
    assert down.value.code == "delivery.national_unavailable"


async def test_refused_credentials_are_retried_later(national_sim: RunningSimulator) -> None:
    with pytest.raises(TransientDeliveryError) as refused:
        await deliver(adapter(national_sim.endpoint, "not-the-secret"), outbound(document()))
    assert refused.value.code == "delivery.national_auth"
    assert refused.value.retry_after_s is not None
    assert refused.value.retry_after_s >= 60


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "application/jose"),
        (b"<edXML><unfinished", "application/xml"),
    ],
)
async def test_what_the_platform_cannot_carry_is_refused_without_a_call(
    failing_platform: str,
    body: bytes,
    content_type: str,
) -> None:
    # the endpoint would answer 503 (transient): a permanent refusal proves no call was made
    with pytest.raises(PermanentDeliveryError) as refused:
        await deliver(
            adapter(failing_platform, "secret"), outbound(body, content_type=content_type)
        )
    assert refused.value.code == "delivery.national_format"


async def test_the_secret_can_come_from_a_file(
    national_sim: RunningSimulator,
    tmp_path: Path,
) -> None:
    secret_file = tmp_path / "national.secret"
    secret_file.write_text(national_sim.secrets[H56_SYSTEM] + "\n# rotated 2025-07\n")
    conf = NationalSettings(
        enabled=True, endpoint=national_sim.endpoint, system_id=H56_SYSTEM, secret_file=secret_file
    )
    outcome = await deliver(NationalAdapter(national_client(conf)), outbound(document()))
    assert outcome.delivered
    secret_file.write_text("\n")
    with pytest.raises(ConfigError) as empty:
        national_client(conf)
    assert empty.value.path == "national.secret_file"
