"""``/admin/documents``: the delivery log search, paginated and sorted; its live view and CSV."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta

from aiohttp import web

from gateway.console.auth import require_user
from gateway.console.i18n import DISPLAY_TZ
from gateway.console.render import render, translator
from gateway.console.search import (
    SearchRow,
    SortKey,
    count_deliveries,
    export_csv,
    next_retry_at,
    search,
)
from gateway.core.errors import InputError
from gateway.edxml.model import StatusCode
from gateway.store import DeliveryState, DocumentFilter
from gateway.store.queries import COUNT_CAP
from gateway.web.keys import DELIVERY_LOG, SETTINGS

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
        raise InputError(
            f"{field}: a year from {FIRST_YEAR} to {LAST_YEAR}", code="console.bad_date"
        )
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


def sort_order(query: Mapping[str, str]) -> tuple[SortKey, bool]:
    """``?sort=<column>&dir=asc|desc``; newest first by default."""
    key = query.get("sort") or SortKey.RECEIVED_AT.value
    if key not in {k.value for k in SortKey}:
        raise InputError(f"sort: unknown column {key!r}", code="console.bad_choice")
    return SortKey(key), query.get("dir", "desc") != "asc"


def _shown(count: int | None) -> str | int | None:
    return f"{count}+" if count is not None and count >= COUNT_CAP else count


async def _results(request: web.Request) -> dict[str, object]:
    """What the results table and the live view show for this request's search."""
    delivery_log = request.config_dict[DELIVERY_LOG]
    error = None
    rows: list[SearchRow] = []
    total, matching = 0, None
    try:
        criteria = search_filter(request.query)
        key, descending = sort_order(request.query)
    except InputError as exc:
        error, criteria = exc.message, DocumentFilter(limit=PAGE_SIZE)
        key, descending = SortKey.RECEIVED_AT, True
    if error is None:
        rows = await search(delivery_log, criteria, key, descending)
        total = await delivery_log.count_documents(criteria)
        matching = await count_deliveries(delivery_log, criteria)
    return {
        "error": error,
        "rows": rows,
        "total": _shown(total),
        "matching": _shown(matching),
        "page": criteria.offset // PAGE_SIZE + 1,
        "pages": max(1, math.ceil(total / PAGE_SIZE)),
        "sort": key.value,
        "descending": descending,
        "next_retry": functools.partial(
            next_retry_at, delays_s=request.config_dict[SETTINGS].broker.retry_delays_s
        ),
    }


@routes.get("/documents")
async def search_page(request: web.Request) -> web.Response:
    await require_user(request)
    results = await _results(request)
    return render(
        request,
        "documents.html",
        status=400 if results["error"] else 200,
        **results,
        states=list(DeliveryState),
        statuses=[s for s in StatusCode if not s.is_reserved],
        sort_keys=list(SortKey),
    )


@routes.get("/documents/live")
async def live_rows(request: web.Request) -> web.Response:
    """The results alone (count, table, pager): what the live view swaps in every few seconds."""
    await require_user(request)
    results = await _results(request)
    return render(
        request,
        "_results.html",
        status=400 if results["error"] else 200,
        **results,
        sort_keys=list(SortKey),
    )


@routes.get("/documents/export.csv")
async def export(request: web.Request) -> web.Response:
    """The current search (every page, up to 10,000 documents), one line per delivery."""
    await require_user(request)
    criteria = search_filter(request.query)
    key, descending = sort_order(request.query)
    body = await export_csv(
        request.config_dict[DELIVERY_LOG], criteria, translator(request), key, descending
    )
    return web.Response(
        body=body,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="tra-cuu-van-ban.csv"'},
    )
