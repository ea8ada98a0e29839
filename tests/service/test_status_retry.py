"""A status package sent again (the same bytes) sets the business status if its first recording
left it unset (the record committed, then setting the status failed), and changes nothing when
it is set already."""

from __future__ import annotations

import pytest
from service.service_kit import (
    DEPARTMENT,
    DISTRICT,
    StartGateway,
    new_document,
    status_for,
)
from sqlalchemy import update

from gateway.store import DeliveryLog
from gateway.store.tables import deliveries

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


async def test_a_resent_status_package_sets_an_unset_business_status_once(
    start_gateway: StartGateway, store_url: str
) -> None:
    gw = await start_gateway()
    document = new_document(DEPARTMENT, [DISTRICT])
    status, answer = await gw.submit(gw.sign(document, DEPARTMENT), DEPARTMENT)
    assert status == 202, answer
    reply = gw.sign(status_for(document, DISTRICT, "05"), DISTRICT)
    status, first = await gw.submit(reply, DISTRICT)
    assert status == 202, first
    view = await gw.wait_for(  # delivered too: its event must not land between the counts
        answer["id"],
        DEPARTMENT,
        lambda v: (
            v["recipients"][0]["business_status"] == "05"
            and v["recipients"][0]["state"] == "delivered"
        ),
    )
    events = len(view["recipients"][0]["trace"])

    status, again = await gw.submit(reply, DISTRICT)  # already set: nothing changes
    assert (status, again["id"]) == (200, first["id"])
    _, view = await gw.get(f"/api/v1/documents/{answer['id']}", DEPARTMENT)
    assert len(view["recipients"][0]["trace"]) == events

    log = await DeliveryLog.open(store_url)  # what a failure after the commit leaves
    try:
        async with log.engines.writer.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.document == answer["id"])
                .values(business_status=None, business_status_at=None)
            )
    finally:
        await log.aclose()
    _, view = await gw.get(f"/api/v1/documents/{answer['id']}", DEPARTMENT)
    assert view["recipients"][0]["business_status"] is None

    status, retried = await gw.submit(reply, DISTRICT)
    assert (status, retried["id"]) == (200, first["id"])
    _, view = await gw.get(f"/api/v1/documents/{answer['id']}", DEPARTMENT)
    assert view["recipients"][0]["business_status"] == "05"
