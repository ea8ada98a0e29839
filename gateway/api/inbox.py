"""``/api/v1/inbox``: what waits in the caller's mailbox, the package bytes, and acknowledgement."""

from __future__ import annotations

from aiohttp import web

from gateway.api.auth import authenticate
from gateway.core.errors import InputError, NotFoundError
from gateway.core.methods import DeliveryMethod
from gateway.edxml.formats import PackageFormat
from gateway.store.records import DeliveryState
from gateway.web.keys import DELIVERY_LOG

routes = web.RouteTableDef()

MAX_PAGE = 500


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise InputError(f"limit must be 1..{MAX_PAGE}", code="http.bad_query")
    return int(raw)


@routes.get("/api/v1/inbox")
async def list_inbox(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    items = await request.app[DELIVERY_LOG].inbox(caller.organ_id, limit=_limit(request))
    return web.json_response(
        {
            "items": [
                {
                    "id": item.delivery.id,
                    "document": item.document.id,
                    "document_id": item.document.document_id,
                    "kind": item.document.kind.value,
                    "sender": item.document.sender,
                    "subject": item.document.subject,
                    "status_code": item.document.status_code.value
                    if item.document.status_code
                    else None,
                    "received_at": item.document.received_at.isoformat(),
                    "size_bytes": item.document.size_bytes,
                    "format": item.document.format.value,
                }
                for item in items
            ]
        }
    )


@routes.get("/api/v1/inbox/{id}")
async def fetch(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    log = request.app[DELIVERY_LOG]
    delivery = await log.get_delivery(request.match_info["id"])
    if (
        delivery is None
        or delivery.recipient != caller.organ_id
        or delivery.method is not DeliveryMethod.MAILBOX
        or delivery.state is not DeliveryState.DELIVERED
    ):
        raise NotFoundError("no such item in your mailbox", code="not_found.inbox_item")
    view = await log.get_document(delivery.document)
    assert view is not None  # a delivery always has its document (foreign key)
    package = await log.get_package(view.document.package_sha256)
    return web.Response(
        body=package,
        content_type=PackageFormat(view.document.format).media_type,
        headers={"X-LGSP-Document": view.document.id, "X-LGSP-Delivery-Id": delivery.id},
    )


@routes.post("/api/v1/inbox/{id}/ack")
async def ack(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    delivery = await request.app[DELIVERY_LOG].ack_inbox(caller.organ_id, request.match_info["id"])
    acked_at = delivery.acked_at.isoformat() if delivery.acked_at else None
    return web.json_response({"id": delivery.id, "acked_at": acked_at})
