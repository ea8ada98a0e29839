"""``/api/v1/admin/…``: the directory, changed at run time (every change in the operators'
audit trail, as the console's are), and documents with their delivery errors in full, for an
admin token holder."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import structlog
from aiohttp import web

from gateway.api.auth import require_admin
from gateway.api.documents import document_json
from gateway.core.directory import generate_api_key, participant_from_mapping, participant_json
from gateway.core.errors import ConfigError, InputError, NotFoundError
from gateway.edxml.validate import is_organ_id
from gateway.store.audit import append_audit
from gateway.web.keys import DELIVERY_LOG, DIRECTORY

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)


async def _audit(
    request: web.Request, actor: str, action: str, target: str, detail: dict[str, object]
) -> None:
    """The same audit trail as the console's (``console_audit``), the API's actor named."""
    await append_audit(request.app[DELIVERY_LOG].engines, actor, action, [(target, detail)])


@routes.get("/api/v1/admin/participants")
async def list_participants(request: web.Request) -> web.Response:
    await require_admin(request)
    directory = request.app[DIRECTORY].current
    return web.json_response({"participants": [participant_json(p) for p in directory]})


@routes.post("/api/v1/admin/participants")
async def upsert_participant(request: web.Request) -> web.Response:
    """Add or replace a participant; ``"generate_api_key": true`` returns a new key once."""
    actor = await require_admin(request)
    try:
        entry = json.loads(await request.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError("the body must be a JSON object", code="admin.bad_json") from exc
    if not isinstance(entry, dict):
        raise InputError("the body must be a JSON object", code="admin.bad_json")
    generate = bool(entry.pop("generate_api_key", False))
    try:
        participant = participant_from_mapping(entry, "participant")
    except ConfigError as exc:
        raise InputError(exc.message, code="admin.invalid_participant", path=exc.path) from exc
    for field, value in (("organ_id", participant.organ_id), ("parent", participant.parent)):
        if value is not None and not is_organ_id(value):
            raise InputError(
                f"participant.{field}: {value!r} is neither an OrganId "
                "(NNN.NN.NN.XNN) nor a tax code",
                code="admin.invalid_organ_id",
                path=f"participant.{field}",
            )
    answer: dict[str, Any] = {}
    if generate:
        plaintext, digest = generate_api_key()
        participant = replace(participant, api_key_hashes=(*participant.api_key_hashes, digest))
        answer["api_key"] = plaintext
    holder = request.app[DIRECTORY]
    try:
        holder.upsert(participant)  # the directory's own checks (fingerprints, URLs, ...)
    except ConfigError as exc:
        raise InputError(exc.message, code="admin.invalid_participant", path=exc.path) from exc
    if holder.path is not None:
        holder.save()
    log.info("participant_saved", organ_id=participant.organ_id, actor=actor)
    await _audit(
        request,
        actor,
        "participant.save",
        participant.organ_id,
        {
            "via": "api",
            "enabled": participant.enabled,
            "delivery_method": participant.delivery.method.value,
            "new_api_key": generate,
        },
    )
    return web.json_response({"participant": participant_json(participant), **answer})


@routes.delete("/api/v1/admin/participants/{organ_id}")
async def disable_participant(request: web.Request) -> web.Response:
    actor = await require_admin(request)
    holder = request.app[DIRECTORY]
    directory = holder.disable(request.match_info["organ_id"])
    if holder.path is not None:
        holder.save()
    log.info("participant_disabled", organ_id=request.match_info["organ_id"], actor=actor)
    await _audit(
        request, actor, "participant.disable", request.match_info["organ_id"], {"via": "api"}
    )
    participant = directory.get(request.match_info["organ_id"])
    assert participant is not None
    return web.json_response({"participant": participant_json(participant)})


@routes.get("/api/v1/admin/documents/{id}")
async def show_document(request: web.Request) -> web.Response:
    """A document as participants see it, plus each delivery's ``last_error`` and the events'
    messages (the remote side's answers, push URLs)."""
    await require_admin(request)
    view = await request.app[DELIVERY_LOG].get_document(request.match_info["id"])
    if view is None:
        raise NotFoundError("no such document", code="not_found.document")
    return web.json_response(document_json(view, for_admin=True))
