"""``/admin/documents``: the delivery log search, paginated, newest first."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta

from aiohttp import web

from gateway.console.auth import require_user
from gateway.console.i18n import DISPLAY_TZ
from gateway.console.render import render
from gateway.core.errors import InputError
from gateway.edxml.model import StatusCode
from gateway.store import DeliveryState, DocumentFilter
from gateway.store.queries import COUNT_CAP
from gateway.web.keys import DELIVERY_LOG

routes = web.RouteTableDef()
PAGE_SIZE = 50
MAX_PAGE = 10_000
FIRST_YEAR, LAST_YEAR = 1900, 9998
MAX_SINCE_H = 24 * 366 * 100  # "the last N hours": a century at most


def _day_start(text: str, field: str) -> datetime:
    """Midnight of a ``YYYY-MM-DD`` day in Vietnam's time, between years 1900 and 9998."""
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise InputError(f"{field}: not a date (YYYY-MM-DD)", code="console.bad_date") from exc
    if not FIRST_YEAR <= day.year <= LAST_YEAR:  # the day after, in UTC, must still be a date
        raise InputError(f"{field}: a year from {FIRST_YEAR} to {LAST_YEAR}",
                         code="console.bad_date")
    return datetime.combine(day, time(0), DISPLAY_TZ)


def _choice(value: str, allowed: type[DeliveryState] | type[StatusCode], field: str) -> str:
    if value not in {m.value for m in allowed}:
        raise InputError(f"{field}: unknown value {value!r}", code="console.bad_choice")
    return value


def _page(query: Mapping[str, str]) -> int:
    try:
        page = int(query.get("page", "1"))
    except ValueError as exc:
        raise InputError("page: not a number", code="console.bad_page") from exc
    if not 1 <= page <= MAX_PAGE:
        raise InputError("page: out of range", code="console.bad_page")
    return page


def _since(query: Mapping[str, str]) -> datetime | None:
    if query.get("since"):
        return _day_start(query["since"], "since")
    hours = query.get("since_h", "")
    if hours.isascii() and hours.isdigit():  # "the last N hours", from the dashboard's links
        if len(hours) > 7 or int(hours) > MAX_SINCE_H:
            raise InputError(f"since_h: at most {MAX_SINCE_H} hours", code="console.bad_date")
        return datetime.now(DISPLAY_TZ) - timedelta(hours=int(hours))
    return None


def search_filter(query: Mapping[str, str]) -> DocumentFilter:
    """The search form's fields as a filter; ``until`` is inclusive (the whole last day)."""
    def text(name: str) -> str | None:
        return query.get(name, "").strip() or None

    state = query.get("state") or None
    status = query.get("status") or None
    until = query.get("until")
    return DocumentFilter(
        document_id=text("document_id"),
        sender=text("sender"),
        recipient=text("recipient"),
        text=text("text"),
        state=DeliveryState(_choice(state, DeliveryState, "state")) if state else None,
        business_status=StatusCode(_choice(status, StatusCode, "status")) if status else None,
        since=_since(query),
        until=_day_start(until, "until") + timedelta(days=1) if until else None,
        limit=PAGE_SIZE,
        offset=(_page(query) - 1) * PAGE_SIZE,
    )


@routes.get("/documents")
async def search_page(request: web.Request) -> web.Response:
    await require_user(request)
    delivery_log = request.config_dict[DELIVERY_LOG]
    error = None
    documents, total = [], 0
    try:
        criteria = search_filter(request.query)
    except InputError as exc:
        error, criteria = exc.message, DocumentFilter(limit=PAGE_SIZE)
    if error is None:
        documents = await delivery_log.list_documents(criteria)
        total = await delivery_log.count_documents(criteria)
    page = criteria.offset // PAGE_SIZE + 1
    return render(
        request, "documents.html", status=400 if error else 200, error=error,
        documents=documents, total=f"{total}+" if total >= COUNT_CAP else total, page=page,
        pages=max(1, math.ceil(total / PAGE_SIZE)), states=list(DeliveryState),
        statuses=[s for s in StatusCode if not s.is_reserved],
    )
