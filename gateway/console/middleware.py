"""Console middlewares: errors as HTML pages (log-in redirects for pages), and security headers.

An unexpected exception (a bug) is logged with its traceback and shown as the 500 page with the
request id, never as aiohttp's plain-text traceback page.
"""

from __future__ import annotations

from urllib.parse import urlencode

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.console.auth import LoginRequiredError
from gateway.console.render import render
from gateway.core.errors import LgspError

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
_KNOWN_STATUSES = frozenset({400, 403, 404, 409, 500, 503})


def login_url(next_path: str) -> str:
    return "/admin/login?" + urlencode({"next": next_path})


def error_page(request: web.Request, status: int, code: str) -> web.Response:
    shown = status if status in _KNOWN_STATUSES else (500 if status >= 500 else 400)
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    return render(request, "error.html", status=status, message_key=f"error.{shown}", code=code,
                  request_id=request_id)


@web.middleware
async def console_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Our errors become an HTML page with their status; a page without session, a redirect."""
    if request.path == "/admin":
        raise web.HTTPPermanentRedirect("/admin/")
    try:
        response = await handler(request)
    except LoginRequiredError:
        raise web.HTTPSeeOther(login_url(request.path_qs)) from None
    except LgspError as exc:
        log.info("console_refused", path=request.path, code=exc.code, status=exc.http_status)
        response = error_page(request, exc.http_status, exc.code)
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
