"""Delivery errors by audience: senders and co-recipients see states and stable codes; the
remote side's answer and the push URL are for admins (admin API, console)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from service.service_kit import (
    COMMUNE,
    DEPARTMENT,
    DISTRICT,
    PushReceiver,
    StartGateway,
    new_document,
    states,
)

REMOTE_SECRET = "db-password=hunter2 at 10.0.0.7"  # what a misconfigured endpoint might answer
sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@sqlite_only
async def test_participants_see_codes_and_admins_see_the_remote_answer(
    start_gateway: StartGateway, push_receiver: PushReceiver
) -> None:
    gw = await start_gateway(push={DISTRICT: push_receiver.url})
    push_receiver.script = [400]
    push_receiver.body = REMOTE_SECRET
    signed = gw.sign(new_document(DEPARTMENT, [DISTRICT, COMMUNE]), DEPARTMENT)
    status, answer = await gw.submit(signed, DEPARTMENT)
    assert status == 202, answer

    sender_view = await gw.wait_for(
        answer["id"], DEPARTMENT, lambda v: states(v)[DISTRICT] == "dead_lettered"
    )
    status, co_recipient_view = await gw.get(f"/api/v1/documents/{answer['id']}", COMMUNE)
    assert status == 200

    for view in (sender_view, co_recipient_view):
        text = json.dumps(view)
        assert REMOTE_SECRET not in text
        assert push_receiver.url not in text
        [refused] = [r for r in view["recipients"] if r["organ_id"] == DISTRICT]
        assert "last_error" not in refused
        assert (refused["state"], refused["error_code"]) == ("dead_lettered", "delivery.refused")
        dead = [e for e in refused["trace"] if e["outcome"] == "dead_lettered"]
        assert [e["detail"] for e in dead] == [{"code": "delivery.refused", "attempt": 1}]

    admin = await admin_view(gw, answer["id"])
    [refused] = [r for r in admin["recipients"] if r["organ_id"] == DISTRICT]
    assert REMOTE_SECRET in refused["last_error"]
    assert refused["error_code"] == "delivery.refused"


async def admin_view(gw: Any, doc_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {gw.setup.admin_token}"}
    async with gw.session.get(
        f"{gw.base_url}/api/v1/admin/documents/{doc_id}", headers=headers
    ) as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


@sqlite_only
async def test_the_admin_document_view_needs_the_admin_token(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    signed = gw.sign(new_document(DEPARTMENT, [DISTRICT]), DEPARTMENT)
    _, answer = await gw.submit(signed, DEPARTMENT)
    url = f"{gw.base_url}/api/v1/admin/documents/{answer['id']}"
    async with gw.session.get(url, headers=gw.headers(DEPARTMENT)) as r:
        assert (r.status, (await r.json())["code"]) == (401, "auth.invalid_admin_token")
    headers = {"Authorization": f"Bearer {gw.setup.admin_token}"}
    async with gw.session.get(url + "x", headers=headers) as r:
        assert (r.status, (await r.json())["code"]) == (404, "not_found.document")
