"""Typed keys of the console sub-application and the records every page shares."""

from __future__ import annotations

from dataclasses import dataclass

import jinja2
from aiohttp import web

from gateway.console.db import ConsoleDb
from gateway.console.report_cache import ReportCache
from gateway.console.throttle import LoginThrottle
from gateway.console.users import Account, UserStore
from gateway.core.settings import ConsoleRole

__all__ = [
    "ACCOUNTS",
    "CONSOLE_DB",
    "LOGIN_THROTTLE",
    "REPORT_CACHE",
    "SECURE_COOKIES",
    "TEMPLATES",
    "USERS",
    "Account",
    "SignedIn",
]


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The user behind a request's valid session."""

    username: str
    role: ConsoleRole
    csrf_token: str
    must_change_password: bool = False

    @property
    def is_operator(self) -> bool:
        return self.role in (ConsoleRole.OPERATOR, ConsoleRole.ADMINISTRATOR)

    @property
    def is_admin(self) -> bool:
        return self.role is ConsoleRole.ADMINISTRATOR

    @property
    def actor(self) -> str:
        """How this user is named in the delivery log's events."""
        return f"console:{self.username}"


CONSOLE_DB = web.AppKey("console_db", ConsoleDb)
TEMPLATES = web.AppKey("console_templates", jinja2.Environment)
ACCOUNTS = web.AppKey("console_accounts", dict[str, Account])
SECURE_COOKIES = web.AppKey("console_secure_cookies", bool)
LOGIN_THROTTLE = web.AppKey("console_login_throttle", LoginThrottle)
REPORT_CACHE = web.AppKey("console_report_cache", ReportCache)
USERS = web.AppKey("console_users", UserStore)
