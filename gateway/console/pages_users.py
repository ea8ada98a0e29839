"""``/admin/users``: administrators create and disable console users, set their role and make
them choose a new password; ``/admin/account/password``: anyone changes their own password.
Every change is in the audit trail (never a password or a hash)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from aiohttp import web

from gateway.console.auth import Form, posted_form, require_user
from gateway.console.context import CONSOLE_DB, USERS, SignedIn
from gateway.console.passwords import verify_password
from gateway.console.render import render
from gateway.core.errors import AuthError, ConflictError, ForbiddenError, InputError, LgspError
from gateway.core.settings import ConsoleRole

routes = web.RouteTableDef()
USERS_PAGE = "/admin/users"


def _text(form: Form, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _role(form: Form) -> ConsoleRole:
    value = _text(form, "role")
    if value not in {r.value for r in ConsoleRole}:
        raise InputError(f"role: unknown value {value!r}", code="console.bad_choice")
    return ConsoleRole(value)


async def _admin_form(request: web.Request) -> tuple[SignedIn, Form]:
    user, form = await posted_form(request, operator=False)
    if not user.is_admin:
        raise ForbiddenError("only administrators manage users", code="console.admin_only")
    return user, form


async def _users_page(
    request: web.Request,
    *,
    status: int = 200,
    error: str = "",
    values: dict[str, str] | None = None,
) -> web.Response:
    return render(
        request,
        "users.html",
        status=status,
        users=await request.app[USERS].users(),
        roles=list(ConsoleRole),
        error=error,
        values=values or {},
        done=request.query.get("done", ""),
        target=request.query.get("user", ""),
    )


@routes.get("/users")
async def users_page(request: web.Request) -> web.Response:
    user = await require_user(request)
    if not user.is_admin:
        raise ForbiddenError("only administrators manage users", code="console.admin_only")
    return await _users_page(request)


def _done(action: str, username: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{USERS_PAGE}?{urlencode({'done': action, 'user': username})}")


@routes.post("/users")
async def create_user(request: web.Request) -> web.StreamResponse:
    admin, form = await _admin_form(request)
    username, role = _text(form, "username").strip(), _text(form, "role")
    try:
        created = await request.app[USERS].create(
            username,
            _text(form, "password"),
            _role(form),
            actor=admin.username,
            must_change_password=form.get("must_change_password") is not None,
        )
    except (InputError, ConflictError) as exc:
        return await _users_page(
            request,
            status=exc.http_status,
            error=exc.code,
            values={"username": username, "role": role},
        )
    await request.app[CONSOLE_DB].audit(
        admin.username,
        "user.create",
        created.username,
        {"role": created.role.value, "must_change_password": created.must_change_password},
    )
    raise _done("create", created.username)


@routes.post("/users/{username}")
async def change_user(request: web.Request) -> web.StreamResponse:
    """``action``: role (with ``role``), disable, enable, or force_password (with an optional
    temporary ``password``)."""
    admin, form = await _admin_form(request)
    users = request.app[USERS]
    username = request.match_info["username"]
    action = _text(form, "action")
    detail: dict[str, object] = {}
    if username == admin.username and action in ("role", "disable"):
        raise ConflictError(
            "administrators cannot demote or disable themselves", code="console.self_change"
        )
    if action == "role":
        role = _role(form)
        await users.change(username, role=role.value)
        detail["role"] = role.value
    elif action in ("disable", "enable"):
        await users.change(username, disabled=action == "disable")
    elif action == "force_password":
        temporary = _text(form, "password")
        if temporary:
            await users.set_password(username, temporary, must_change_password=True)
        else:
            await users.change(username, must_change_password=True)
        detail["new_temporary_password"] = bool(temporary)
    else:
        raise InputError(f"action: unknown value {action!r}", code="console.bad_choice")
    await request.app[CONSOLE_DB].audit(admin.username, f"user.{action}", username, detail)
    raise _done(action, username)


@routes.get("/account/password")
async def password_form(request: web.Request) -> web.Response:
    user = await require_user(request)
    return render(request, "password.html", forced=user.must_change_password, error="")


@routes.post("/account/password")
async def change_password(request: web.Request) -> web.StreamResponse:
    user, form = await posted_form(request, operator=False)
    users = request.app[USERS]
    new = _text(form, "new_password")
    try:
        account = await users.account(user.username)
        current = _text(form, "current_password")
        if account is None or not await asyncio.to_thread(
            verify_password, current, account.password
        ):
            raise AuthError("the current password is wrong", code="console.bad_credentials")
        if new != _text(form, "confirm_password"):
            raise InputError("the two new passwords differ", code="console.password_mismatch")
        if new == current:
            raise InputError("choose a new password", code="console.password_unchanged")
        await users.set_password(user.username, new)
    except LgspError as exc:
        return render(
            request,
            "password.html",
            status=exc.http_status,
            forced=user.must_change_password,
            error=exc.code,
        )
    await request.app[CONSOLE_DB].audit(user.username, "user.password", user.username)
    raise web.HTTPSeeOther("/admin/?password=changed")
