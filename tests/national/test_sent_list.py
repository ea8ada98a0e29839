"""Southbound ``getSentEdocList`` as the national SDK calls it: one item per recipient, the
fields of reference §3.1a, the receiving side's status as it changes."""

from __future__ import annotations

import pytest
from national_kit import SdkFactory
from service.service_kit import (  # noqa: F401 (start_gateway is a fixture)
    StartGateway,
    new_document,
    start_gateway,
)
from test_southbound import ANSWER_KEYS, DEPARTMENT, DISTRICT, delivered_to, only_item, sdk_for

from gateway.national.sent_list import notation

SENT_KEYS = {
    "serviceType",
    "receiverDocId",
    "toCode",
    "receiveStatus",
    "title",
    "messageType",
    "notation",
    "receivedTime",
    "sentTime",
    "sendStatus",
    "sendStatusDesc",
    "senderDocId",
    "fromCode",
    "receiveStatusDesc",
}


def test_the_notation_is_the_document_ids_last_part() -> None:
    assert notation("000.00.00.G22,2015/09/30,7816/VPCP-TTĐT") == "7816/VPCP-TTĐT"
    assert notation(None) == ""
    assert notation("no commas") == ""


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_a_system_lists_what_it_sent_with_the_recipients_status(
    start_gateway: StartGateway,  # noqa: F811
    java_sdk: SdkFactory,
) -> None:
    gateway = await start_gateway()
    department = sdk_for(java_sdk, gateway, DEPARTMENT)
    district = sdk_for(java_sdk, gateway, DISTRICT)
    document = new_document(DEPARTMENT, [DISTRICT])
    status, sent = await department.send_edoc(
        gateway.sign(document, DEPARTMENT), "cv.edxml", from_=DEPARTMENT, to=[DISTRICT]
    )
    assert status == 200
    await gateway.wait_for(sent["DocId"], DEPARTMENT, delivered_to(DISTRICT))

    status, listed = await department.json_call(
        "getSentEdocList", {"servicetype": "eDoc", "messagetype": "edoc"}
    )
    assert (status, set(listed)) == (200, ANSWER_KEYS | {"data"})
    [item] = listed["data"]
    assert set(item) == SENT_KEYS
    assert (item["senderDocId"], item["fromCode"], item["toCode"]) == (
        sent["DocId"],
        DEPARTMENT,
        DISTRICT,
    )
    assert (item["messageType"], item["sendStatus"], item["receiveStatus"]) == (
        "edoc",
        "sent",
        "pending",
    )
    assert item["notation"] == str(document.header.document_id).split(",", 2)[2]
    assert item["title"] == document.header.subject

    received = await only_item(district, "edoc")
    assert received["docId"] == item["receiverDocId"]  # the id the recipient lists
    await district.update_status(received["docId"], "done")
    _, again = await department.json_call(
        "getSentEdocList", {"servicetype": "eDoc", "messagetype": "edoc"}
    )
    assert again["data"][0]["receiveStatus"] == "done"
    assert again["data"][0]["receivedTime"]
    _, statuses = await department.json_call(
        "getSentEdocList", {"servicetype": "eDoc", "messagetype": "status"}
    )
    assert statuses["data"] == []
