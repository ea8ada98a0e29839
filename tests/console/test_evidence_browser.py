"""The document page offers the evidence bundle to every console role: a viewer downloads it in
Chromium and it verifies offline against the gateway's exported trust directory."""

from __future__ import annotations

import pytest
from console_kit import ConsoleClient, console_password, login_page, screenshot
from playwright.async_api import Browser, expect
from service.service_kit import DEPARTMENT, DISTRICT, StartGateway, new_document

from gateway.evidence.bundle_check import check_bundle
from gateway.evidence.bundle_format import Trust

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


async def test_a_viewer_downloads_a_bundle_that_verifies_offline(
    start_gateway: StartGateway, browser: Browser, console_clients: list[ConsoleClient]
) -> None:
    gw = await start_gateway()
    document = new_document(DEPARTMENT, [DISTRICT])
    status, answer = await gw.submit(gw.sign(document, DEPARTMENT), DEPARTMENT)
    assert status == 202, answer

    page = await (await browser.new_context()).new_page()
    await login_page(page, gw.base_url, "viewer", console_password(gw, "viewer"))
    await page.goto(f"{gw.base_url}/admin/documents/{answer['id']}")
    link = page.locator("#evidence-bundle")
    await expect(link).to_have_text("Tải hồ sơ chứng cứ (kiểm tra được ngoại tuyến)")
    await screenshot(page, "document-evidence-link")
    async with page.expect_download() as download_info:
        await link.click()
    download = await download_info.value
    assert download.suggested_filename == f"evidence-{answer['id']}.zip"
    data = (await download.path()).read_bytes()
    report = check_bundle(data, Trust.from_dir(gw.setup.dir / "archive" / "trust"))
    assert report.document == answer["id"]
    assert report.pinned
    assert any("not time-stamped" in line for line in report.lines)  # the demo sets no TSA
    await page.context.close()

    # the download is audited; without a session there is none
    operator = ConsoleClient(gw.base_url)
    console_clients.append(operator)
    await operator.login("operator", console_password(gw, "operator"))
    _, audit, _ = await operator.get("/admin/audit")
    assert 'data-action="evidence.bundle"' in audit
    anonymous = ConsoleClient(gw.base_url)
    console_clients.append(anonymous)
    code, _, _ = await anonymous.get(f"/admin/documents/{answer['id']}/evidence")
    assert code in (302, 303)
