"""The national platform's REST protocol (VDXP SDK): HMAC header signing, timestamps, answers.

One module for the three users of the protocol: the client (``client.py``), the simulator
(``simulator.py``) and the gateway's southbound server (``southbound.py``). The wire form is the
one of the national SDK's Java client (reference §3.1a):

- every call parameter ``k: v`` travels as the header ``XroadVnpt-k: v``; the signed set is the
  compact JSON ``{"XroadVnpt-k": v, …}`` in ``XroadVnpt-sign-header``, the unprefixed names joined
  by ``;`` in ``XroadVnpt-sign-header-key``, and ``XroadVnpt-hash-header`` is the lowercase hex of
  HMAC-SHA256(secret, sign-header) — verified over the sign-header string *as received*;
- ``systemid`` and ``timestamp`` (``ddMMyyyy'T'HHmmss+SSSS``, the JVM's local time, set once per
  SDK object: it ages, and its zone is whatever the JVM's is) are in every call;
- ``sendEdoc``'s body is the file (raw, the vendor jar adding CRLF; or a multipart ``file_doc``);
- answers are JSON ``{"status": "OK"|"FAIL", "ErrorCode": "0"|<code>, "ErrorDesc": …, …}``, each
  with the field its caller reads (``DocId``, ``data``), FAIL answers included.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Protocol

from gateway.core.errors import AuthError, InputError, LgspError

PLATFORM_TZ = timezone(timedelta(hours=7), "ICT")  # the SDK formats the JVM's local time
TIMESTAMP_FORMAT = "%d%m%YT%H%M%S"  # then "+SSSS": the milliseconds on 4 digits
HEADER_PREFIX = "XroadVnpt-"
SIGN_HEADER = "XroadVnpt-sign-header"
SIGN_HEADER_KEY = "XroadVnpt-sign-header-key"
HASH_HEADER = "XroadVnpt-hash-header"
VERSION_HEADER = "XroadVnpt-version"
SDK_VERSION = "3.0.201608"
SDK_USER_AGENT = "JAVASDKAgent/1.0.0 XRoad/VPCP"
FILE_PART = "file_doc"  # the multipart field of sendEdoc
DEFAULT_ENDPOINT_PATH = "/XrdAdapter/adapter"
DEFAULT_TIMESTAMP_WINDOW_S = 3600.0  # the simulator's default; the southbound's is none
OK_CODE = "0"


class Operation(StrEnum):
    """The calls, by the last segment of their path (``POST {endpoint}/{operation}``)."""

    SEND_EDOC = "sendEdoc"
    GET_RECEIVED_EDOC_LIST = "getReceivedEdocList"
    GET_SENT_EDOC_LIST = "getSentEdocList"
    GET_EDOC = "getEdoc"
    UPDATE_STATUS = "updateStatus"
    GET_AGENCIES_LIST = "getAgenciesList"
    REGISTER_AGENCY = "registerAgency"

    @property
    def changes_state(self) -> bool:
        """Calls whose replay would act twice; the Java SDK repeats identical reads legitimately."""
        return self in (Operation.SEND_EDOC, Operation.UPDATE_STATUS, Operation.REGISTER_AGENCY)

    def answer_fields(self) -> dict[str, object]:
        """The fields the SDK reads from this call's answer, empty (added to FAIL answers)."""
        if self is Operation.SEND_EDOC:
            return {"DocId": ""}
        if self is Operation.GET_EDOC:
            return {"data": ""}
        if self in (
            Operation.GET_RECEIVED_EDOC_LIST,
            Operation.GET_SENT_EDOC_LIST,
            Operation.GET_AGENCIES_LIST,
        ):
            return {"data": []}
        return {}


class MessageType(StrEnum):
    EDOC = "edoc"  # a document package
    STATUS = "status"  # a status package


class AckStatus(StrEnum):
    """``updateStatus``: transport-level acknowledgement; both take the item off the list."""

    DONE = "done"
    FAIL = "fail"


class Param(StrEnum):
    """Parameter (header) names as the SDK spells them; note ``docId`` versus ``docid``."""

    SYSTEM_ID = "systemid"
    TIMESTAMP = "timestamp"
    FROM = "from"
    TO = "to"
    SERVICE_TYPE = "servicetype"
    MESSAGE_TYPE = "messagetype"
    HASH_FILE = "hash-file"
    DOC_ID = "docId"  # getEdoc
    ACK_DOC_ID = "docid"  # updateStatus
    STATUS = "status"
    CONTENT_TYPE = "Content-Type"


class HashFileError(InputError):
    """The uploaded file is not the one the signed ``hash-file`` header names."""

    default_code = "national.hash_mismatch"


# --- hashes and timestamps -----------------------------------------------------------------------


