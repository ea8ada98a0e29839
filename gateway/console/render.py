"""Server-side rendering: the Jinja2 environment and ``render(request, template, **context)``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from gateway.console.context import TEMPLATES, SignedIn
from gateway.console.i18n import LANG_COOKIE, LANGUAGES, Translator, choose_language
from gateway.core.resources import CONSOLE

LANG_COOKIE_MAX_AGE_S = 365 * 24 * 3600
USER_KEY = web.RequestKey("console_user", SignedIn)


def build_templates() -> jinja2.Environment:
    """HTML-autoescaped templates; an undefined name is an error, not an empty string."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(CONSOLE, "templates"),  # importlib.resources
        autoescape=jinja2.select_autoescape(["html"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["query"] = _query
    return env


def _query(base: dict[str, Any], **changes: object) -> str:
    """``?a=1&b=2`` from ``base`` with ``changes``; empty values are left out."""
    merged = {**base, **changes}
    pairs = [(k, str(v)) for k, v in merged.items() if v not in (None, "")]
    return "?" + urlencode(pairs) if pairs else "?"


def translator(request: web.Request) -> Translator:
    lang = choose_language(request.query.get("lang"), request.cookies.get(LANG_COOKIE))
    return Translator(lang)


def signed_in(request: web.Request) -> SignedIn | None:
    """The user ``require_user`` found for this request, if it ran."""
    if USER_KEY not in request:
        return None
    return request[USER_KEY]


def render(
    request: web.Request, template: str, *, status: int = 200, **context: object
) -> web.Response:
    """The page ``template`` in the request's language; ``?lang=`` also sets the cookie."""
    t = translator(request)
    env = request.app[TEMPLATES]
    args = {k: v for k, v in request.query.items() if k != "lang"}
    body = env.get_template(template).render(
        t=t, lang=t.lang, user=signed_in(request), path=request.path, args=args, **context
    )
    response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    asked = request.query.get("lang")
    if asked in LANGUAGES and asked != request.cookies.get(LANG_COOKIE):
        response.set_cookie(
            LANG_COOKIE,
            asked,
            max_age=LANG_COOKIE_MAX_AGE_S,
            path="/admin",
            httponly=True,
            samesite="Strict",
        )
    return response
