"""The search in Chromium: recipient and state columns, sorting, CSV export of the search, the
live view updating without a reload; and resending a dead letter from its document's page."""

from __future__ import annotations

import csv
import io

import pytest
from console_kit import console_password, dead_letter, login_page, screenshot
from playwright.async_api import Browser, expect
from service.service_kit import DEPARTMENT, DISTRICT, PushReceiver, StartGateway, new_document

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
WAIT_S = 20


async def test_search_columns_sorting_export_live_view_and_resend(
    start_gateway: StartGateway, push_receiver: PushReceiver, browser: Browser
) -> None:
    dead = await dead_letter(start_gateway, push_receiver)
    gw = dead.gateway
    page = await (await browser.new_context(accept_downloads=True)).new_page()
    await login_page(page, gw.base_url, "operator", console_password(gw, "operator"))

    # -- columns and counts: one document, one matching delivery ----------------------------
    await page.goto(f"{gw.base_url}/admin/documents?state=dead_lettered")
    row = page.locator(f'table.results tr[data-document="{dead.doc_id}"]')
    await expect(row.locator("td.recipients")).to_have_text(DISTRICT)
    await expect(row.locator("td.states")).to_contain_text("Lỗi, chờ gửi lại")
    await expect(page.locator("#result-count")).to_have_text(
        "1 văn bản · 1 lượt chuyển khớp điều kiện"
    )

    # -- the live view: a new document appears without a reload ----------------------------
    await page.goto(f"{gw.base_url}/admin/documents")
    await page.evaluate("window.notReloaded = true")
    await page.check("#live-toggle")
    assert "live=1" in page.url
    before = await page.locator("table.results tbody tr").count()
    fresh = new_document(DEPARTMENT, [DISTRICT], number="42")
    status, answer = await gw.submit(gw.sign(fresh, DEPARTMENT), DEPARTMENT)
    assert status == 202
    await expect(page.locator(f'tr[data-document="{answer["id"]}"]')).to_be_visible(
        timeout=WAIT_S * 1000
    )
    assert await page.locator("table.results tbody tr").count() == before + 1
    assert await page.evaluate("window.notReloaded") is True  # the same page, updated in place
    await expect(page.locator("#live-updated")).to_contain_text("Cập nhật lúc")
    await screenshot(page, "search-live")
    await page.uncheck("#live-toggle")

    # -- sorting by a column, both ways ---------------------------------------------------
    await page.click("table.results thead >> text=Mã văn bản (DocumentId)")
    first = await page.locator("table.results tbody tr td:nth-child(2)").all_inner_texts()
    assert first == sorted(first, reverse=True)
    await page.click("table.results thead >> text=Mã văn bản (DocumentId)")
    again = await page.locator("table.results tbody tr td:nth-child(2)").all_inner_texts()
    assert again == sorted(again)
    assert "sort=document_id" in page.url
    assert "dir=asc" in page.url
    await screenshot(page, "search-sorted")

    # -- CSV of the current search ----------------------------------------------------------
    await page.goto(f"{gw.base_url}/admin/documents?recipient={DISTRICT}")
    async with page.expect_download() as got:
        await page.click("#export-csv")
    text = (await (await got.value).path()).read_text(encoding="utf-8-sig")
    lines = list(csv.DictReader(io.StringIO(text)))
    assert {line["Mã bản ghi"] for line in lines} == {dead.doc_id, answer["id"]}
    states = {line["Mã lượt chuyển"]: line["Trạng thái chuyển"] for line in lines}
    assert states[dead.delivery_id] == "Lỗi, chờ gửi lại"
    assert {line["Phương thức"] for line in lines} == {"Đẩy qua HTTP"}

    # -- resend from the document page: same delivery id, audited --------------------------
    await page.goto(f"{gw.base_url}/admin/documents/{dead.doc_id}")
    recipient_row = page.locator(f'#recipients tr[data-delivery="{dead.delivery_id}"]')
    await expect(recipient_row).to_contain_text("Đẩy qua HTTP")
    await screenshot(page, "document-resend")
    await recipient_row.locator("form.resend button").click()
    await expect(page.locator("#recipients [role=status]")).to_be_visible()
    for _ in range(WAIT_S * 2):
        await page.reload()
        state = await recipient_row.locator(".state").first.inner_text()
        if state == "Đã chuyển":
            break
        await page.wait_for_timeout(500)
    assert state == "Đã chuyển"
    headers, _ = push_receiver.received[-1]
    assert headers["Idempotency-Key"] == dead.delivery_id
    await page.goto(f"{gw.base_url}/admin/audit")
    await expect(page.locator('tr[data-action="resend"]').first).to_contain_text(dead.delivery_id)
