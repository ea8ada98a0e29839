"""The national simulator as a real server: routing between provinces, HMAC checks, durability."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from national_kit import (
    H41_SYSTEM,
    H56_SYSTEM,
    VN,
    RunningSimulator,
    SdkFactory,
    java_unpadded_hex,
)

from adapters.national.client import NationalClient, PlatformRefusedError
from adapters.national.protocol import base_params, signed_headers
from adapters.national.records import Agency
from gateway.core.errors import AuthError
from gateway.edxml import build
from gateway.edxml.model import Organization
from gateway.edxml.xml_codec import serialize_package

DEPARTMENT_H56, PROVINCE_H41 = "000.00.04.H56", "000.00.00.H41"


def client(sim: RunningSimulator, system: str, secret: str | None = None) -> NationalClient:
    return NationalClient(sim.endpoint, system, secret or sim.secrets[system], timeout_s=10)


def package(sender: str = DEPARTMENT_H56, recipient: str = PROVINCE_H41) -> bytes:
    doc = build.new_document(
        Organization(sender, organ_name="Sở"),
        [Organization(recipient, organ_name="UBND")],
        code_number="12",
        code_notation="UBND-VP",
        subject="Thử nghiệm",
    )
    return serialize_package(doc)


async def raw_call(
    sim: RunningSimulator,
    operation: str,
    params: dict[str, str],
    *,
    system: str = H56_SYSTEM,
    body: Any = b"",
    tamper: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    headers = signed_headers({**base_params(system), **params}, sim.secrets[system])
    headers.update(tamper or {})
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sim.endpoint}/{operation}", data=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_a_package_goes_from_one_province_to_the_other_and_is_acknowledged(
    national_sim: RunningSimulator,
) -> None:
    h56, h41 = client(national_sim, H56_SYSTEM), client(national_sim, H41_SYSTEM)
    data = package()
    sent_id = await h56.send_edoc(data, from_=DEPARTMENT_H56, to=[PROVINCE_H41])
    assert await h56.get_received_edoc_list() == []
    assert await h41.get_received_edoc_list("status") == []
    [item] = await h41.get_received_edoc_list("edoc")
    assert (item.from_, item.to, item.message_type, item.status) == (
        DEPARTMENT_H56,
        PROVINCE_H41,
        "edoc",
        "pending",
    )
    assert item.doc_id != sent_id  # the receiver's docId is its own
    assert await h41.get_edoc(item.doc_id) == data
    with pytest.raises(PlatformRefusedError) as not_theirs:
        await h56.get_edoc(item.doc_id)
    assert not_theirs.value.error_code == "national.no_such_doc"
    await h41.update_status(item.doc_id, "done")
    assert await h41.get_received_edoc_list() == []
    [sent] = await h56.get_sent_edoc_list()
    assert (sent.sender_doc_id, sent.receiver_doc_id, sent.to_code, sent.receive_status) == (
        sent_id,
        item.doc_id,
        PROVINCE_H41,
        "done",
    )

    await h41.send_edoc(b"<status/>", from_=PROVINCE_H41, to=[DEPARTMENT_H56], messagetype="status")
    assert await h56.get_received_edoc_list("edoc") == []
    [status] = await h56.get_received_edoc_list("status")
    await h56.update_status(status.doc_id, "fail")  # fail also ends it
    assert await h56.get_received_edoc_list("status") == []
    for c in (h56, h41):
        await c.aclose()


async def test_concurrent_reads_and_acknowledgements_each_get_their_own_answer(
    national_sim: RunningSimulator,
) -> None:
    """Concurrent getEdoc and updateStatus calls are served together (one transaction per group):
    each still gets its own package or refusal, and only the caller's entries change."""
    h56, h41 = client(national_sim, H56_SYSTEM), client(national_sim, H41_SYSTEM)
    to_h41 = [package(recipient=PROVINCE_H41) + f"<!-- {n} -->".encode() for n in range(6)]
    to_h56 = [package(PROVINCE_H41, DEPARTMENT_H56) + f"<!-- {n} -->".encode() for n in range(6)]
    await asyncio.gather(
        *(h56.send_edoc(data, from_=DEPARTMENT_H56, to=[PROVINCE_H41]) for data in to_h41),
        *(h41.send_edoc(data, from_=PROVINCE_H41, to=[DEPARTMENT_H56]) for data in to_h56),
    )
    for_h41, for_h56 = await h41.get_received_edoc_list(), await h56.get_received_edoc_list()
    reads = await asyncio.gather(
        *(h41.get_edoc(item.doc_id) for item in for_h41),
        *(h56.get_edoc(item.doc_id) for item in for_h56),
        *(h56.get_edoc(item.doc_id) for item in for_h41[:3]),  # not H56's
        h41.get_edoc("no-such-doc"),
        return_exceptions=True,
    )
    assert sorted(reads[:12]) == sorted(to_h41 + to_h56)  # type: ignore[type-var]
    assert [getattr(r, "error_code", r) for r in reads[12:]] == ["national.no_such_doc"] * 4

    acks = await asyncio.gather(
        *(h41.update_status(item.doc_id, "done") for item in for_h41[:4]),
        *(h56.update_status(item.doc_id, "fail") for item in for_h41[4:]),  # not H56's
        h56.update_status(for_h56[0].doc_id, "done"),
        h56.update_status(for_h56[1].doc_id, "fail"),
        return_exceptions=True,
    )
    assert acks[:4] == [None] * 4
    assert [getattr(r, "error_code", r) for r in acks[4:6]] == ["national.no_such_doc"] * 2
    assert acks[6:] == [None, None]
    assert [i.doc_id for i in await h41.get_received_edoc_list()] == [i.doc_id for i in for_h41[4:]]
    sent = {i.receiver_doc_id: i.receive_status for i in await h41.get_sent_edoc_list()}
    assert (sent[for_h56[0].doc_id], sent[for_h56[1].doc_id]) == ("done", "fail")
    assert sorted(sent.values()) == ["done", "fail"] + ["pending"] * 4
    for c in (h56, h41):
        await c.aclose()


