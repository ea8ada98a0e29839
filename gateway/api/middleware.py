"""Middlewares: a request id bound to every log line, and errors answered as RFC 9457 problems.

Any exception that is neither ours nor aiohttp's HTTP errors is a bug: it is logged with its
traceback and answered as a problem+json 500 (``internal``) carrying the request id, never as
aiohttp's plain-text page.
"""

from __future__ import annotations

import json
import time
import uuid

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.core.errors import LgspError, ServiceError

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
_QUIET_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})  # scraped and probed all day
REQUEST_ID_HEADER = "X-Request-Id"
INTERNAL_ERROR = ServiceError("an unexpected error occurred; quote the request id", code="internal")


def problem_response(error: LgspError, request_id: str | None = None) -> web.Response:
    body = error.to_problem()
    if request_id:
        body["request_id"] = request_id
    headers = {}
    if error.retryable:
        headers["Retry-After"] = str(getattr(error, "retry_after_s", 5))
    return web.Response(
        status=error.http_status,
        body=json.dumps(body, ensure_ascii=False).encode(),
        content_type=PROBLEM_JSON,
        headers=headers,
    )


def _http_problem(exc: web.HTTPException, request_id: str) -> web.Response:
    code = {404: "not_found.route", 405: "http.method_not_allowed", 413: "edxml.too_large"}.get(
        exc.status, f"http.{exc.status}"
    )
    body = {
        "type": f"urn:lgsp:error:{code}",
        "title": code,
        "status": exc.status,
        "detail": exc.reason,
        "code": code,
        "retryable": False,
        "request_id": request_id,
    }
    return web.Response(
        status=exc.status,
        body=json.dumps(body).encode(),
        content_type=PROBLEM_JSON,
        headers={"Allow": exc.headers.get("Allow", "")} if exc.status == 405 else None,
    )


async def _respond(request: web.Request, handler: Handler, request_id: str) -> web.StreamResponse:
    """The handler's response, or the problem response for our errors and HTTP errors."""
    try:
        return await handler(request)
    except LgspError as exc:
        log.info("request_refused", path=request.path, code=exc.code, status=exc.http_status)
        return problem_response(exc, request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_problem(exc, request_id)
    except Exception:  # the catch-all: a bug, answered without its details
        log.exception("request_failed", method=request.method, path=request.path)
        return problem_response(INTERNAL_ERROR, request_id)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id (the caller's X-Request-Id if sane, else a new one) for the request."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = given if 0 < len(given) <= 64 and given.isascii() else uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    try:
        response = await _respond(request, handler, request_id)
    except web.HTTPException as exc:  # a redirect (or other non-error) raised by the handler
        _access(request, exc.status, started)
        exc.headers[REQUEST_ID_HEADER] = request_id
        structlog.contextvars.clear_contextvars()
        raise
    except BaseException:
        structlog.contextvars.clear_contextvars()
        raise
    _access(request, response.status, started)
    structlog.contextvars.clear_contextvars()
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


def _access(request: web.Request, status: int, started: float) -> None:
    """The access-log line of every request (redirects included), but the probes'."""
    if request.path not in _QUIET_PATHS:
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=status,
            duration_ms=_ms_since(started),
        )
