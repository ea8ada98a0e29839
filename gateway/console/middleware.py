"""Console middlewares: bounded forms, errors as HTML pages (log-in redirects), security headers.

A console request's body may not exceed 64 KiB (checked before reading). An unexpected exception
(a bug) is logged with its traceback and shown as the 500 page with the request id, never as
aiohttp's plain-text traceback page.
"""

from __future__ import annotations

from urllib.parse import urlencode

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.console.auth import LoginRequiredError
from gateway.console.render import render
from gateway.core.errors import InputError, LgspError

log = structlog.get_logger(__name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_KNOWN_STATUSES = frozenset({400, 403, 404, 409, 413, 429, 500, 503})
FORM_MAX_BYTES = 64 * 1024
"""The largest body a console request may send: every console form is far smaller. Checked on
``Content-Length`` before reading, and while streaming for a body without one (chunked)."""


class FormTooLargeError(InputError):
    http_status = 413
    default_code = "console.form_too_large"


def _bounded(request: web.Request) -> web.Request:
    """``request`` whose body may not exceed ``FORM_MAX_BYTES``: a larger declared length is
    refused before anything is read; reading a longer stream stops at the bound (413)."""
    if request.content_length is not None and request.content_length > FORM_MAX_BYTES:
        raise FormTooLargeError(f"a console form has at most {FORM_MAX_BYTES} bytes")
    return request.clone(client_max_size=FORM_MAX_BYTES)


def _too_large(request: web.Request) -> web.Response:
    log.info("console_refused", path=request.path, code=FormTooLargeError.default_code, status=413)
    response = error_page(request, 413, FormTooLargeError.default_code)
    response.force_close()  # do not read (or linger on) the rest of the body
    return response


def login_url(next_path: str) -> str:
    return "/admin/login?" + urlencode({"next": next_path})


def error_page(request: web.Request, status: int, code: str) -> web.Response:
    shown = status if status in _KNOWN_STATUSES else (500 if status >= 500 else 400)
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    return render(
        request,
        "error.html",
        status=status,
        message_key=f"error.{shown}",
        code=code,
        request_id=request_id,
    )


@web.middleware
async def console_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Our errors become an HTML page with their status; a page without session, a redirect."""
    if request.path == "/admin":
        raise web.HTTPPermanentRedirect("/admin/")
    try:
        response = await handler(_bounded(request))
    except web.HTTPRequestEntityTooLarge:  # a chunked body went past FORM_MAX_BYTES
        response = _too_large(request)
    except LoginRequiredError:
        raise web.HTTPSeeOther(login_url(request.path_qs)) from None
    except LgspError as exc:
        log.info("console_refused", path=request.path, code=exc.code, status=exc.http_status)
        response = error_page(request, exc.http_status, exc.code)
        if isinstance(exc, FormTooLargeError):
            response.force_close()
    except web.HTTPNotFound:
        response = error_page(request, 404, "not_found.route")
    except web.HTTPException:
        raise
    except Exception:  # the catch-all: a bug, shown without its details
        log.exception("console_request_failed", method=request.method, path=request.path)
        response = error_page(request, 500, "internal")
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.content_type == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response
