"""``/admin/documents/{id}``: a document, its package, signature, deliveries and trail; files
and its evidence bundle; resending one of its deliveries."""

from __future__ import annotations

import asyncio
import functools
import json
import re
from urllib.parse import quote

from aiohttp import web
from sqlalchemy import select

from gateway.console.auth import posted_form, require_user
from gateway.console.context import CONSOLE_DB
from gateway.console.detail import attachment_file, package_detail
from gateway.console.render import render
from gateway.console.replay import Replayer
from gateway.console.search import next_retry_at
from gateway.core.errors import ConflictError, InputError, NotFoundError
from gateway.edxml.formats import PackageFormat
from gateway.evidence.components import build_bundler
from gateway.store import DeliveryState, DocumentView
from gateway.store.engine import transaction
from gateway.store.tables import fold_text, national_inbox
from gateway.web.keys import BROKER, DELIVERY_LOG, DISPATCHER, SETTINGS

routes = web.RouteTableDef()
PARSE_IN_THREAD_BYTES = 64 * 1024
RESENDABLE = frozenset({DeliveryState.DEAD_LETTERED, DeliveryState.FAILED})
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


async def _view(request: web.Request) -> DocumentView:
    view = await request.config_dict[DELIVERY_LOG].get_document(request.match_info["id"])
    if view is None:
        raise NotFoundError("no such document", code="not_found.document")
    return view


async def _package(request: web.Request, view: DocumentView) -> bytes:
    return await request.config_dict[DELIVERY_LOG].get_package(view.document.package_sha256)


def download(data: bytes, filename: str) -> web.Response:
    """Bytes as a download, never rendered by the browser (so never run as our page)."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1].strip() or "download"
    ascii_name = _UNSAFE_NAME.sub("_", fold_text(base)).strip("._") or "download"
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(base, safe='')}"
    return web.Response(
        body=data,
        content_type="application/octet-stream",
        headers={"Content-Disposition": disposition, "X-Content-Type-Options": "nosniff"},
    )


@routes.get("/documents/{id}")
async def document_page(request: web.Request) -> web.Response:
    await require_user(request)
    view = await _view(request)
    data = await _package(request, view)
    limits = request.config_dict[SETTINGS].limits
    fmt = PackageFormat(view.document.format)
    if len(data) > PARSE_IN_THREAD_BYTES:
        detail = await asyncio.to_thread(package_detail, data, fmt, limits)
    else:
        detail = package_detail(data, fmt, limits)
    recipient_of = {d.id: d.recipient for d in view.deliveries}
    raw_events = [
        (event, json.dumps(event.detail, ensure_ascii=False, sort_keys=True))
        for event in view.events
    ]
    delays_s = request.config_dict[SETTINGS].broker.retry_delays_s
    return render(
        request,
        "document.html",
        view=view,
        doc=view.document,
        detail=detail,
        package=detail.package,
        recipient_of=recipient_of,
        raw_events=raw_events,
        national_doc_ids=await _national_doc_ids(request, view.document.id),
        next_retry=functools.partial(next_retry_at, delays_s=delays_s),
        resendable=RESENDABLE,
        resent=request.query.get("resent"),
    )


async def _national_doc_ids(request: web.Request, document_id: str) -> list[str]:
    """The national platform's docIds this document arrived under (a receiving gateway)."""
    query = select(national_inbox.c.doc_id).where(national_inbox.c.document == document_id)
    async with transaction(request.config_dict[DELIVERY_LOG].engines.reader) as conn:
        return [doc_id for (doc_id,) in await conn.execute(query)]


@routes.post("/documents/{id}/resend")
async def resend(request: web.Request) -> web.StreamResponse:
    """Send one dead-lettered or refused delivery again (operators): the same delivery id, so
    the receiver sees the same Idempotency-Key; audited as ``resend``."""
    user, form = await posted_form(request)
    view = await _view(request)
    delivery_id = form.get("delivery_id")
    mine = {d.id: d for d in view.deliveries}
    if not isinstance(delivery_id, str) or delivery_id not in mine:
        raise InputError("no such delivery of this document", code="console.bad_delivery")
    config = request.config_dict
    outcome = await Replayer(config[DELIVERY_LOG], config[BROKER], config[DISPATCHER]).replay(
        [delivery_id], user.actor
    )
    if outcome.refused:
        raise ConflictError("this delivery cannot be sent again now", code=outcome.refused[0][1])
    await request.app[CONSOLE_DB].audit(
        user.username,
        "resend",
        delivery_id,
        {
            "document": view.document.id,
            "recipient": mine[delivery_id].recipient,
            "previous_state": mine[delivery_id].state.value,
            "published": delivery_id not in outcome.deferred,
        },
    )
    raise web.HTTPSeeOther(f"/admin/documents/{view.document.id}?resent={delivery_id}")


@routes.get("/documents/{id}/attachments/{index:\\d+}")
async def attachment_download(request: web.Request) -> web.Response:
    await require_user(request)
    view = await _view(request)
    data = await _package(request, view)
    name, content = await asyncio.to_thread(
        attachment_file,
        data,
        PackageFormat(view.document.format),
        int(request.match_info["index"]),
        request.config_dict[SETTINGS].limits,
    )
    return download(content, name)


@routes.get("/documents/{id}/package")
async def package_download(request: web.Request) -> web.Response:
    await require_user(request)
    view = await _view(request)
    suffix = "edxml" if view.document.format == PackageFormat.XML else "jws"
    return download(await _package(request, view), f"{view.document.id}.{suffix}")


@routes.get("/documents/{id}/evidence")
async def evidence_download(request: web.Request) -> web.Response:
    """The document's evidence bundle (any console role), checked before it is handed out;
    audited as ``evidence.bundle``. A checkpoint is made first when its last events have none."""
    user = await require_user(request)
    view = await _view(request)
    config = request.config_dict
    bundle = await build_bundler(config[SETTINGS], config[DELIVERY_LOG]).build(view.document.id)
    await request.app[CONSOLE_DB].audit(
        user.username, "evidence.bundle", view.document.id, {"bytes": len(bundle.data)}
    )
    response = download(bundle.data, bundle.name)
    response.content_type = "application/zip"
    return response
