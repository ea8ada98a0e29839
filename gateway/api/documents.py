"""``/api/v1/documents``: submit a signed package; read a document's deliveries and trace."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from gateway.api.auth import authenticate
from gateway.core.errors import InputError, LgspError, NotFoundError, UnavailableError
from gateway.edxml.formats import PackageFormat
from gateway.edxml.hardened import read_limited
from gateway.intake.pipeline import IntakeOutcome
from gateway.store.records import DeliveryRecord, DocumentView, EventRecord
from gateway.web.keys import DELIVERY_LOG, INTAKE, LIFECYCLE, METRICS, SETTINGS

routes = web.RouteTableDef()

_MEDIA_TYPES = {
    "application/xml": PackageFormat.XML,
    "text/xml": PackageFormat.XML,
    "application/edxml+xml": PackageFormat.XML,
    "application/jose": PackageFormat.JWS,
}


class ShuttingDownError(UnavailableError):
    default_code = "unavailable.shutting_down"


class UnsupportedMediaTypeError(InputError):
    http_status = 415
    default_code = "http.unsupported_media_type"


def _format_of(request: web.Request) -> PackageFormat:
    fmt = _MEDIA_TYPES.get(request.content_type)
    if fmt is None:
        raise UnsupportedMediaTypeError(
            f"unsupported Content-Type {request.content_type!r}: send application/xml (edXML) "
            "or application/jose (JWS)"
        )
    return fmt


@routes.post("/api/v1/documents")
async def submit(request: web.Request) -> web.Response:
    started = time.perf_counter()
    app = request.app
    try:
        if app[LIFECYCLE].draining:
            raise ShuttingDownError("the gateway is shutting down; retry shortly")
        caller = await authenticate(request)
        fmt = _format_of(request)
        body = await read_limited(
            request.content, app[SETTINGS].limits, declared_length=request.content_length
        )
        outcome = await app[INTAKE].submit(caller, body, fmt)
    except LgspError as exc:
        app[METRICS].rejected.labels(exc.code).inc()
        raise
    app[METRICS].accepted.labels(outcome.document.kind.value).inc()
    app[METRICS].accept_latency_s.observe(time.perf_counter() - started)
    return web.json_response(text=accepted_json(outcome), status=202 if outcome.created else 200)


# The characters ``json.dumps`` writes as they are (printable ASCII but the quote and backslash)
_JSON_PLAIN = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')


def accepted_json(outcome: IntakeOutcome) -> str:
    """``json.dumps`` of the accepted answer (the receipt last). A receipt (a compact JWS: 3 KB
    of base64url) that needs no escaping is appended as it is, sparing json its scan of it."""
    receipt = outcome.receipt
    if receipt.isascii() and not receipt.encode("ascii").translate(None, _JSON_PLAIN):
        return f'{json.dumps(_accepted_body(outcome))[:-1]}, "receipt": "{receipt}"}}'
    return json.dumps(_accepted_body(outcome) | {"receipt": receipt})


def _accepted_body(outcome: IntakeOutcome) -> dict[str, Any]:
    """The answer to an accepted package, but its receipt."""
    doc = outcome.document
    return {
        "id": doc.id,
        "document_id": doc.document_id,
        "kind": doc.kind.value,
        "duplicate": not outcome.created,
        "recipients": [
            {
                "organ_id": d.recipient,
                "state": d.state.value,
                "delivery_id": d.id,
                "method": d.method.value,
            }
            for d in outcome.deliveries
        ],
    }


@routes.get("/api/v1/documents/{id}")
async def show(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    view = await request.app[DELIVERY_LOG].get_document(request.match_info["id"])
    if view is None or not _visible_to(view, caller.organ_id):
        raise NotFoundError("no such document", code="not_found.document")
    return web.json_response(document_json(view, for_admin=False))


def _visible_to(view: DocumentView, organ_id: str) -> bool:
    doc = view.document
    return organ_id in (doc.sender, doc.caller) or any(
        d.recipient == organ_id for d in view.deliveries
    )


# Event details that may quote a remote side (its answer, a URL): admins only.
_ADMIN_ONLY_DETAIL = frozenset({"message", "error"})


def _event_json(event: EventRecord, for_admin: bool) -> dict[str, Any]:
    failed = event.detail.get("error") is not None
    detail = {
        k: v
        for k, v in event.detail.items()
        if for_admin or not (failed and k in _ADMIN_ONLY_DETAIL)
    }
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "kind": event.kind.value,
        "outcome": event.outcome,
        "detail": detail,
        "actor": event.actor,
        "delivery_id": event.delivery,
    }


def _delivery_json(
    delivery: DeliveryRecord, events: list[EventRecord], for_admin: bool
) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "organ_id": delivery.recipient,
        "delivery_id": delivery.id,
        "method": delivery.method.value,
        "state": delivery.state.value,
        "attempts": delivery.attempts,
        "error_code": delivery.last_error_code,
        "business_status": delivery.business_status.value if delivery.business_status else None,
        "business_status_at": (
            delivery.business_status_at.isoformat() if delivery.business_status_at else None
        ),
        "delivered_at": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
        "trace": [_event_json(e, for_admin) for e in events if e.delivery == delivery.id],
    }
    if for_admin:
        shown["last_error"] = delivery.last_error
    return shown


def document_json(view: DocumentView, *, for_admin: bool) -> dict[str, Any]:
    """A document as its sender and recipients see it, or (``for_admin``) with each delivery's
    ``last_error`` and the events' messages: the remote side's answers and the push URLs."""
    doc = view.document
    events = list(view.events)
    return {
        "id": doc.id,
        "document_id": doc.document_id,
        "kind": doc.kind.value,
        "sender": doc.sender,
        "caller": doc.caller,
        "format": doc.format.value,
        "subject": doc.subject,
        "business_doc_type": doc.business_doc_type.value if doc.business_doc_type else None,
        "status_code": doc.status_code.value if doc.status_code else None,
        "in_reply_to": doc.in_reply_to,
        "received_at": doc.received_at.isoformat(),
        "package_sha256": doc.package_sha256,
        "size_bytes": doc.size_bytes,
        "signer": {
            "subject": doc.signer_subject,
            "fingerprint": doc.signer_fingerprint,
            "algorithm": doc.algorithm,
        },
        "recipients": [_delivery_json(d, events, for_admin) for d in view.deliveries],
        "trace": [_event_json(e, for_admin) for e in events],
    }