def java_hex(digest: bytes) -> str:
    """Hex as the SDK writes it: ``Integer.toHexString(b & 0xFF)``, no zero padding per byte."""
    return "".join(format(b, "x") for b in digest)


def java_hex_sha256(data: bytes) -> str:
    """The SDK's ``hash-file`` header: SHA-256 of the file in :func:`java_hex` form."""
    return java_hex(hashlib.sha256(data).digest())


def hash_file_matches(given: str, data: bytes) -> bool:
    """``given`` is the SHA-256 of ``data`` in the SDK's unpadded form or in plain hex."""
    digest = hashlib.sha256(data).digest()
    candidate = given.strip().lower().encode("utf-8")
    return any(
        hmac.compare_digest(candidate, form.encode("ascii"))
        for form in (java_hex(digest), digest.hex())
    )


def raw_file_of(body: bytes, given: str) -> bytes | None:
    """The file in a raw sendEdoc body, by ``hash-file``: the body less one trailing CRLF (the
    vendor jar appends it) or the whole body, whichever the hash names; ``None`` if neither."""
    if body.endswith(b"\r\n") and hash_file_matches(given, body[:-2]):
        return body[:-2]
    return body if hash_file_matches(given, body) else None


def format_timestamp(at: datetime | None = None) -> str:
    """``ddMMyyyy'T'HHmmss+SSSS`` in Vietnam time (``at`` defaults to now)."""
    local = (at or datetime.now(PLATFORM_TZ)).astimezone(PLATFORM_TZ)
    return f"{local.strftime(TIMESTAMP_FORMAT)}+{local.microsecond // 1000:04d}"


def parse_timestamp(text: str) -> datetime:
    """The aware datetime of an SDK timestamp; ``AuthError`` (``auth.bad_timestamp``) if not one."""
    stamp, plus, millis = text.partition("+")
    try:
        if not plus or not millis.isdigit() or len(millis) > 4:
            raise ValueError(text)
        parsed = datetime.strptime(stamp, TIMESTAMP_FORMAT)
    except ValueError as exc:
        raise AuthError(
            f"timestamp {text!r} is not ddMMyyyy'T'HHmmss+SSSS", code="auth.bad_timestamp"
        ) from exc
    return parsed.replace(tzinfo=PLATFORM_TZ) + timedelta(milliseconds=int(millis))


# --- signing (client side) -----------------------------------------------------------------------


def hmac_hex(secret: str, message: str) -> str:
    """Lowercase hex HMAC-SHA256 of ``message`` keyed with ``secret`` (both UTF-8)."""
    return hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def signed_headers(params: Mapping[str, str], secret: str) -> dict[str, str]:
    """The HTTP headers of one call: ``XroadVnpt-<k>`` per parameter, the signature, the agent.

    ``params`` should hold ``systemid`` and ``timestamp`` (see :func:`base_params`). A
    ``Content-Type`` parameter is also sent under its own name, as the SDK does.
    """
    signed = {f"{HEADER_PREFIX}{name}": value for name, value in params.items()}
    sign_header = json.dumps(signed, ensure_ascii=False, separators=(",", ":"))
    headers = dict(signed)
    if Param.CONTENT_TYPE in params:
        headers[Param.CONTENT_TYPE.value] = params[Param.CONTENT_TYPE.value]
    headers[SIGN_HEADER_KEY] = ";".join(params)
    headers[SIGN_HEADER] = sign_header
    headers[HASH_HEADER] = hmac_hex(secret, sign_header)
    headers["User-Agent"] = SDK_USER_AGENT
    headers[VERSION_HEADER] = SDK_VERSION
    return headers


def base_params(system_id: str, at: datetime | None = None) -> dict[str, str]:
    """The two parameters of every call: ``systemid`` and a fresh ``timestamp``."""
    return {Param.SYSTEM_ID.value: system_id, Param.TIMESTAMP.value: format_timestamp(at)}


# --- verification (server side) ------------------------------------------------------------------


class HeaderSource(Protocol):
    """What verification needs of the request headers (aiohttp's ``CIMultiDictProxy`` fits)."""

    def get(self, key: str, /) -> str | None: ...
    def getall(self, key: str, default: list[str], /) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class SystemCredentials:
    """A calling system: its secret and how old its (ageing) timestamp may be (None: any)."""

    system_id: str
    secret: str = field(repr=False)
    timestamp_window_s: float | None = DEFAULT_TIMESTAMP_WINDOW_S


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """The authenticated parameters of one call (unprefixed names, exactly as signed)."""

    system_id: str
    params: Mapping[str, str]
    hash_header: str

    def get(self, name: str) -> str | None:
        """The value of ``name`` spelled exactly as the SDK does (``docid`` is not ``docId``)."""
        return self.params.get(name)


