"""Session cookies are Secure when the gateway serves TLS (or a proxy in front of it did)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from service.service_kit import free_port

from gateway.console.passwords import hash_password
from gateway.console.setup import setup_console
from gateway.core.settings import Settings, load_settings
from gateway.demo import pki
from gateway.store import DeliveryLog
from gateway.store.counters import Counters
from gateway.web.keys import DELIVERY_LOG, RATE_LIMITS, SETTINGS
from gateway.web.rate_limits import RateLimits

PASSWORD = "mật khẩu của An"


@pytest.fixture
async def tls_console(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """Only the console: ``(URL with the TLS settings, URL of the same without TLS)``."""
    pki.init_pki(tmp_path / "pki", key_type="ec", participants=())
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[http]\ntls_cert = "pki/gateway/cert.pem"\ntls_key = "pki/gateway/key.pem"\n'
        '[store]\nurl = "sqlite+aiosqlite:///log.db"\n'
        f'[[admin.user]]\nusername = "an"\npassword_hash = "{hash_password(PASSWORD)}"\n',
        encoding="utf-8",
    )
    settings = load_settings(config, env={})
    await (await DeliveryLog.open(settings.store.url)).aclose()  # creates the tables
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    assert settings.http.tls_cert is not None
    assert settings.http.tls_key is not None
    context.load_cert_chain(settings.http.tls_cert, settings.http.tls_key)
    plain = replace(settings, http=replace(settings.http, tls_cert=None, tls_key=None))
    runners = []
    urls = []
    for these, ssl_context in ((settings, context), (plain, None)):
        runner = web.AppRunner(_console_only(these), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
        runners.append(runner)
        urls.append(f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}")
    yield urls[0], urls[1]
    for runner in runners:
        await runner.cleanup()


def _console_only(settings: Settings) -> web.Application:
    """The console, the delivery log it shares its database engines with, and the rate limits
    its log-in counts failures against; nothing else."""
    app = web.Application()
    app[SETTINGS] = settings

    async def delivery_log(app: web.Application) -> AsyncIterator[None]:
        app[DELIVERY_LOG] = log = await DeliveryLog.open(settings.store.url)
        app[RATE_LIMITS] = RateLimits.from_settings(
            Counters(lambda: log.engines), settings.rate_limit
        )
        yield
        await app[DELIVERY_LOG].aclose()

    app.cleanup_ctx.append(delivery_log)
    setup_console(app)
    return app


async def _login_cookies(base_url: str) -> dict[str, str]:
    """Log in as ``an``: the raw Set-Cookie headers of the log-in form's and the session's
    cookies."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.get(f"{base_url}/admin/login", ssl=False) as r:
            assert r.status == 200
            page = await r.text()
            [form_cookie] = r.headers.getall("Set-Cookie")
        token = page.split('name="csrf_token" value="')[1].split('"')[0]
        async with session.post(
            f"{base_url}/admin/login",
            ssl=False,
            allow_redirects=False,
            data={"csrf_token": token, "username": "an", "password": PASSWORD},
        ) as r:
            assert r.status == 303
            session_cookie = next(
                h for h in r.headers.getall("Set-Cookie") if h.startswith("lgsp_console=")
            )
    return {"lgsp_console_login": form_cookie, "lgsp_console": session_cookie}


async def test_cookies_are_secure_over_tls_and_behind_a_tls_proxy(
    tls_console: tuple[str, str],
) -> None:
    https_url, http_url = tls_console
    cookies = await _login_cookies(https_url)
    for name in ("lgsp_console_login", "lgsp_console"):
        assert "; Secure" in cookies[name], cookies[name]
        assert "HttpOnly" in cookies[name]
        assert "SameSite=Strict" in cookies[name]

    async with aiohttp.ClientSession() as session:
        for proto, secure in (("https", True), (None, False)):
            headers = {"X-Forwarded-Proto": proto} if proto else {}
            async with session.get(f"{http_url}/admin/login", headers=headers) as r:
                [cookie] = r.headers.getall("Set-Cookie")
            assert ("; Secure" in cookie) is secure, cookie
