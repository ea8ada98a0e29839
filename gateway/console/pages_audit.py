"""``/admin/audit``: the append-only trail of operator actions, newest first."""

from __future__ import annotations

import json
import math

from aiohttp import web

from gateway.console.auth import require_user
from gateway.console.context import CONSOLE_DB
from gateway.console.render import render

routes = web.RouteTableDef()
PAGE_SIZE = 100
MAX_PAGES = 10_000


@routes.get("/audit")
async def audit_page(request: web.Request) -> web.Response:
    await require_user(request)
    text = request.query.get("page", "1")
    page = min(max(int(text), 1), MAX_PAGES) if text.isdigit() else 1
    db = request.app[CONSOLE_DB]
    entries = await db.audit_entries(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    total = await db.audit_count()
    rows = [(e, json.dumps(e.detail, ensure_ascii=False, sort_keys=True)) for e in entries]
    return render(
        request, "audit.html", rows=rows, page=page, pages=max(1, math.ceil(total / PAGE_SIZE))
    )
