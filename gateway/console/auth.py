"""Console sign-in: password checks, server-side sessions in cookies, roles and CSRF tokens.

The session cookie is HttpOnly, SameSite=Strict, scoped to ``/admin`` and Secure when the gateway
serves TLS (or a reverse proxy in front of it says ``X-Forwarded-Proto: https``). Every POST
carries the session's CSRF token in a ``csrf_token`` field; the log-in form (before any session)
uses a double-submit token from its own short-lived cookie.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets

from aiohttp import web
from multidict import MultiDictProxy

from gateway.console.context import CONSOLE_DB, SECURE_COOKIES, USERS, Account, SignedIn
from gateway.console.passwords import dummy_hash, parse_hash, verify_password
from gateway.console.render import USER_KEY
from gateway.core.errors import AuthError, ForbiddenError
from gateway.core.settings import ConsoleUser

SESSION_COOKIE = "lgsp_console"
LOGIN_CSRF_COOKIE = "lgsp_console_login"
SESSION_TTL_S = 8 * 3600
LOGIN_FORM_TTL_S = 3600
CSRF_FIELD = "csrf_token"
COOKIE_PATH = "/admin"
PASSWORD_PAGE = "/admin/account/password"  # noqa: S105 - a path, not a secret

Form = MultiDictProxy[str | bytes | bytearray | web.FileField]


class LoginRequiredError(AuthError):
    """No valid session: pages redirect to the log-in form."""

    default_code = "console.login_required"


def accounts_from(users: tuple[ConsoleUser, ...]) -> dict[str, Account]:
    """The configured users by name, hashes parsed (a malformed hash is a ``ConfigError``)."""
    return {u.username: Account(u.username, u.role, parse_hash(u.password_hash)) for u in users}


async def check_password(accounts: dict[str, Account], username: str, password: str) -> Account:
    """The account if the password is right, else ``AuthError``; unknown names cost the same."""
    account = accounts.get(username)
    stored = account.password if account is not None else dummy_hash()
    matches = await asyncio.to_thread(verify_password, password, stored)
    if account is None or not matches:
        raise AuthError("wrong username or password", code="console.bad_credentials")
    return account


def _secure(request: web.Request) -> bool:
    """Secure cookies when the gateway serves TLS, or a TLS-terminating proxy says it did (a
    false claim only makes the browser withhold the cookie over plain HTTP)."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.app[SECURE_COOKIES] or request.secure or forwarded == "https"


def _set_cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str, max_age_s: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age_s,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
    )


async def sign_in(request: web.Request, response: web.StreamResponse, account: Account) -> None:
    """Start a session for ``account`` and put its token in ``response``'s cookie."""
    token, _ = await request.app[CONSOLE_DB].start_session(account.username, SESSION_TTL_S)
    _set_cookie(request, response, SESSION_COOKIE, token, SESSION_TTL_S)
    response.del_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)


async def sign_out(request: web.Request, response: web.StreamResponse) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await request.app[CONSOLE_DB].end_session(token)
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)


def login_form_token(request: web.Request) -> str:
    """The log-in form's CSRF token: the one in the browser's cookie, else a new one."""
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)


def set_login_form_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    """The cookie half of the log-in form's double-submit CSRF check."""
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, LOGIN_FORM_TTL_S)


def check_login_csrf(request: web.Request, form: Form) -> None:
    _same_token(form.get(CSRF_FIELD), request.cookies.get(LOGIN_CSRF_COOKIE))


async def current_user(request: web.Request) -> SignedIn | None:
    """The signed-in user of this request (checked once per request), or None."""
    if USER_KEY in request:
        return request[USER_KEY]
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    session = await request.app[CONSOLE_DB].session(token)
    account = await request.app[USERS].account(session.username) if session else None
    if session is None or account is None or account.disabled:  # expired, out, or disabled
        return None
    user = SignedIn(
        account.username, account.role, session.csrf_token, account.must_change_password
    )
    request[USER_KEY] = user
    return user


async def require_user(request: web.Request) -> SignedIn:
    user = await current_user(request)
    if user is None:
        raise LoginRequiredError("log in first")
    if user.must_change_password and request.path != PASSWORD_PAGE:
        raise web.HTTPSeeOther(PASSWORD_PAGE)  # an administrator asked for a new password
    return user


async def posted_form(request: web.Request, *, operator: bool = True) -> tuple[SignedIn, Form]:
    """A POST's form, once its CSRF token matched the session's (else 403), and the operator role
    checked when ``operator``. A POST without a session is refused (403) like one without token,
    before its body is read: only a signed-in user makes the gateway read a form."""
    user = await current_user(request)
    if user is None:
        raise ForbiddenError("no console session", code="console.csrf_missing")
    form = await request.post()
    _same_token(form.get(CSRF_FIELD), user.csrf_token)
    if user.must_change_password and request.path not in (PASSWORD_PAGE, "/admin/logout"):
        raise ForbiddenError("choose a new password first", code="console.password_change")
    if operator and not user.is_operator:
        raise ForbiddenError("only operators may do this", code="console.operator_only")
    return user, form


def _same_token(given: object, expected: str | None) -> None:
    if not isinstance(given, str) or not given:
        raise ForbiddenError("the form has no CSRF token", code="console.csrf_missing")
    if expected is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ForbiddenError("the CSRF token does not match", code="console.csrf_invalid")
