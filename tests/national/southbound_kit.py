"""Southbound test kit: SDK clients for a demo gateway's systems, and raw re-sends of calls."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from national_kit import JavaSdkClient, SdkFactory
from service.service_kit import Gateway

DEPARTMENT, DISTRICT = "000.00.04.H56", "000.00.15.H56"
ANSWER_KEYS = {"status", "ErrorCode", "ErrorDesc"}
ITEM_KEYS = {
    "docId",
    "serviceType",
    "messageType",
    "created_time",
    "updated_time",
    "from",
    "to",
    "status",
    "status_desc",
}
sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def endpoint(gateway: Gateway) -> str:
    return f"{gateway.base_url}/XrdAdapter/adapter"


def sdk_for(java_sdk: SdkFactory, gateway: Gateway, organ_id: str, **kwargs: Any) -> JavaSdkClient:
    """A new SDK object for ``organ_id``'s system (credentials from ``lgsp demo init``)."""
    creds = json.loads(gateway.setup.credentials_path.read_text(encoding="utf-8"))[organ_id]
    return java_sdk(endpoint(gateway), creds["system_id"], creds["secret"], **kwargs)


def delivered_to(organ_id: str) -> Any:
    return lambda view: any(
        r["organ_id"] == organ_id and r["state"] == "delivered" for r in view["recipients"]
    )


async def only_item(sdk: JavaSdkClient, messagetype: str) -> dict[str, Any]:
    status, listed = await sdk.get_received_edoc_list(messagetype)
    assert status == 200, listed
    assert set(listed) == ANSWER_KEYS | {"data"}
    [item] = listed["data"]
    assert set(item) == ITEM_KEYS
    assert (item["messageType"], item["serviceType"]) == (messagetype, "eDoc")
    return dict(item)


async def post_raw(
    gateway: Gateway, operation: str, headers: Any, body: Any = b""
) -> tuple[int, dict[str, Any]]:
    """Send ``headers`` (e.g. a captured call's) as they are to ``operation``."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{endpoint(gateway)}/{operation}", headers=headers, data=body) as response,
    ):
        assert response.content_type == "application/json"
        return response.status, await response.json()
