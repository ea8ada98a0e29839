"""``/admin/participants``: the directory; operators add, edit and disable participants (in the
store, which every process reads)."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode

import structlog
from aiohttp import web

from gateway.console.auth import posted_form, require_user
from gateway.console.context import SignedIn
from gateway.console.participant_form import directory_entry, form_values, posted_values
from gateway.console.render import render, translator
from gateway.core.directory import (
    DirectoryHolder,
    Participant,
    ParticipantKind,
    ParticipantLevel,
    generate_api_key,
    participant_from_mapping,
    participant_json,
)
from gateway.core.errors import ConfigError, ForbiddenError, NotFoundError
from gateway.core.methods import DeliveryMethod
from gateway.edxml.validate import is_organ_id
from gateway.store.participants import StoredDirectory
from gateway.web.keys import DIRECTORY, STORED_DIRECTORY

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)


def _holder(request: web.Request) -> DirectoryHolder:
    return request.config_dict[DIRECTORY]


def _stored(request: web.Request) -> StoredDirectory:
    return request.config_dict[STORED_DIRECTORY]


def _existing(request: web.Request, organ_id: str) -> Participant:
    found = _holder(request).current.get(organ_id)
    if found is None:
        raise NotFoundError(f"no participant {organ_id}", code="not_found.participant")
    return found


def _require_operator(user: SignedIn) -> None:
    if not user.is_operator:
        raise ForbiddenError("only operators may edit the directory", code="console.operator_only")


def _form_page(
    request: web.Request, values: dict[str, str | bool], *, is_new: bool, error: str | None = None
) -> web.Response:
    return render(
        request,
        "participant_form.html",
        status=400 if error else 200,
        values=values,
        is_new=is_new,
        error=error,
        kinds=list(ParticipantKind),
        levels=list(ParticipantLevel),
        methods=list(DeliveryMethod),
    )


@routes.get("/participants")
async def participants_page(request: web.Request) -> web.Response:
    await require_user(request)
    rows = [participant_json(p) for p in _holder(request).current]
    rows.sort(key=lambda row: str(row["organ_id"]))
    return render(
        request,
        "participants.html",
        rows=rows,
        saved=request.query.get("saved"),
        disabled=request.query.get("disabled"),
    )


@routes.get("/participants/new")
async def new_form(request: web.Request) -> web.Response:
    _require_operator(await require_user(request))
    return _form_page(request, form_values(None), is_new=True)


@routes.get("/participants/{organ_id}/edit")
async def edit_form(request: web.Request) -> web.Response:
    _require_operator(await require_user(request))
    existing = _existing(request, request.match_info["organ_id"])
    return _form_page(request, form_values(existing), is_new=False)


@routes.post("/participants/save")
async def save(request: web.Request) -> web.StreamResponse:
    """Add (``is_new``) or replace a participant; a new API key is shown once, never stored."""
    user, form = await posted_form(request)
    values = posted_values(form)
    is_new = form.get("is_new") == "1"
    organ_id = str(values["organ_id"])
    existing = _holder(request).current.get(organ_id)
    if is_new and existing is not None:
        error = translator(request)("part.exists", organ=organ_id)
        return _form_page(request, values, is_new=True, error=error)
    if not is_new and existing is None:
        raise NotFoundError(f"no participant {organ_id}", code="not_found.participant")
    if is_new and not is_organ_id(organ_id):
        error = translator(request)("part.bad_organ_id", organ=organ_id)
        return _form_page(request, values, is_new=True, error=error)
    try:
        participant = participant_from_mapping(directory_entry(values, existing), "participant")
        api_key = None
        if form.get("generate_api_key") == "on":
            api_key, digest = generate_api_key()
            participant = replace(participant, api_key_hashes=(*participant.api_key_hashes, digest))
        detail = {
            "new": is_new,
            "enabled": participant.enabled,
            "api_key_issued": api_key is not None,
        }  # the change and its audit entry, in one transaction of the store
        await _stored(request).save(participant, actor=user.username, detail=detail)
    except ConfigError as exc:
        error = translator(request)("part.invalid", error=exc.message)
        return _form_page(request, values, is_new=is_new, error=error)
    log.info("participant_saved", organ_id=organ_id, actor=user.actor)
    if api_key is not None:
        return render(request, "participant_key.html", organ_id=organ_id, api_key=api_key)
    raise web.HTTPSeeOther("/admin/participants?" + urlencode({"saved": organ_id}))


@routes.post("/participants/{organ_id}/disable")
async def disable(request: web.Request) -> web.StreamResponse:
    user, _ = await posted_form(request)
    organ_id = request.match_info["organ_id"]
    _existing(request, organ_id)
    await _stored(request).disable(organ_id, actor=user.username)
    log.info("participant_disabled", organ_id=organ_id, actor=user.actor)
    raise web.HTTPSeeOther("/admin/participants?" + urlencode({"disabled": organ_id}))
