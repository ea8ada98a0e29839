"""The reports page in Chromium, in Vietnamese and English, and its CSV and xlsx exports opened
and checked against the delivery log's own counts."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest
from console_kit import console_password, dead_letter, login_page, screenshot
from playwright.async_api import Browser, expect
from service.service_kit import DEPARTMENT, DISTRICT, PushReceiver, StartGateway, new_document
from sqlalchemy import func, select

from gateway.store import DeliveryLog
from gateway.store.tables import deliveries, documents

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


async def _log_counts(store_url: str) -> dict[str, int]:
    """What the log itself says: documents DEPARTMENT sent, deliveries by state."""
    log = await DeliveryLog.open(store_url)
    try:
        async with log.engines.reader.connect() as conn:
            sent = await conn.scalar(
                select(func.count())
                .select_from(documents)
                .where(documents.c.sender == DEPARTMENT, documents.c.kind == "document")
            )
            states = dict(
                (
                    await conn.execute(
                        select(deliveries.c.state, func.count()).group_by(deliveries.c.state)
                    )
                ).all()
            )
    finally:
        await log.aclose()
    return {"sent": int(sent or 0), **{k: int(v) for k, v in states.items()}}


async def test_reports_page_in_both_languages_and_its_exports_match_the_log(
    start_gateway: StartGateway, push_receiver: PushReceiver, browser: Browser, store_url: str
) -> None:
    dead = await dead_letter(start_gateway, push_receiver)  # one dead-lettered delivery
    gw = dead.gateway
    for _ in range(2):  # two more, delivered
        status, answer = await gw.submit(
            gw.sign(new_document(DEPARTMENT, [DISTRICT]), DEPARTMENT), DEPARTMENT
        )
        assert status == 202
        await gw.wait_for(
            answer["id"], DEPARTMENT, lambda v: v["recipients"][0]["state"] == "delivered"
        )
    counts = await _log_counts(store_url)
    assert counts["sent"] == 3
    assert counts["delivered"] == 2
    assert counts["dead_lettered"] == 1

    page = await (await browser.new_context(accept_downloads=True)).new_page()
    await login_page(page, gw.base_url, "viewer", console_password(gw, "viewer"))
    await page.click("header nav >> text=Báo cáo thống kê")
    await expect(page.locator("h1")).to_have_text("Báo cáo thống kê văn bản điện tử")
    agency = page.locator(f'#report-agencies tr[data-organ="{DEPARTMENT}"]')
    await expect(agency).to_contain_text("Cấp huyện, sở, ngành (cấp 2)")
    cells = await agency.locator("td.num").all_inner_texts()
    assert cells[:1] == ["3"]  # documents sent
    assert await page.locator("#report-chart svg.chart rect.bar").count() >= 1
    await screenshot(page, "reports-vi")

    await page.select_option("select[name=role]", "recipient")
    await page.select_option("select[name=granularity]", "day")
    await page.click("#report-form button[type=submit]")
    await expect(page.locator(f'#report-agencies tr[data-organ="{DISTRICT}"]')).to_be_visible()
    await page.click("text=English")
    await expect(page.locator("h1")).to_have_text("Electronic document reports")
    await expect(page.locator("#report-levels")).to_contain_text("District or department")
    await screenshot(page, "reports-en")

    # -- exports: a CSV and a spreadsheet, downloaded by the browser and read back ----------
    await page.click("text=Tiếng Việt")
    await page.select_option("select[name=role]", "sender")
    await page.click("#report-form button[type=submit]")
    async with page.expect_download() as got_csv:
        await page.click("#export-csv")
    csv_path = await (await got_csv.value).path()
    rows = list(csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8-sig"))))
    head = rows[0]
    by_organ = {row[0]: dict(zip(head, row, strict=True)) for row in rows[1:] if row[0]}
    sender_row = by_organ[DEPARTMENT]
    assert int(sender_row["Văn bản đi (văn bản)"]) == counts["sent"]
    assert int(sender_row["Chuyển thành công (lượt)"]) == counts["delivered"]
    assert int(sender_row["Lỗi, chờ gửi lại (lượt)"]) == counts["dead_lettered"]
    total = dict(zip(head, rows[-1], strict=True))
    assert total["Tên đơn vị"] == "Toàn tỉnh"
    assert int(total["Lượt chuyển (lượt)"]) == sum(
        counts.get(s, 0)
        for s in ("accepted", "queued", "delivered", "retrying", "failed", "dead_lettered")
    )

    async with page.expect_download() as got_xlsx:
        await page.click("#export-xlsx")
    xlsx_path = await (await got_xlsx.value).path()
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx_path.read_bytes())).active
    assert sheet is not None
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert values[0][0] == "Báo cáo thống kê văn bản điện tử"
    header_at = next(i for i, r in enumerate(values) if r[0] == "Mã định danh")
    xhead = values[header_at]
    xrow = dict(zip(xhead, next(r for r in values if r[0] == DEPARTMENT), strict=True))
    assert xrow["Văn bản đi (văn bản)"] == counts["sent"]
    assert xrow["Chuyển thành công (lượt)"] == counts["delivered"]
    assert xrow["Lỗi, chờ gửi lại (lượt)"] == counts["dead_lettered"]
    await screenshot(page, "reports-sender-vi")
