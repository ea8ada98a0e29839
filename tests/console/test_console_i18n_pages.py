"""Every console page, rendered in Vietnamese and in English, shows no message key and no
internal value (a state, method, kind, level, role or action as the code spells it)."""

from __future__ import annotations

import re
from enum import StrEnum

import pytest
from console_kit import ConsoleClient, console_password, dead_letter
from lxml import html
from service.service_kit import DISTRICT, PushReceiver, StartGateway

from gateway.console.i18n import MESSAGES
from gateway.console.report_cache import Role
from gateway.console.reports import Granularity, OrganLevel
from gateway.core.directory import ParticipantKind, ParticipantLevel
from gateway.core.methods import DeliveryMethod
from gateway.core.settings import ConsoleRole
from gateway.edxml.formats import PackageFormat
from gateway.edxml.model import PackageKind
from gateway.store import DeliveryState, EventKind

ENUMS: tuple[type[StrEnum], ...] = (
    DeliveryState,
    EventKind,
    DeliveryMethod,
    ConsoleRole,
    ParticipantKind,
    ParticipantLevel,
    OrganLevel,
    Role,
    Granularity,
    PackageKind,
    PackageFormat,
)
INTERNAL = {m.value for enum in ENUMS for m in enum} | {
    "ok",
    "down",
    "not_configured",
    "configured",
    "login",
    "logout",
    "replay",
    "resend",
    "participant.save",
    "participant.disable",
    "user.create",
    "user.role",
    "user.disable",
    "user.password",
    "user.force_password",
}
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")


def shown_text(page: str) -> str:
    """What a reader sees: no scripts, styles, code, form values, or the raw-events table;
    nor usernames (data: the demo's users are named "viewer" and "operator")."""
    tree = html.fromstring(page)
    for bad in tree.xpath(
        "//script | //style | //code | //*[@id='events'] | //*[@class='username']"
    ):
        bad.drop_tree()
    return " ".join(tree.itertext())


def raw_values(text: str, lang: str) -> set[str]:
    found = set()
    for token in TOKEN.findall(text):
        if "." in token and token in MESSAGES:  # "any", "count"… are English words too
            found.add(token)
        elif token in INTERNAL and (lang == "vi" or "_" in token or "." in token):
            found.add(token)  # English prose may say "delivered"; never "dead_lettered"
    return found


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_every_page_in_both_languages_shows_no_raw_key_or_value(
    start_gateway: StartGateway,
    push_receiver: PushReceiver,
    console_clients: list[ConsoleClient],
) -> None:
    dead = await dead_letter(start_gateway, push_receiver)
    gw = dead.gateway
    admin = ConsoleClient(gw.base_url)
    console_clients.append(admin)
    await admin.login("admin", console_password(gw, "admin"))
    await admin.post(
        "/admin/dead-letters/replay", {"csrf_token": admin.csrf, "one": dead.delivery_id}
    )
    pages = [
        "/admin/",
        "/admin/documents",
        "/admin/documents?state=dead_lettered&sort=sender",
        "/admin/documents/live",
        f"/admin/documents/{dead.doc_id}",
        "/admin/dead-letters",
        "/admin/participants",
        "/admin/participants/new",
        f"/admin/participants/{DISTRICT}/edit",
        "/admin/audit",
        "/admin/reports",
        "/admin/reports?role=recipient&granularity=day",
        "/admin/users",
        "/admin/account/password",
        "/admin/documents?since=yesterday",
        "/admin/nowhere",
    ]
    anonymous = ConsoleClient(gw.base_url)
    console_clients.append(anonymous)
    problems = {}
    for lang in ("vi", "en"):
        for path in pages:
            sep = "&" if "?" in path else "?"
            status, page, _ = await admin.get(f"{path}{sep}lang={lang}")
            assert status in (200, 400, 404), (path, status)
            if found := raw_values(shown_text(page), lang):
                problems[(lang, path)] = found
        _, login, _ = await anonymous.get(f"/admin/login?lang={lang}")
        if found := raw_values(shown_text(login), lang):
            problems[(lang, "/admin/login")] = found
    assert problems == {}


def test_the_check_finds_what_the_issue_saw() -> None:
    assert raw_values("Khối Nhà nước · state · province", "vi") == {"state", "province"}
    assert raw_values("Phương thức: mailbox", "vi") == {"mailbox"}
    assert raw_values("State: dead_lettered", "en") == {"dead_lettered"}
    assert raw_values("dash.title", "en") == {"dash.title"}
    assert raw_values("Delivered (deliveries)", "en") == set()