async def test_recipients_come_from_the_package_without_to_and_unknown_ones_are_refused(
    national_sim: RunningSimulator,
) -> None:
    data = package(recipient="000.00.07.H41")
    form = aiohttp.FormData()
    form.add_field("file_doc", data, filename="a.edxml")
    status, answer = await raw_call(
        national_sim,
        "sendEdoc",
        {"messagetype": "edoc", "hash-file": java_unpadded_hex(data)},
        body=form,
    )
    assert (status, answer["status"], answer["ErrorCode"]) == (200, "OK", "0")
    h41 = client(national_sim, H41_SYSTEM)
    [item] = await h41.get_received_edoc_list()
    assert (item.to, item.from_) == ("000.00.07.H41", DEPARTMENT_H56)

    h56 = client(national_sim, H56_SYSTEM)
    with pytest.raises(PlatformRefusedError) as unknown:
        await h56.send_edoc(data, from_=DEPARTMENT_H56, to=["000.00.00.G99"])
    assert unknown.value.error_code == "national.unknown_recipient"
    form = aiohttp.FormData()
    form.add_field("file_doc", data, filename="a.edxml")
    status, answer = await raw_call(
        national_sim,
        "sendEdoc",
        {"to": f'["{PROVINCE_H41}"]', "hash-file": java_unpadded_hex(data + b"x")},
        body=form,
    )
    assert (status, answer["status"]) == (400, "FAIL")
    assert answer["ErrorCode"] == "national.hash_mismatch"
    await h41.aclose()
    await h56.aclose()


