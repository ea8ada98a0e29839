"""``setup_console(app)``: mount the admin console at ``/admin`` on the gateway's application."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.console import (
    pages_audit,
    pages_auth,
    pages_dashboard,
    pages_dead_letters,
    pages_document,
    pages_participants,
    pages_reports,
    pages_search,
    pages_users,
)
from gateway.console.auth import accounts_from
from gateway.console.context import (
    ACCOUNTS,
    CONSOLE_DB,
    LOGIN_THROTTLE,
    REPORT_CACHE,
    SECURE_COOKIES,
    TEMPLATES,
    USERS,
)
from gateway.console.db import ConsoleDb
from gateway.console.middleware import console_errors
from gateway.console.passwords import dummy_hash
from gateway.console.render import build_templates
from gateway.console.report_cache import ReportCache
from gateway.console.throttle import LoginThrottle
from gateway.console.users import UserStore
from gateway.core.loops import supervise
from gateway.core.resources import console_static_dir
from gateway.core.settings import Settings
from gateway.store.login_failures import LoginFailures
from gateway.web.keys import DELIVERY_LOG, METRICS, SETTINGS

PREFIX = "/admin"
REPORT_REFRESH_S = 300.0
REPORT_FIRST_REFRESH_S = 30.0
PAGES = (
    pages_auth,
    pages_dashboard,
    pages_search,
    pages_document,
    pages_dead_letters,
    pages_participants,
    pages_reports,
    pages_audit,
    pages_users,
)


def console_app(settings: Settings, gateway: web.Application) -> web.Application:
    """The console as a sub-application; the gateway's resources are reached via config_dict."""
    console = web.Application(middlewares=[console_errors])
    console[TEMPLATES] = build_templates()
    console[ACCOUNTS] = accounts_from(settings.admin.user)
    console[SECURE_COOKIES] = settings.http.tls_cert is not None
    console[LOGIN_THROTTLE] = LoginThrottle(LoginFailures(lambda: gateway[DELIVERY_LOG].engines))
    # The console's tables live in the delivery log's database: it shares the log's engines.
    console[CONSOLE_DB] = ConsoleDb(lambda: gateway[DELIVERY_LOG].engines)
    console[REPORT_CACHE] = ReportCache(lambda: gateway[DELIVERY_LOG].engines)
    console[USERS] = UserStore(lambda: gateway[DELIVERY_LOG].engines)
    for module in PAGES:
        console.add_routes(module.routes)
    console.router.add_static("/static", console_static_dir(), name="static")
    return console


async def _report_cache_ctx(
    console: web.Application, gateway: web.Application
) -> AsyncIterator[None]:
    """Seed the configured users into the store; keep the last year's report days computed,
    so no report waits for a cold cache."""
    await console[USERS].seed(gateway[SETTINGS].admin.user)
    task = asyncio.create_task(
        supervise(
            "report-cache",
            console[REPORT_CACHE].refresh_recent,
            interval_s=REPORT_REFRESH_S,
            first_delay_s=REPORT_FIRST_REFRESH_S,
            loops=gateway[METRICS].loops if METRICS in gateway else None,
        ),
        name="report-cache",
    )
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def setup_console(app: web.Application) -> None:
    """Mount the console on the gateway's ``app`` (call once, before the app starts)."""
    dummy_hash()  # now, not at the first unknown user's log-in (whose answer would take longer)
    console = console_app(app[SETTINGS], app)
    app.add_subapp(PREFIX, console)
    app.cleanup_ctx.append(functools.partial(_report_cache_ctx, console))
