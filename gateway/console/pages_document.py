"""``/admin/documents/{id}``: a document, its package, signature, deliveries and trail; files."""

from __future__ import annotations

import asyncio
import json
import re
from urllib.parse import quote

from aiohttp import web

from gateway.console.auth import require_user
from gateway.console.detail import attachment_file, package_detail
from gateway.console.render import render
from gateway.core.errors import NotFoundError
from gateway.edxml.formats import PackageFormat
from gateway.store import DocumentView
from gateway.store.tables import fold_text
from gateway.web.keys import DELIVERY_LOG, SETTINGS

routes = web.RouteTableDef()
PARSE_IN_THREAD_BYTES = 64 * 1024
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
    return web.Response(body=data, content_type="application/octet-stream",
                        headers={"Content-Disposition": disposition,
                                 "X-Content-Type-Options": "nosniff"})


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
    return render(request, "document.html", view=view, doc=view.document, detail=detail,
                  package=detail.package, recipient_of=recipient_of, raw_events=raw_events)


@routes.get("/documents/{id}/attachments/{index:\\d+}")
async def attachment_download(request: web.Request) -> web.Response:
    await require_user(request)
    view = await _view(request)
    data = await _package(request, view)
    name, content = await asyncio.to_thread(
        attachment_file, data, PackageFormat(view.document.format),
        int(request.match_info["index"]), request.config_dict[SETTINGS].limits,
    )
    return download(content, name)


@routes.get("/documents/{id}/package")
async def package_download(request: web.Request) -> web.Response:
    await require_user(request)
    view = await _view(request)
    suffix = "edxml" if view.document.format == PackageFormat.XML else "jws"
    return download(await _package(request, view), f"{view.document.id}.{suffix}")