async def test_hmac_failures_get_401_with_a_json_answer(
    national_sim: RunningSimulator,
    java_sdk: SdkFactory,
) -> None:
    wrong = client(national_sim, H56_SYSTEM, secret="guessed")
    with pytest.raises(AuthError) as caught:
        await wrong.get_received_edoc_list()
    assert caught.value.code == "auth.national_rejected"
    await wrong.aclose()
    listing = {"servicetype": "eDoc", "messagetype": "edoc"}
    status, answer = await raw_call(
        national_sim, "getReceivedEdocList", listing, tamper={"XroadVnpt-messagetype": "status"}
    )
    assert (status, answer["status"], answer["ErrorCode"]) == (401, "FAIL", "auth.tampered")

    # Nghệ An allows 60 s: an SDK object made two minutes ago is refused, Thanh Hóa's (1 h) is not.
    old = datetime.now(VN) - timedelta(minutes=2)
    stale = java_sdk(
        national_sim.endpoint, H41_SYSTEM, national_sim.secrets[H41_SYSTEM], created_at=old
    )
    status, answer = await stale.get_received_edoc_list("edoc")
    assert (status, answer["ErrorCode"]) == (401, "auth.stale_timestamp")
    ageing = java_sdk(
        national_sim.endpoint, H56_SYSTEM, national_sim.secrets[H56_SYSTEM], created_at=old
    )
    assert (await ageing.get_received_edoc_list("edoc"))[0] == 200

    ack = {"docid": "no-such-doc", "status": "done"}
    headers = signed_headers({**base_params(H56_SYSTEM), **ack}, national_sim.secrets[H56_SYSTEM])
    async with aiohttp.ClientSession() as session:
        for expected in ((404, "national.no_such_doc"), (401, "auth.replayed")):
            async with session.post(
                f"{national_sim.endpoint}/updateStatus", headers=headers
            ) as response:
                assert (response.status, (await response.json())["ErrorCode"]) == expected


async def test_nothing_is_lost_across_a_restart(national_sim: RunningSimulator) -> None:
    h56, h41 = client(national_sim, H56_SYSTEM), client(national_sim, H41_SYSTEM)
    first, second = package(), package()
    await h56.send_edoc(first, from_=DEPARTMENT_H56, to=[PROVINCE_H41])
    await h56.send_edoc(second, from_=DEPARTMENT_H56, to=[PROVINCE_H41])
    await h41.register_agency(
        Agency(code="000.00.00.K99", name="Bộ thử nghiệm", pcode=PROVINCE_H41, mail="vt@k99.gov.vn")
    )
    items = await h41.get_received_edoc_list()
    await h41.update_status(items[0].doc_id, "done")

    await national_sim.restart()
    [left] = await h41.get_received_edoc_list()
    assert left.doc_id == items[1].doc_id
    assert await h41.get_edoc(left.doc_id) == second
    agencies = {a.code: a for a in await h56.get_agencies_list()}
    assert agencies["000.00.00.K99"].mail == "vt@k99.gov.vn"
    assert PROVINCE_H41 in agencies  # listed in the configuration
    await h56.send_edoc(first, from_=DEPARTMENT_H56, to=["000.00.00.K99"])  # routed by agency
    assert len(await h41.get_received_edoc_list()) == 2
    with pytest.raises(PlatformRefusedError) as taken:
        await h56.register_agency(Agency(code="000.00.00.K99", name="Không phải của tôi"))
    assert taken.value.error_code == "national.agency_taken"
    await h56.aclose()
    await h41.aclose()


async def test_the_java_sdk_talks_to_the_simulator(
    national_sim: RunningSimulator,
    java_sdk: SdkFactory,
) -> None:
    h56 = java_sdk(national_sim.endpoint, H56_SYSTEM, national_sim.secrets[H56_SYSTEM])
    h41 = java_sdk(national_sim.endpoint, H41_SYSTEM, national_sim.secrets[H41_SYSTEM])
    data = package()
    status, sent = await h56.send_edoc(data, "vb.edxml", from_=DEPARTMENT_H56, to=[PROVINCE_H41])
    assert (status, sent["status"], sent["ErrorCode"]) == (200, "OK", "0")
    assert sent["DocId"]
    _, listed = await h41.get_received_edoc_list("edoc")
    [item] = listed["data"]
    _, got = await h41.get_edoc(item["docId"], "/var/edoc/store")
    assert base64.b64decode(got["data"]) == data
    _, acked = await h41.update_status(item["docId"], "done")
    assert acked["status"] == "OK"
    _, listed = await h41.get_received_edoc_list("edoc")
    assert listed["data"] == []
