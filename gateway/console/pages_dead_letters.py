"""``/admin/dead-letters``: what could not be delivered and why; replay one, some, or all."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from gateway.console.auth import Form, posted_form, require_user
from gateway.console.context import CONSOLE_DB, SignedIn
from gateway.console.render import render
from gateway.console.replay import Replayer, ReplayOutcome
from gateway.core.errors import InputError
from gateway.web.keys import BROKER, DELIVERY_LOG, DISPATCHER

routes = web.RouteTableDef()
PAGE_SIZE = 50
MAX_PAGES = 1000


def _replayer(request: web.Request) -> Replayer:
    config = request.config_dict
    return Replayer(config[DELIVERY_LOG], config[BROKER], config[DISPATCHER])


def _page(request: web.Request) -> int:
    text = request.query.get("page", "1")
    page = int(text) if text.isdigit() else 0
    if not 1 <= page <= MAX_PAGES:
        raise InputError("page: out of range", code="console.bad_page")
    return page


@routes.get("/dead-letters")
async def dead_letters_page(request: web.Request) -> web.Response:
    await require_user(request)
    recipient = request.query.get("recipient", "").strip() or None
    page = _page(request)
    delivery_log = request.config_dict[DELIVERY_LOG]
    items = await delivery_log.dead_letters(
        recipient=recipient, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
    )
    has_next = len(items) > PAGE_SIZE
    return render(
        request,
        "dead_letters.html",
        items=items[:PAGE_SIZE],
        recipient=recipient,
        page=page,
        pages=page + 1 if has_next else page,
        replayed=_count(request, "replayed"),
        refused=_count(request, "refused"),
        deferred=_count(request, "deferred"),
    )


def _count(request: web.Request, name: str) -> int | None:
    text = request.query.get(name, "")
    return int(text) if text.isdigit() else None


async def _after(
    request: web.Request, user: SignedIn, outcome: ReplayOutcome, mode: str, back_to: str | None
) -> web.HTTPSeeOther:
    await request.app[CONSOLE_DB].audit_many(
        user.username,
        "replay",
        [
            (
                d.id,
                {
                    "document": d.document,
                    "recipient": d.recipient,
                    "mode": mode,
                    "published": d.id not in outcome.deferred,
                },
            )
            for d in outcome.replayed
        ],
    )
    query: dict[str, str | int] = {
        "replayed": len(outcome.replayed),
        "refused": len(outcome.refused),
    }
    if outcome.deferred:
        query["deferred"] = len(outcome.deferred)
    if back_to:
        query["recipient"] = back_to
    return web.HTTPSeeOther("/admin/dead-letters?" + urlencode(query))


def _texts(form: Form, name: str) -> list[str]:
    return [v.strip() for v in form.getall(name, []) if isinstance(v, str) and v.strip()]


@routes.post("/dead-letters/replay")
async def replay_some(request: web.Request) -> web.StreamResponse:
    """``one=<id>`` (a row's button) or the checked ``delivery_id`` boxes."""
    user, form = await posted_form(request)
    one = _texts(form, "one")
    ids = one or _texts(form, "delivery_id")
    if not ids:
        raise InputError("nothing selected", code="console.nothing_selected")
    outcome = await _replayer(request).replay(ids, user.actor)
    back_to = form.get("recipient")
    raise await _after(
        request,
        user,
        outcome,
        "one" if one else "selected",
        back_to if isinstance(back_to, str) and back_to else None,
    )


@routes.post("/dead-letters/replay-all")
async def replay_all(request: web.Request) -> web.StreamResponse:
    """Every dead letter of one destination."""
    user, form = await posted_form(request)
    recipient = form.get("recipient")
    if not isinstance(recipient, str) or not recipient.strip():
        raise InputError("which destination?", code="console.recipient_required")
    replayer = _replayer(request)
    ids = await replayer.dead_for(recipient.strip())
    outcome = await replayer.replay(ids, user.actor)
    raise await _after(request, user, outcome, "destination", None)
