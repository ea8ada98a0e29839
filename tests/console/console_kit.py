"""Console test kit: a console HTTP client with its own cookies, Chromium for Playwright, and
where screenshots go. Test modules import from here (``from console_kit import …``)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright
from service.service_kit import (
    DEPARTMENT,
    DISTRICT,
    Gateway,
    PushReceiver,
    StartGateway,
    new_document,
)

from gateway.edxml.model import DocumentPackage

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-output" / "console"
CHROMIUM = Path(os.environ.get("LGSP_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def console_password(gw: Gateway, username: str) -> str:
    """The demo's password of a console user, from credentials.json."""
    creds = json.loads(gw.setup.credentials_path.read_text(encoding="utf-8"))
    return str(creds["_console"][username]["password"])


@dataclass(frozen=True)
class DeadLetter:
    """A document DEPARTMENT sent to DISTRICT whose push endpoint refused it (HTTP 400)."""

    gateway: Gateway
    document: DocumentPackage
    signed: bytes
    doc_id: str  # the gateway's id of the document
    delivery_id: str


async def dead_letter(start_gateway: StartGateway, receiver: PushReceiver) -> DeadLetter:
    """A gateway pushing to DISTRICT, whose endpoint answers 400 to the first document."""
    gw = await start_gateway(push={DISTRICT: receiver.url})
    receiver.script = [400]
    document = new_document(DEPARTMENT, [DISTRICT])
    signed = gw.sign(document, DEPARTMENT)
    status, answer = await gw.submit(signed, DEPARTMENT)
    assert status == 202, answer
    await gw.wait_for(
        answer["id"], DEPARTMENT, lambda v: v["recipients"][0]["state"] == "dead_lettered"
    )
    return DeadLetter(gw, document, signed, answer["id"], answer["recipients"][0]["delivery_id"])


def csrf_token(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


@dataclass
class ConsoleClient:
    """A browser-like HTTP client of one gateway's console (cookies kept, redirects not)."""

    base_url: str
    session: aiohttp.ClientSession = field(
        default_factory=lambda: aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    )
    csrf: str = ""

    async def get(self, path: str) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.session.get(self.base_url + path, allow_redirects=False) as r:
            text = await r.text()
        if r.status == 200 and "csrf_token" in text:
            self.csrf = csrf_token(text)
        return r.status, text, r

    async def post(
        self,
        path: str,
        data: dict[str, Any] | list[tuple[str, str]],
    ) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.session.post(self.base_url + path, data=data, allow_redirects=False) as r:
            return r.status, await r.text(), r

    async def login(self, username: str, password: str) -> aiohttp.ClientResponse:
        await self.get("/admin/login")
        _, _, response = await self.post(
            "/admin/login",
            {
                "csrf_token": self.csrf,
                "username": username,
                "password": password,
                "next": "/admin/",
            },
        )
        if response.status == 303:
            await self.get("/admin/")  # picks up the session's CSRF token
        return response

    async def close(self) -> None:
        await self.session.close()


async def login_page(page: Page, base_url: str, username: str, password: str) -> None:
    await page.goto(f"{base_url}/admin/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")


async def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot under test-output/console/ (git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def chromium_path() -> Path:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    return CHROMIUM


@pytest.fixture
async def browser(chromium_path: Path) -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, making no connections of its own."""
    args = [*CHROMIUM_ARGS, *(["--no-sandbox"] if os.geteuid() == 0 else [])]
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(chromium_path), args=args, headless=True
        )
        yield chromium
        await chromium.close()


@pytest.fixture
async def console_clients() -> AsyncIterator[list[ConsoleClient]]:
    """Clients made by a test (``ConsoleClient(gw.base_url)``, appended here) are closed after."""
    clients: list[ConsoleClient] = []
    yield clients
    for client in clients:
        await client.close()