def verify_signature(
    headers: HeaderSource, lookup: Callable[[str], SystemCredentials | None]
) -> tuple[SignedRequest, SystemCredentials]:
    """Check the HMAC over the sign-header as received, then that every signed value was sent.

    Raises ``AuthError``: ``auth.unsigned`` (signature headers missing), ``auth.bad_sign_header``
    (not a JSON object of strings, or not the listed names), ``auth.tampered`` (a signed header
    missing or with another value), ``auth.unknown_system``, ``auth.bad_hmac``.
    """
    sign_header, names, given_hash = (
        headers.get(h) for h in (SIGN_HEADER, SIGN_HEADER_KEY, HASH_HEADER)
    )
    if not sign_header or names is None or not given_hash:
        raise AuthError(
            "XroadVnpt-sign-header, -sign-header-key and -hash-header are required",
            code="auth.unsigned",
        )
    params = _signed_params(sign_header, names)
    system_id = params.get(Param.SYSTEM_ID.value, "")
    credentials = lookup(system_id) if system_id else None
    if credentials is None:
        raise AuthError(f"unknown system {system_id!r}", code="auth.unknown_system")
    expected = hmac_hex(credentials.secret, sign_header)
    if not hmac.compare_digest(expected.encode("ascii"), given_hash.strip().lower().encode()):
        raise AuthError("XroadVnpt-hash-header does not match", code="auth.bad_hmac")
    for name, value in params.items():
        if value not in headers.getall(HEADER_PREFIX + name, []):
            raise AuthError(
                f"header {HEADER_PREFIX}{name} differs from the signed value", code="auth.tampered"
            )
    return SignedRequest(system_id, params, given_hash.strip().lower()), credentials


def _signed_params(sign_header: str, names_text: str) -> dict[str, str]:
    try:
        signed = json.loads(sign_header)
    except ValueError as exc:
        raise AuthError("XroadVnpt-sign-header is not JSON", code="auth.bad_sign_header") from exc
    if not isinstance(signed, dict) or not all(
        isinstance(k, str) and k.startswith(HEADER_PREFIX) and isinstance(v, str)
        for k, v in signed.items()
    ):
        raise AuthError(
            "XroadVnpt-sign-header must map XroadVnpt-* names to strings",
            code="auth.bad_sign_header",
        )
    params = {k[len(HEADER_PREFIX) :]: v for k, v in signed.items()}
    names = [n for n in names_text.split(";") if n]
    if sorted(names) != sorted(params):
        raise AuthError(
            "XroadVnpt-sign-header-key does not list the signed names", code="auth.bad_sign_header"
        )
    return params


def check_timestamp(signed: SignedRequest, window_s: float | None, now: datetime) -> None:
    """``AuthError`` (``auth.stale_timestamp``) if the signed timestamp is outside the window."""
    if window_s is None:
        return
    text = signed.get(Param.TIMESTAMP.value)
    if text is None:
        raise AuthError("the signed headers carry no timestamp", code="auth.no_timestamp")
    age_s = abs((now - parse_timestamp(text)).total_seconds())
    if age_s > window_s:
        raise AuthError(
            f"timestamp {text} is {age_s:.0f} s away from now (window {window_s:g} s)",
            code="auth.stale_timestamp",
        )


# --- answers -------------------------------------------------------------------------------------


def ok_answer(**fields: object) -> dict[str, object]:
    """A success answer; ``fields`` such as ``DocId=…`` or ``data=[…]`` are added as given."""
    return {"status": "OK", "ErrorCode": OK_CODE, "ErrorDesc": "Success", **fields}


def fail_answer(
    error_code: str, error_desc: str, operation: Operation | None = None
) -> dict[str, object]:
    """A FAIL answer, with the empty fields ``operation``'s caller reads (the SDK reads ``DocId``
    unconditionally and would hide the error behind a null without it)."""
    fields = operation.answer_fields() if operation is not None else {}
    return {"status": "FAIL", "ErrorCode": error_code, "ErrorDesc": error_desc, **fields}


def error_answer(error: LgspError, operation: Operation | None = None) -> dict[str, object]:
    """A FAIL answer for one of our errors: its stable code as ``ErrorCode``."""
    return fail_answer(error.code, error.message, operation)


def parse_to(value: str | None) -> tuple[str, ...]:
    """The ``to`` parameter: a JSON array of OrganIds (a bare or comma-separated id accepted)."""
    if not value or not value.strip():
        return ()
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise InputError("'to' is not a JSON array", code="national.bad_to") from exc
        if not isinstance(parsed, list) or not all(isinstance(v, str) for v in parsed):
            raise InputError("'to' must be a JSON array of strings", code="national.bad_to")
        return _unique(v.strip() for v in parsed if v.strip())
    return _unique(v.strip() for v in text.split(",") if v.strip())


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))
