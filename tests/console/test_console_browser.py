"""The console in Debian's Chromium (Playwright): a viewer, then an operator who finds a document
and replays its dead letter until it is delivered. Each page is saved as a screenshot."""

from __future__ import annotations

import asyncio

import pytest
from console_kit import console_password, dead_letter, login_page, screenshot
from playwright.async_api import Browser, Page, expect
from service.service_kit import DISTRICT, PushReceiver, StartGateway

WAIT_S = 20

# The console's own behaviour does not depend on the store: run on SQLite (the store's
# queries are tested on both backends in tests/store and test_console_stats).
pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


async def _state_of(page: Page) -> str:
    return (await page.locator("#recipients tbody tr .state").first.inner_text()).strip()


async def test_viewer_reads_in_vietnamese_and_cannot_replay_then_operator_replays(
    start_gateway: StartGateway, push_receiver: PushReceiver, browser: Browser
) -> None:
    dead = await dead_letter(start_gateway, push_receiver)
    gw = dead.gateway
    base = gw.base_url

    # -- a viewer: Vietnamese pages, read only ---------------------------------------------
    viewer = await (await browser.new_context()).new_page()
    await login_page(viewer, base, "viewer", console_password(gw, "viewer"))
    await expect(viewer.locator("h1")).to_have_text("Tổng quan")
    assert await viewer.locator("html").get_attribute("lang") == "vi"
    await expect(viewer.locator("header nav")).to_contain_text("Gói tin lỗi")
    await viewer.click("text=Gói tin lỗi")
    row = viewer.locator(f'tr[data-delivery="{dead.delivery_id}"]')
    await expect(row).to_contain_text("HTTP 400")
    assert await viewer.locator("button[name=one]").count() == 0
    await expect(viewer.locator("main")).to_contain_text("Tài khoản chỉ xem không được gửi lại.")
    await screenshot(viewer, "dead-letters-viewer-vi")
    csrf = await viewer.locator("input[name=csrf_token]").first.input_value()
    refused = await viewer.request.post(
        f"{base}/admin/dead-letters/replay", form={"csrf_token": csrf, "one": dead.delivery_id}
    )
    assert refused.status == 403
    await viewer.click("text=English")
    await expect(viewer.locator("h1")).to_have_text("Dead letters")
    assert await viewer.locator("html").get_attribute("lang") == "en"
    await screenshot(viewer, "dead-letters-viewer-en")

    # -- an operator: failed log-in, then log-in -------------------------------------------
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{base}/admin/")
    await expect(page.locator("h1")).to_have_text("Đăng nhập")  # redirected to the log-in form
    await screenshot(page, "login")
    await login_page(page, base, "operator", "wrong password")
    await expect(page.locator("[role=alert]")).to_have_text("Sai tên đăng nhập hoặc mật khẩu.")
    await screenshot(page, "login-failed")
    await login_page(page, base, "operator", console_password(gw, "operator"))
    await expect(page.locator("h1")).to_have_text("Tổng quan")
    await expect(page.locator("#failing")).to_contain_text(DISTRICT)
    await expect(page.locator("#health")).to_contain_text("chưa cấu hình")  # national link
    assert await page.locator("svg.chart rect.bar").count() == 24
    await screenshot(page, "dashboard")

    # -- a POST without the CSRF token is refused ------------------------------------------
    forged = await page.request.post(
        f"{base}/admin/dead-letters/replay", form={"one": dead.delivery_id}
    )
    assert forged.status == 403

    # -- search by DocumentId, open the document -------------------------------------------
    await page.click("header nav >> text=Nhật ký chuyển văn bản")
    await page.fill("input[name=document_id]", str(dead.document.document_id))
    await page.click("form.search button[type=submit]")
    await expect(page.locator("#result-count")).to_have_text("1 văn bản")
    await screenshot(page, "search")
    await page.click(f"table.results >> text={dead.document.document_id}")
    await expect(page.locator("#recipients")).to_contain_text(DISTRICT)
    assert await _state_of(page) == "Lỗi, chờ gửi lại"
    await expect(page.locator("#header")).to_contain_text("V/v thử nghiệm liên thông văn bản")
    await expect(page.locator("#signature ol.chain li")).not_to_have_count(0)
    await expect(page.locator("#events")).to_contain_text("dead_lettered")
    await screenshot(page, "document")
    async with page.expect_download() as download_info:
        await page.click("#attachments a.download")
    download = await download_info.value
    assert download.suggested_filename == "cong-van.pdf"
    path = await download.path()
    assert path.read_bytes() == dead.document.attachments[0].data()

    # -- replay the dead letter; it is delivered with the same Idempotency-Key -------------
    await page.click("header nav >> text=Gói tin lỗi")
    await screenshot(page, "dead-letters")
    await page.click(f'tr[data-delivery="{dead.delivery_id}"] button[name=one]')
    await expect(page.locator("[role=status]")).to_have_text("Đã gửi lại 1 gói tin.")
    await gw.wait_for(
        dead.doc_id,
        "000.00.04.H56",
        lambda v: v["recipients"][0]["state"] == "delivered",
        timeout_s=WAIT_S,
    )
    assert push_receiver.delivered == [dead.signed]
    keys = [headers["Idempotency-Key"] for headers, _ in push_receiver.received]
    assert keys == [dead.delivery_id, dead.delivery_id]
    await page.goto(f"{base}/admin/documents/{dead.doc_id}")
    assert await _state_of(page) == "Đã chuyển"
    await expect(page.locator("#timeline")).to_contain_text("Gửi lại theo yêu cầu")
    await screenshot(page, "document-delivered")

    # -- the audit trail names who replayed what -------------------------------------------
    await page.click("header nav >> text=Nhật ký thao tác")
    replay_row = page.locator('table.audit tr[data-action="replay"]')
    await expect(replay_row).to_contain_text("operator")
    await expect(replay_row).to_contain_text(dead.delivery_id)
    await screenshot(page, "audit")
    await page.click("header nav >> text=Đơn vị kết nối")
    await expect(page.locator(f'tr[data-organ="{DISTRICT}"]')).to_contain_text("Đẩy qua HTTP")
    await screenshot(page, "participants")
    await page.click(f'tr[data-organ="{DISTRICT}"] >> text=Sửa')
    await expect(page.locator("input[name=delivery_url]")).to_have_value(push_receiver.url)
    await screenshot(page, "participant-edit")
    await asyncio.gather(viewer.context.close(), page.context.close())
