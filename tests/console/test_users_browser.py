"""User management end to end in Chromium: the configured administrator creates a user who must
choose a password at first log-in, changes the role, forces another password change, disables
the user (whose session then ends); every change is in the audit trail; non-administrators are
refused."""

from __future__ import annotations

import pytest
from console_kit import ConsoleClient, console_password, login_page, screenshot
from playwright.async_api import Browser, expect
from service.service_kit import StartGateway

from gateway.store import DeliveryLog
from gateway.store.engine import transaction
from gateway.store.tables import console_users

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
FIRST_PASSWORD = "tạm-thời-12345"
OWN_PASSWORD = "mật-khẩu-riêng-67890"


async def test_an_administrator_manages_users_end_to_end(
    start_gateway: StartGateway,
    browser: Browser,
    store_url: str,
    console_clients: list[ConsoleClient],
) -> None:
    gw = await start_gateway()
    base = gw.base_url
    admin = await (await browser.new_context()).new_page()
    await login_page(admin, base, "admin", console_password(gw, "admin"))
    await admin.click("header nav >> text=Người dùng")
    await expect(admin.locator("h1")).to_have_text("Quản lý người dùng")
    await expect(admin.locator('tr[data-user="operator"]')).to_contain_text("tệp cấu hình")

    # -- create a viewer who must choose a password -----------------------------------------
    await admin.fill("#new-user input[name=username]", "lan")
    await admin.fill("#new-user input[name=password]", "short")
    await admin.click("#new-user button[type=submit]")
    await expect(admin.locator("[role=alert]")).to_have_text("Mật khẩu phải dài ít nhất 10 ký tự.")
    await admin.fill("#new-user input[name=password]", FIRST_PASSWORD)
    await admin.select_option("#new-user select[name=role]", "viewer")
    await admin.click("#new-user button[type=submit]")
    await expect(admin.locator("#users-done")).to_have_text("Đã tạo người dùng lan.")
    row = admin.locator('tr[data-user="lan"]')
    await expect(row).to_contain_text("phải đổi mật khẩu khi đăng nhập")
    await screenshot(admin, "users-created")

    # -- lan logs in and is made to choose a password first ---------------------------------
    lan = await (await browser.new_context()).new_page()
    await login_page(lan, base, "lan", FIRST_PASSWORD)
    await expect(lan.locator("h1")).to_have_text("Đổi mật khẩu")
    await lan.goto(f"{base}/admin/documents")
    await expect(lan.locator("h1")).to_have_text("Đổi mật khẩu")  # nothing else until then
    await screenshot(lan, "users-forced-password")
    await lan.fill("input[name=current_password]", FIRST_PASSWORD)
    await lan.fill("input[name=new_password]", OWN_PASSWORD)
    await lan.fill("input[name=confirm_password]", OWN_PASSWORD)
    await lan.click("main button[type=submit]")
    await expect(lan.locator("h1")).to_have_text("Tổng quan")
    assert await lan.locator("header nav >> text=Người dùng").count() == 0  # not an admin
    refused = await lan.request.get(f"{base}/admin/users")
    assert refused.status == 403

    # -- the administrator makes lan an operator, then forces a new password ---------------
    await admin.reload()
    await row.locator("select[name=role]").select_option("operator")
    await row.locator("form.role-form button").click()
    await expect(admin.locator("#users-done")).to_have_text("Đã đổi vai trò của lan.")
    await lan.goto(f"{base}/admin/")
    await expect(lan.locator("header .who")).to_contain_text("vận hành")
    await row.locator("form.force-form button").click()
    await expect(admin.locator("#users-done")).to_contain_text("lan sẽ phải đổi mật khẩu")
    await lan.goto(f"{base}/admin/dead-letters")
    await expect(lan.locator("h1")).to_have_text("Đổi mật khẩu")

    # -- disabled: the session ends, the password no longer works --------------------------
    await row.locator("button.danger").click()
    await expect(admin.locator("#users-done")).to_have_text("Đã khóa tài khoản lan.")
    await lan.goto(f"{base}/admin/")
    await expect(lan.locator("h1")).to_have_text("Đăng nhập")
    client = ConsoleClient(base)
    console_clients.append(client)
    assert (await client.login("lan", OWN_PASSWORD)).status == 401
    await screenshot(admin, "users-disabled")

    # -- the audit trail, and the store (never a plain password) ---------------------------
    await admin.click("header nav >> text=Nhật ký thao tác")
    for action in (
        "user.create",
        "user.password",
        "user.role",
        "user.force_password",
        "user.disable",
    ):
        await expect(admin.locator(f'tr[data-action="{action}"]').first).to_be_visible()
    assert OWN_PASSWORD not in await admin.content()
    log = await DeliveryLog.open(store_url)
    try:
        async with transaction(log.engines.reader) as conn:
            stored = (
                await conn.execute(console_users.select().where(console_users.c.username == "lan"))
            ).one()
    finally:
        await log.aclose()
    assert stored.password_hash.startswith("$argon2id$")
    assert stored.role == "operator"
    assert stored.disabled
    assert stored.created_by == "admin"

    # -- an operator cannot manage users, even with a valid session token -------------------
    operator = ConsoleClient(base)
    console_clients.append(operator)
    await operator.login("operator", console_password(gw, "operator"))
    status, _, _ = await operator.post(
        "/admin/users",
        {
            "csrf_token": operator.csrf,
            "username": "mallory",
            "password": "x" * 12,
            "role": "administrator",
        },
    )
    assert status == 403
