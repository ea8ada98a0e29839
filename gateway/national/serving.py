"""Server side of the national protocol over aiohttp, shared by the simulator and the southbound.

Answers are always the protocol's JSON (``{status, ErrorCode, ErrorDesc, …}``), errors included,
with the error's HTTP status and the empty fields the caller's SDK reads (``DocId``, ``data``): the
SDK reads these keys, never an HTML or problem+json page.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from aiohttp import BodyPartReader, MultipartReader, StreamReader, hdrs, web
from aiohttp.base_protocol import BaseProtocol

from adapters.national.protocol import (
    DEFAULT_ENDPOINT_PATH,
    FILE_PART,
    HashFileError,
    MessageType,
    Operation,
    Param,
    SignedRequest,
    error_answer,
    fail_answer,
    hash_file_matches,
    raw_file_of,
)
from gateway.core.errors import InputError, LgspError, NotFoundError, RateLimitError

OperationHandler = Callable[[web.Request, Operation], Awaitable[web.Response]]
OPERATION_ROUTE = DEFAULT_ENDPOINT_PATH + "/{operation}"


def answer(body: dict[str, object], status: int = 200) -> web.Response:
    """A protocol answer as JSON (UTF-8, non-ASCII kept)."""
    return web.json_response(body, status=status, dumps=_dumps)


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


def operation_of(request: web.Request, supported: frozenset[Operation]) -> Operation:
    """The operation named by the last path segment, if this server answers it."""
    name = request.match_info.get("operation", "")
    try:
        operation = Operation(name)
    except ValueError:
        operation = None
    if operation is None or operation not in supported:
        raise NotFoundError(f"no operation {name!r} here", code="national.unknown_operation")
    return operation


def protocol_handler(
    supported: frozenset[Operation], handle: OperationHandler
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler: dispatch on the operation, answer our errors as FAIL JSON."""

    async def handler(request: web.Request) -> web.Response:
        operation: Operation | None = None
        try:
            operation = operation_of(request, supported)
            return await handle(request, operation)
        except LgspError as exc:
            response = answer(error_answer(exc, operation), status=exc.http_status)
            if isinstance(exc, RateLimitError):
                response.headers["Retry-After"] = str(exc.retry_after_s)
            return response
        except web.HTTPException as exc:  # e.g. 413 from reading a body over the size limit
            if exc.status < 400:
                raise
            return answer(
                fail_answer(f"http.{exc.status}", exc.reason, operation), status=exc.status
            )

    return handler


def message_type(signed: SignedRequest) -> MessageType:
    """The ``messagetype`` parameter (``edoc`` when absent)."""
    value = signed.get(Param.MESSAGE_TYPE.value) or MessageType.EDOC.value
    try:
        return MessageType(value.strip().lower())
    except ValueError as exc:
        raise InputError(
            f"messagetype must be edoc or status, not {value!r}", code="national.bad_messagetype"
        ) from exc


def required(signed: SignedRequest, name: str) -> str:
    value = signed.get(name)
    if not value:
        raise InputError(f"the signed header {name} is required", code="national.missing_param")
    return value


async def read_file_doc(request: web.Request, signed: SignedRequest) -> bytes:
    """The file of a sendEdoc upload: exactly the bytes the signed ``hash-file`` names.

    Three bodies are accepted: the vendor jar's (the raw file followed by CRLF, labelled
    ``application/octet-stream``), the raw file alone, and a multipart body with a ``file_doc``
    part (whose ``Content-Type`` may also say ``application/octet-stream``: the boundary is then
    read from the body's first line). The hash decides whether a trailing CRLF is the file's.
    """
    given = signed.get(Param.HASH_FILE.value)
    if not given:
        raise InputError("the signed header hash-file is required", code="national.missing_param")
    body = await request.read()
    raw = raw_file_of(body, given)
    if raw is not None:
        return raw
    boundary = _boundary(body, request.headers.get(hdrs.CONTENT_TYPE, ""))
    if boundary is None:
        raise HashFileError("hash-file is not the SHA-256 of the body (less one final CRLF)")
    data = await _file_part(body, boundary)
    if not hash_file_matches(given, data):
        raise HashFileError("hash-file is not the SHA-256 of file_doc")
    return data


async def _file_part(body: bytes, boundary: str) -> bytes:
    reader = MultipartReader(
        {hdrs.CONTENT_TYPE: f"multipart/form-data; boundary={boundary}"}, _stream_of(body)
    )
    try:
        while (part := await reader.next()) is not None:
            if isinstance(part, BodyPartReader) and part.name == FILE_PART:
                return bytes(await part.read(decode=True))
    except (ValueError, AssertionError) as exc:
        raise InputError(f"malformed multipart body: {exc}", code="national.bad_multipart") from exc
    raise InputError("no file_doc part in the upload", code="national.no_file")


def _boundary(body: bytes, content_type: str) -> str | None:
    media, _, rest = content_type.partition(";")
    if media.strip().lower().startswith("multipart/"):
        for param in rest.split(";"):
            key, _, value = param.strip().partition("=")
            if key.lower() == "boundary" and value:
                return value.strip('"')
    first = body.lstrip(b"\r\n").split(b"\r\n", 1)[0]
    if first.startswith(b"--") and 2 < len(first) <= 72 and first.isascii():
        return first[2:].decode("ascii").strip()
    return None


def _stream_of(body: bytes) -> StreamReader:
    """An aiohttp stream already holding ``body`` (limit above its size: never pauses)."""
    loop = asyncio.get_running_loop()
    stream = StreamReader(BaseProtocol(loop), limit=len(body) + 1, loop=loop)
    stream.feed_data(body)
    stream.feed_eof()
    return stream
