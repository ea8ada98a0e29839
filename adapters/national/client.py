"""``NationalClient``: the national platform's REST calls (HMAC-signed headers) over aiohttp.

Errors (the one boundary where aiohttp exceptions become ours):

- the platform cannot be reached, times out, answers 5xx/429 or not JSON -> ``UnavailableError``
  (``unavailable.national``, retryable);
- 401 -> ``AuthError`` (``auth.national_rejected``): our system id or secret is wrong;
- an answer ``{"status": "FAIL", …}`` otherwise -> ``PlatformRefusedError``
  (``national.refused``) carrying the platform's ``ErrorCode`` / ``ErrorDesc``.

Unlike the Java SDK, each call carries a fresh timestamp and only its own parameters.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from adapters.national.protocol import (
    FILE_PART,
    AckStatus,
    MessageType,
    Operation,
    Param,
    base_params,
    java_hex_sha256,
    signed_headers,
)
from adapters.national.records import SERVICE_TYPE, Agency, ReceivedItem, SentItem
from gateway.core.errors import AuthError, InputError, UnavailableError

DEFAULT_TIMEOUT_S = 30.0
JSON = "application/json"


class PlatformRefusedError(InputError):
    """The platform answered FAIL: ``error_code`` / ``error_desc`` are its own words."""

    http_status = 422
    default_code = "national.refused"

    def __init__(self, operation: str, error_code: str, error_desc: str, http_status: int) -> None:
        super().__init__(f"{operation}: the national platform refused ({error_code}: {error_desc})")
        self.operation = operation
        self.error_code = error_code
        self.error_desc = error_desc
        self.answer_http_status = http_status


class NationalClient:
    """One system's connection to the platform at ``endpoint`` (e.g. ``http://h:8080/XrdAdapter/adapter``).

    ``session`` (optional) is used and left open; otherwise the client makes its own and closes
    it in :meth:`aclose`.
    """

    def __init__(
        self,
        endpoint: str,
        system_id: str,
        secret: str,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.system_id = system_id
        self._secret = secret
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    # --- documents -------------------------------------------------------------------------------

    async def send_edoc(
        self,
        package: bytes,
        *,
        from_: str,
        to: Sequence[str],
        messagetype: MessageType | str = MessageType.EDOC,
    ) -> str:
        """Send an edXML package to the OrganIds ``to``; returns the platform's ``DocId``."""
        params = {
            Param.FROM.value: from_,
            Param.SERVICE_TYPE.value: SERVICE_TYPE,
            Param.MESSAGE_TYPE.value: MessageType(messagetype).value,
            Param.TO.value: json.dumps(list(to), separators=(",", ":")),
            Param.HASH_FILE.value: java_hex_sha256(package),
            Param.CONTENT_TYPE.value: "application/octet-stream",
        }
        form = aiohttp.FormData()
        form.add_field(
            FILE_PART, package, filename="edoc.edxml", content_type="application/octet-stream"
        )
        answer = await self._call(Operation.SEND_EDOC, params, data=form)
        doc_id = answer.get("DocId")
        if not isinstance(doc_id, str | int) or str(doc_id) == "":
            raise _bad_answer(Operation.SEND_EDOC, "no DocId")
        return str(doc_id)

    async def get_received_edoc_list(
        self, messagetype: MessageType | str = MessageType.EDOC
    ) -> list[ReceivedItem]:
        """Packages waiting for this system (until acknowledged with :meth:`update_status`)."""
        params = {
            Param.SERVICE_TYPE.value: SERVICE_TYPE,
            Param.MESSAGE_TYPE.value: MessageType(messagetype).value,
        }
        operation = Operation.GET_RECEIVED_EDOC_LIST
        answer = await self._call(operation, params)
        return [ReceivedItem.from_json(item) for item in _items(answer, operation)]

    async def get_sent_edoc_list(
        self, messagetype: MessageType | str = MessageType.EDOC
    ) -> list[SentItem]:
        """What this system sent, one entry per recipient, with the receiving side's status."""
        params = {
            Param.SERVICE_TYPE.value: SERVICE_TYPE,
            Param.MESSAGE_TYPE.value: MessageType(messagetype).value,
        }
        answer = await self._call(Operation.GET_SENT_EDOC_LIST, params)
        return [SentItem.from_json(item) for item in _items(answer, Operation.GET_SENT_EDOC_LIST)]

    async def get_edoc(self, doc_id: str) -> bytes:
        """The package bytes of a received item."""
        answer = await self._call(Operation.GET_EDOC, {Param.DOC_ID.value: doc_id})
        data = answer.get("data")
        if not isinstance(data, str):
            raise _bad_answer(Operation.GET_EDOC, "no base64 data")
        try:
            return binascii.a2b_base64(data, strict_mode=True)  # as b64decode(validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _bad_answer(Operation.GET_EDOC, "data is not base64") from exc

    async def update_status(self, doc_id: str, status: AckStatus | str) -> None:
        """Acknowledge a received item: ``done`` (taken) or ``fail`` (refused); both end it."""
        params = {Param.ACK_DOC_ID.value: doc_id, Param.STATUS.value: AckStatus(status).value}
        await self._call(Operation.UPDATE_STATUS, params)

    # --- agencies --------------------------------------------------------------------------------

    async def get_agencies_list(self) -> list[Agency]:
        answer = await self._call(Operation.GET_AGENCIES_LIST, {})
        return [Agency.from_json(item) for item in _items(answer, Operation.GET_AGENCIES_LIST)]

    async def register_agency(self, agency: Agency) -> None:
        """Register (or update) an agency of this system; the JSON body is the agency."""
        await self._call(Operation.REGISTER_AGENCY, {}, json_body=agency.register_json())

    # --- transport -------------------------------------------------------------------------------

    async def _call(
        self,
        operation: Operation,
        extra: Mapping[str, str],
        *,
        data: aiohttp.FormData | None = None,
        json_body: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        params = base_params(self.system_id)
        if data is None:
            params[Param.CONTENT_TYPE.value] = JSON
        params.update(extra)
        headers = signed_headers(params, self._secret)
        if data is not None:
            headers.pop(Param.CONTENT_TYPE.value)  # aiohttp sets multipart/form-data; boundary=…
        body: Any = data if data is not None else json.dumps(json_body or {}).encode()
        url = f"{self.endpoint}/{operation.value}"
        try:
            async with self._get_session().post(url, data=body, headers=headers) as response:
                status = response.status
                raw = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UnavailableError(
                f"{operation.value}: national platform unreachable: {exc!r}",
                code="unavailable.national",
            ) from exc
        return _answer(operation, status, raw)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if not self._owns_session:
                raise UnavailableError(
                    "the shared HTTP session is closed", code="unavailable.national"
                )
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session


def _answer(operation: Operation, status: int, raw: bytes) -> dict[str, Any]:
    """The JSON answer of a call, or the error it means."""
    if status >= 500 or status == 429:
        raise UnavailableError(
            f"{operation.value}: national platform answered HTTP {status}",
            code="unavailable.national",
        )
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if status == 401:
        desc = answer.get("ErrorDesc", "") if isinstance(answer, dict) else ""
        raise AuthError(
            f"{operation.value}: the national platform refused our credentials "
            f"(HTTP {status}) {desc}".rstrip(),
            code="auth.national_rejected",
        )
    if not isinstance(answer, dict):
        raise _bad_answer(operation, f"HTTP {status} without a JSON answer")
    if str(answer.get("status", "")).upper() != "OK" or status >= 400:
        raise PlatformRefusedError(
            operation.value,
            str(answer.get("ErrorCode", "")),
            str(answer.get("ErrorDesc", "")),
            status,
        )
    return answer


def _items(answer: Mapping[str, Any], operation: Operation) -> list[Mapping[str, Any]]:
    data = answer.get("data")
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(i, dict) for i in data):
        raise _bad_answer(operation, "data is not a list of objects")
    return data


def _bad_answer(operation: Operation, what: str) -> UnavailableError:
    return UnavailableError(
        f"{operation.value}: unusable answer from the national platform ({what})",
        code="unavailable.national",
    )
