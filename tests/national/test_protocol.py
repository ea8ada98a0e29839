"""The shared protocol module: hashes, timestamps, header signing and checking, the client."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from service.service_kit import local_site

from adapters.national.client import NationalClient, PlatformRefusedError
from adapters.national.protocol import (
    PLATFORM_TZ,
    Operation,
    SystemCredentials,
    base_params,
    check_timestamp,
    fail_answer,
    format_timestamp,
    hash_file_matches,
    java_hex,
    java_hex_sha256,
    parse_timestamp,
    parse_to,
    raw_file_of,
    signed_headers,
    verify_signature,
)
from gateway.core.errors import AuthError, InputError, UnavailableError
from gateway.national.authentication import HeaderAuthenticator, ReplayCache

SECRET = "s3cret-ThanhHoa"
AT = datetime(2024, 3, 5, 14, 23, 1, 7000, tzinfo=PLATFORM_TZ)


def lookup(
    secret: str = SECRET, window_s: float | None = 300.0
) -> Callable[[str], SystemCredentials | None]:
    return lambda system_id: (
        SystemCredentials(system_id, secret, window_s) if system_id == "sys-h56" else None
    )


def signed(extra: dict[str, str] | None = None, secret: str = SECRET) -> CIMultiDict[str]:
    params = {**base_params("sys-h56", AT), "Content-Type": "application/json", **(extra or {})}
    return CIMultiDict(signed_headers(params, secret))


def test_java_hex_drops_leading_zeros_of_each_byte() -> None:
    assert java_hex(bytes([0x0A, 0x00, 0xFF, 0x10])) == "a0ff10"
    digest = hashlib.sha256(b"abc").digest()
    unpadded = "ba7816bf8f1cfea414140de5dae2223b0361a396177a9cb410ff61f2015ad"
    assert java_hex_sha256(b"abc") == unpadded
    assert len(java_hex_sha256(b"abc")) < 64 == len(digest.hex())


def test_hash_file_accepts_the_java_and_the_plain_hex_forms_only_of_the_same_bytes() -> None:
    data = b"<edXML/>"
    assert hash_file_matches(java_hex_sha256(data), data)
    assert hash_file_matches(hashlib.sha256(data).hexdigest().upper(), data)
    assert not hash_file_matches(java_hex_sha256(data + b" "), data)
    assert not hash_file_matches("", data)
    assert not hash_file_matches("sha256 \u00e9", data)  # not hex, not even ASCII: just no


def test_timestamp_is_ddmmyyyy_t_hhmmss_plus_four_digit_millis_in_vietnam_time() -> None:
    assert format_timestamp(AT) == "05032024T142301+0007"
    utc_same_instant = AT.astimezone(datetime.now().astimezone().tzinfo)
    assert format_timestamp(utc_same_instant) == "05032024T142301+0007"
    assert parse_timestamp("05032024T142301+0007") == AT
    assert parse_timestamp(format_timestamp()) <= datetime.now(PLATFORM_TZ)


@pytest.mark.parametrize(
    "text",
    [
        "2024-03-05T14:23:01",
        "05032024T142301",
        "05032024T142301+",
        "32132024T142301+0001",
        "05032024T142301+00001",
    ],
)
def test_a_malformed_timestamp_is_an_auth_error(text: str) -> None:
    with pytest.raises(AuthError) as caught:
        parse_timestamp(text)
    assert caught.value.code == "auth.bad_timestamp"


def test_signed_headers_carry_every_parameter_prefixed_and_a_verifiable_hmac() -> None:
    headers = signed({"docId": "A1"})
    assert headers["XroadVnpt-docId"] == "A1"
    assert headers["Content-Type"] == "application/json"
    assert headers["XroadVnpt-sign-header-key"] == "systemid;timestamp;Content-Type;docId"
    assert json.loads(headers["XroadVnpt-sign-header"])["XroadVnpt-timestamp"] == (
        "05032024T142301+0007"
    )
    request, credentials = verify_signature(headers, lookup())
    assert (request.system_id, request.get("docId")) == ("sys-h56", "A1")
    assert credentials.secret == SECRET


def test_the_hmac_is_checked_over_the_sign_header_exactly_as_received() -> None:
    sign_header = '{ "XroadVnpt-systemid" : "sys-h56",\n "XroadVnpt-to": "[\\u0022x\\u0022]" }'
    headers = CIMultiDict(
        {
            "XroadVnpt-systemid": "sys-h56",
            "XroadVnpt-to": '["x"]',
            "XroadVnpt-sign-header-key": "to;systemid",
            "XroadVnpt-sign-header": sign_header,
            "XroadVnpt-hash-header": hmac.new(
                SECRET.encode(), sign_header.encode(), hashlib.sha256
            ).hexdigest(),
        }
    )
    request, _ = verify_signature(headers, lookup())
    assert parse_to(request.get("to")) == ("x",)


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda h: h.__setitem__("XroadVnpt-docId", "B2"), "auth.tampered"),
        (lambda h: h.popall("XroadVnpt-docId"), "auth.tampered"),
        (
            lambda h: h.__setitem__("XroadVnpt-sign-header-key", "systemid;timestamp"),
            "auth.bad_sign_header",
        ),
        (lambda h: h.__setitem__("XroadVnpt-hash-header", "0" * 64), "auth.bad_hmac"),
        (lambda h: h.__setitem__("XroadVnpt-hash-header", "\u00e9" * 64), "auth.bad_hmac"),
        (lambda h: h.popall("XroadVnpt-hash-header"), "auth.unsigned"),
        (lambda h: h.__setitem__("XroadVnpt-sign-header", "[1]"), "auth.bad_sign_header"),
    ],
)
def test_tampered_headers_are_refused(
    mutate: Callable[[CIMultiDict[str]], object], code: str
) -> None:
    headers = signed({"docId": "A1"})
    mutate(headers)
    with pytest.raises(AuthError) as caught:
        verify_signature(headers, lookup())
    assert caught.value.code == code


def test_a_wrong_secret_or_an_unknown_system_is_refused() -> None:
    with pytest.raises(AuthError) as caught:
        verify_signature(signed(secret="not-the-secret"), lookup())
    assert caught.value.code == "auth.bad_hmac"
    with pytest.raises(AuthError) as caught:
        verify_signature(signed(), lambda _system: None)
    assert caught.value.code == "auth.unknown_system"


def test_the_timestamp_window_is_per_system_and_can_be_off() -> None:
    request, _ = verify_signature(signed(), lookup())
    check_timestamp(request, 300.0, AT + timedelta(seconds=299))
    check_timestamp(request, None, AT + timedelta(days=30))
    for now in (AT + timedelta(seconds=301), AT - timedelta(seconds=301)):
        with pytest.raises(AuthError) as caught:
            check_timestamp(request, 300.0, now)
        assert caught.value.code == "auth.stale_timestamp"


async def test_each_call_kind_has_its_replay_rule() -> None:
    """State changes once; a getEdoc again only as getEdoc; polls always (the SDK repeats them)."""
    auth = HeaderAuthenticator(lookup(window_s=None))
    reads = signed({"messagetype": "edoc"})
    await auth.authenticate(reads, Operation.GET_RECEIVED_EDOC_LIST)
    await auth.authenticate(reads, Operation.GET_RECEIVED_EDOC_LIST)  # identical polls
    await auth.authenticate(reads, Operation.GET_AGENCIES_LIST)
    fetch = signed({"docId": "A1", "filePath": "/store"})
    await auth.authenticate(fetch, Operation.GET_EDOC)
    await auth.authenticate(fetch, Operation.GET_EDOC)  # a retried read of the same package
    await auth.authenticate(fetch, Operation.GET_RECEIVED_EDOC_LIST)  # the next poll, same map
    ack = signed({"docId": "A1", "filePath": "/store", "docid": "A1", "status": "done"})
    await auth.authenticate(ack, Operation.UPDATE_STATUS)
    await auth.authenticate(ack, Operation.GET_RECEIVED_EDOC_LIST)  # stale docId/docid: polls
    for reused, operation in (
        (ack, Operation.UPDATE_STATUS),
        (ack, Operation.GET_EDOC),
        (fetch, Operation.UPDATE_STATUS),
        (fetch, Operation.SEND_EDOC),
    ):
        with pytest.raises(AuthError) as caught:
            await auth.authenticate(reused, operation)
        assert caught.value.code == "auth.replayed", operation


async def test_headers_of_a_call_that_failed_on_our_side_can_be_used_again() -> None:
    auth = HeaderAuthenticator(lookup(window_s=None))
    ack = signed({"docid": "A1", "status": "done"})
    request = await auth.authenticate(ack, Operation.UPDATE_STATUS)
    await auth.release(request, Operation.UPDATE_STATUS)  # e.g. the store was down
    await auth.authenticate(ack, Operation.UPDATE_STATUS)  # the SDK's retry: same headers
    with pytest.raises(AuthError):
        await auth.authenticate(ack, Operation.UPDATE_STATUS)


async def test_the_replay_cache_forgets_after_its_retention_and_stays_bounded() -> None:
    cache = ReplayCache(max_entries=2, retention_s=10.0)
    ack = Operation.UPDATE_STATUS
    assert await cache.first_use("s", "a", ack, now_s=0.0) is None
    assert await cache.first_use("s", "a", Operation.GET_EDOC, now_s=9.0) is ack
    assert await cache.first_use("other", "a", ack, now_s=9.0) is None  # per system
    assert await cache.first_use("s", "a", ack, now_s=11.0) is None  # expired
    assert await cache.first_use("s", "b", ack, now_s=11.0) is None
    assert await cache.first_use("s", "c", ack, now_s=11.0) is None  # "a" dropped: two kept
    assert await cache.first_use("s", "a", ack, now_s=12.0) is None


def test_parameter_names_are_matched_exactly_as_the_sdk_spells_them() -> None:
    request, _ = verify_signature(signed({"docid": "A1"}), lookup())
    assert request.get("docid") == "A1"
    assert request.get("docId") is None  # updateStatus's docid is not getEdoc's docId
    request, _ = verify_signature(signed({"DOCID": "A1"}), lookup())
    assert (request.get("docid"), request.get("docId")) == (None, None)


def test_a_raw_body_is_the_file_with_or_without_the_jars_crlf() -> None:
    for file in (b"<edXML/>", b"<edXML/>\r\n", b"eyJhbGciOi.x.y"):
        for hexed in (java_hex_sha256(file), hashlib.sha256(file).hexdigest()):
            assert raw_file_of(file + b"\r\n", hexed) == file  # the vendor jar's body
            assert raw_file_of(file, hexed) == file  # a raw body as it is
            assert raw_file_of(file + b"\r\n\r\n", hexed) is None  # one CRLF only
    assert raw_file_of(b"<edXML/>\r\n", java_hex_sha256(b"<other/>")) is None


def test_fail_answers_carry_the_fields_the_sdk_reads() -> None:
    assert fail_answer("x", "y", Operation.SEND_EDOC)["DocId"] == ""
    assert fail_answer("x", "y", Operation.GET_EDOC)["data"] == ""
    for listing in (
        Operation.GET_RECEIVED_EDOC_LIST,
        Operation.GET_SENT_EDOC_LIST,
        Operation.GET_AGENCIES_LIST,
    ):
        assert fail_answer("x", "y", listing)["data"] == []
    assert set(fail_answer("x", "y", Operation.UPDATE_STATUS)) == {
        "status",
        "ErrorCode",
        "ErrorDesc",
    }


def test_to_is_a_json_array_and_a_bare_list_is_tolerated() -> None:
    assert parse_to('["000.00.00.H41","000.00.00.H41", "000.00.04.H41"]') == (
        "000.00.00.H41",
        "000.00.04.H41",
    )
    assert parse_to("000.00.00.H41, 000.00.04.H41") == ("000.00.00.H41", "000.00.04.H41")
    assert parse_to(None) == ()
    with pytest.raises(InputError):
        parse_to('["x", 1]')


# --- the client's error mapping against a real server --------------------------------------------


@pytest.fixture
async def scripted_platform() -> AsyncIterator[tuple[str, list[web.Response]]]:
    """A server answering every call with the next scripted response."""
    script: list[web.Response] = []

    async def handle(_request: web.Request) -> web.Response:
        return script.pop(0)

    app = web.Application()
    app.router.add_post("/XrdAdapter/adapter/{op}", handle)
    async with local_site(app) as base_url:
        yield f"{base_url}/XrdAdapter/adapter", script


async def test_client_errors_map_to_the_gateway_tree(
    scripted_platform: tuple[str, list[web.Response]],
) -> None:
    endpoint, script = scripted_platform
    client = NationalClient(endpoint, "sys-h56", SECRET, timeout_s=5)
    fail = {"status": "FAIL", "ErrorCode": "E42", "ErrorDesc": "Không tìm thấy"}
    script.extend(
        [
            web.json_response(fail, status=200),
            web.json_response({**fail, "ErrorCode": "auth.bad_hmac"}, status=401),
            web.Response(status=502, text="<html>bad gateway</html>"),
            web.Response(status=200, text="<html>proxy login</html>"),
            web.json_response({"status": "OK", "ErrorCode": "0", "ErrorDesc": ""}),
        ]
    )
    with pytest.raises(PlatformRefusedError) as refused:
        await client.get_edoc("X")
    assert (refused.value.code, refused.value.error_code, refused.value.error_desc) == (
        "national.refused",
        "E42",
        "Không tìm thấy",
    )
    with pytest.raises(AuthError) as auth:
        await client.update_status("X", "done")
    assert auth.value.code == "auth.national_rejected"
    for _ in range(2):
        with pytest.raises(UnavailableError) as down:
            await client.get_received_edoc_list()
        assert down.value.code == "unavailable.national"
    assert await client.get_received_edoc_list("status") == []  # OK without data: empty list
    await client.aclose()


async def test_an_unreachable_platform_is_unavailable() -> None:
    async with aiohttp.ClientSession() as session:
        client = NationalClient(
            "http://127.0.0.1:9/XrdAdapter/adapter", "sys-h56", SECRET, session=session, timeout_s=2
        )
        with pytest.raises(UnavailableError) as caught:
            await client.send_edoc(b"<edXML/>", from_="000.00.04.H56", to=["000.00.00.H41"])
        assert caught.value.code == "unavailable.national"
        await client.aclose()
        assert not session.closed  # a session given to the client stays the caller's
