"""``/admin/login`` and ``/admin/logout``."""

from __future__ import annotations

import math

from aiohttp import web

from gateway.console.auth import (
    check_login_csrf,
    check_password,
    current_user,
    login_form_token,
    posted_form,
    set_login_form_cookie,
    sign_in,
    sign_out,
)
from gateway.console.context import CONSOLE_DB, LOGIN_THROTTLE, USERS
from gateway.console.render import render
from gateway.core.errors import AuthError, RateLimitError
from gateway.web.keys import RATE_LIMITS

routes = web.RouteTableDef()
HOME = "/admin/"


def _safe_next(value: object) -> str:
    """Only a console path may follow a log-in (no open redirect)."""
    if isinstance(value, str) and value.startswith("/admin/") and "//" not in value:
        return value
    return HOME


def _login_page(
    request: web.Request, next_path: str, *, failed: bool, wait_s: float = 0.0
) -> web.Response:
    token = login_form_token(request)
    status = 429 if wait_s else 401 if failed else 200
    response = render(
        request,
        "login.html",
        status=status,
        failed=failed and not wait_s,
        wait_seconds=math.ceil(wait_s),
        next_path=next_path,
        csrf_token=token,
    )
    if wait_s:
        response.headers["Retry-After"] = str(math.ceil(wait_s))
    set_login_form_cookie(request, response, token)
    return response


@routes.get("/login")
async def login_form(request: web.Request) -> web.StreamResponse:
    if await current_user(request) is not None:
        raise web.HTTPSeeOther(_safe_next(request.query.get("next")))
    return _login_page(request, _safe_next(request.query.get("next")), failed=False)


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    """Refused before the form is read when the address failed too often; then the name's
    growing delay is waited out before any password hashing."""
    limits = request.config_dict[RATE_LIMITS]
    try:
        limits.check_address(request.remote)
    except RateLimitError as exc:
        return _login_page(request, HOME, failed=True, wait_s=exc.retry_after_s)
    form = await request.post()
    check_login_csrf(request, form)
    next_path = _safe_next(form.get("next"))
    username, password = form.get("username"), form.get("password")
    name = username.strip() if isinstance(username, str) else ""
    throttle = request.app[LOGIN_THROTTLE]
    wait_s = await throttle.retry_after_s(name)
    if wait_s:
        return _login_page(request, next_path, failed=True, wait_s=wait_s)
    try:
        if not isinstance(password, str) or not name:
            raise AuthError("username and password are required", code="console.bad_credentials")
        account = await check_password(
            await request.app[USERS].accounts_named(name), name, password
        )
    except AuthError:
        await throttle.failed(name)
        try:
            await limits.failed(request.remote)
        except RateLimitError as exc:
            return _login_page(request, next_path, failed=True, wait_s=exc.retry_after_s)
        return _login_page(request, next_path, failed=True)
    await throttle.succeeded(name)
    response = web.HTTPSeeOther(next_path)
    await sign_in(request, response, account)
    await request.app[CONSOLE_DB].audit(
        account.username, "login", account.username, {"role": account.role.value}
    )
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    user, _ = await posted_form(request, operator=False)
    response = web.HTTPSeeOther("/admin/login")
    await sign_out(request, response)
    await request.app[CONSOLE_DB].audit(user.username, "logout", user.username)
    raise response
