"""Southbound access is bound to the caller: replayed headers, other systems' packages,
acknowledged packages, parameter names, network allow-lists, and a replay memory that survives.

Driven by ``national_kit.JavaSdkClient`` (the vendor jar's wire behaviour) against whole demo
gateways; a captured call is re-sent as is with ``post_raw``.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace
from typing import Any

from national_kit import SdkFactory
from service.service_kit import (  # noqa: F401 (start_gateway is a fixture)
    COMMUNE,
    Gateway,
    StartGateway,
    free_port,
    new_document,
    start_gateway,
)
from southbound_kit import (
    DEPARTMENT,
    DISTRICT,
    delivered_to,
    only_item,
    post_raw,
    sdk_for,
    sqlite_only,
)

from gateway.service.runner import Role, Service
from gateway.web.keys import LIFECYCLE


async def deliver_one(gateway: Gateway, java_sdk: SdkFactory) -> bytes:
    """The department sends one document to the district (as the jar does); its bytes."""
    department = sdk_for(java_sdk, gateway, DEPARTMENT)
    signed = gateway.sign(new_document(DEPARTMENT, [DISTRICT]), DEPARTMENT)
    status, sent = await department.send_edoc(signed, "vb.edxml", from_=DEPARTMENT, to=[DISTRICT])
    assert status == 200, sent
    await gateway.wait_for(sent["DocId"], DEPARTMENT, delivered_to(DISTRICT))
    return signed


def code_of(result: tuple[int, dict[str, Any]]) -> tuple[int, str]:
    status, answer = result
    return status, str(answer["ErrorCode"])


@sqlite_only
async def test_captured_update_status_headers_cannot_fetch_the_package(
    start_gateway: StartGateway,  # noqa: F811
    java_sdk: SdkFactory,
) -> None:
    """Issue 9's defect: the used headers of an updateStatus, sent to getEdoc, returned the
    package (its map still holds the docId that getEdoc fetched)."""
    gateway = await start_gateway()
    signed = await deliver_one(gateway, java_sdk)
    district = sdk_for(java_sdk, gateway, DISTRICT)
    item = await only_item(district, "edoc")
    status, got = await district.get_edoc(item["docId"], "/opt/edoc")
    assert (status, base64.b64decode(got["data"])) == (200, signed)
    fetch = district.sent[-1]
    status, again = await post_raw(gateway, "getEdoc", fetch)  # a retry of the same read
    assert (status, base64.b64decode(again["data"])) == (200, signed)
    assert code_of(await post_raw(gateway, "updateStatus", fetch)) == (401, "auth.replayed")

    status, _ = await district.update_status(item["docId"], "done")
    assert status == 200
    ack = district.sent[-1]
    assert ack["XroadVnpt-docId"] == item["docId"]  # accumulated from getEdoc, and signed
    assert code_of(await post_raw(gateway, "getEdoc", ack)) == (401, "auth.replayed")
    assert code_of(await post_raw(gateway, "updateStatus", ack)) == (401, "auth.replayed")
    assert code_of(await post_raw(gateway, "sendEdoc", ack)) == (401, "auth.replayed")
    # The SDK's next polls carry the same map (stale docId/docid): they still work.
    for _ in range(2):
        status, listed = await district.get_received_edoc_list("edoc")
        assert (status, listed["data"]) == (200, [])
        assert district.sent[-1]["XroadVnpt-hash-header"] == ack["XroadVnpt-hash-header"]


@sqlite_only
async def test_parameter_names_are_matched_exactly(
    start_gateway: StartGateway,  # noqa: F811
    java_sdk: SdkFactory,
) -> None:
    """``docid`` (updateStatus) is not ``docId`` (getEdoc), nor is any other spelling."""
    gateway = await start_gateway()
    signed = await deliver_one(gateway, java_sdk)
    doc_id = (await only_item(sdk_for(java_sdk, gateway, DISTRICT), "edoc"))["docId"]
    for operation, params in (
        ("getEdoc", {"docid": doc_id}),
        ("getEdoc", {"DocId": doc_id}),
        ("updateStatus", {"docId": doc_id, "status": "done"}),
        ("updateStatus", {"DOCID": doc_id, "status": "done"}),
    ):
        fresh = sdk_for(java_sdk, gateway, DISTRICT)  # nothing accumulated
        result = await fresh.json_call(operation, params)
        assert code_of(result) == (400, "national.missing_param"), (operation, params)
    district = sdk_for(java_sdk, gateway, DISTRICT)
    status, got = await district.get_edoc(doc_id, "/opt/edoc")
    assert (status, base64.b64decode(got["data"])) == (200, signed)
    assert (await only_item(district, "edoc"))["docId"] == doc_id  # not acknowledged


@sqlite_only
async def test_a_system_reads_only_its_participants_packages_and_from_its_networks(
    start_gateway: StartGateway,  # noqa: F811
    java_sdk: SdkFactory,
) -> None:
    gateway = await start_gateway()
    await deliver_one(gateway, java_sdk)
    doc_id = (await only_item(sdk_for(java_sdk, gateway, DISTRICT), "edoc"))["docId"]
    for other in (DEPARTMENT, COMMUNE):  # the sender, and a participant below the recipient
        sdk = sdk_for(java_sdk, gateway, other)
        status, listed = await sdk.get_received_edoc_list("edoc")
        assert (status, listed["data"]) == (200, [])
        assert code_of(await sdk.get_edoc(doc_id, "/x")) == (404, "national.no_such_doc")
        assert code_of(await sdk.update_status(doc_id, "done")) == (404, "national.no_such_doc")
    assert (await only_item(sdk_for(java_sdk, gateway, DISTRICT), "edoc"))["docId"] == doc_id

    systems = gateway.settings.southbound.systems_path
    assert systems is not None
    intact = systems.read_text(encoding="utf-8")
    allow = f'organ_id = "{DISTRICT}"\nallowed_networks = ["10.0.0.0/8", "fd00::/8"]\n'
    systems.write_text(intact.replace(f'organ_id = "{DISTRICT}"\n', allow), encoding="utf-8")
    district = sdk_for(java_sdk, gateway, DISTRICT)
    assert code_of(await district.get_received_edoc_list("edoc")) == (403, "acl.network")
    assert code_of(await district.get_edoc(doc_id, "/x")) == (403, "acl.network")
    status, _ = await sdk_for(java_sdk, gateway, DEPARTMENT).get_agencies_list()
    assert status == 200  # the department has no list: any address
    loopback = allow.replace('"10.0.0.0/8"', '"127.0.0.0/8"')
    systems.write_text(
        intact.replace(f'organ_id = "{DISTRICT}"\n', loopback) + "\n", encoding="utf-8"
    )
    status, got = await district.get_edoc(doc_id, "/x")  # refused before it was remembered
    assert status == 200, got


@sqlite_only
async def test_an_acknowledged_package_is_not_served_after_the_grace(
    start_gateway: StartGateway,  # noqa: F811
    java_sdk: SdkFactory,
) -> None:
    gateway = await start_gateway(env={"LGSP_SOUTHBOUND__ACKED_GRACE_S": "1"})
    assert gateway.settings.southbound.acked_grace_s == 1.0
    signed = await deliver_one(gateway, java_sdk)
    district = sdk_for(java_sdk, gateway, DISTRICT)
    doc_id = (await only_item(district, "edoc"))["docId"]
    assert (await district.get_edoc(doc_id, "/a"))[0] == 200
    assert (await district.update_status(doc_id, "done"))[0] == 200
    status, got = await district.get_edoc(doc_id, "/b")  # within the grace: still served
    assert (status, base64.b64decode(got["data"])) == (200, signed)
    await asyncio.sleep(1.2)
    assert code_of(await district.get_edoc(doc_id, "/c")) == (404, "national.no_such_doc")


async def test_the_replay_memory_is_shared_by_gateways_and_survives_a_restart(
    start_gateway: StartGateway,  # noqa: F811
    java_sdk: SdkFactory,
) -> None:
    """Two gateway processes on one store (SQLite and PostgreSQL), then a restarted one."""
    gateway = await start_gateway()
    await deliver_one(gateway, java_sdk)
    district = sdk_for(java_sdk, gateway, DISTRICT)
    doc_id = (await only_item(district, "edoc"))["docId"]
    assert (await district.get_edoc(doc_id, "/opt/edoc"))[0] == 200
    assert (await district.update_status(doc_id, "done"))[0] == 200
    ack = district.sent[-1]

    settings = replace(gateway.settings, http=replace(gateway.settings.http, port=free_port()))
    other = Gateway(
        gateway.setup, settings, Service(settings, Role.GATEWAY, drain_grace_s=0), gateway.session
    )
    await other.service.start()
    try:
        for operation in ("updateStatus", "getEdoc"):
            assert code_of(await post_raw(other, operation, ack)) == (401, "auth.replayed")
    finally:
        await other.service.stop()
    restarted = Gateway(
        gateway.setup, settings, Service(settings, Role.GATEWAY, drain_grace_s=0), gateway.session
    )
    await restarted.service.start()
    try:
        for operation in ("updateStatus", "getEdoc"):
            assert code_of(await post_raw(restarted, operation, ack)) == (401, "auth.replayed")
        status, listed = await post_raw(restarted, "getReceivedEdocList", ack)  # the next poll
        assert (status, listed["data"]) == (200, [])
    finally:
        await restarted.service.stop()


@sqlite_only
async def test_a_call_that_failed_on_our_side_can_be_retried_with_the_same_headers(
    start_gateway: StartGateway,  # noqa: F811
    java_sdk: SdkFactory,
) -> None:
    """The SDK retries with byte-identical headers: a retryable failure must not burn them."""
    gateway = await start_gateway()
    assert gateway.service.app is not None
    lifecycle = gateway.service.app[LIFECYCLE]
    department = sdk_for(java_sdk, gateway, DEPARTMENT)
    signed = gateway.sign(new_document(DEPARTMENT, [DISTRICT]), DEPARTMENT)
    lifecycle.draining = True
    try:
        status, answer = await department.send_edoc(
            signed, "vb.edxml", from_=DEPARTMENT, to=[DISTRICT]
        )
    finally:
        lifecycle.draining = False
    assert (status, answer["ErrorCode"], answer["DocId"]) == (503, "unavailable.shutting_down", "")
    status, answer = await post_raw(
        gateway, "sendEdoc", department.sent[-1], body=department.bodies[-1]
    )
    assert (status, answer["status"]) == (200, "OK"), answer
    again = await post_raw(gateway, "sendEdoc", department.sent[-1], body=department.bodies[-1])
    assert code_of(again) == (401, "auth.replayed")
