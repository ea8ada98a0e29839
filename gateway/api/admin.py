"""``/api/v1/admin/…``: the directory, changed at run time in the store (every change in the
operators' audit trail, as the console's are; other processes see it within 2 s), and documents
with their delivery errors in full, for an admin token holder."""

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
from gateway.web.keys import DELIVERY_LOG, DIRECTORY, STORED_DIRECTORY

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)


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
    detail = {
        "via": "api",
        "enabled": participant.enabled,
        "delivery_method": participant.delivery.method.value,
        "new_api_key": generate,
    }
    try:  # in the store, with its audit entry; the directory's own checks (fingerprints, URLs…)
        await request.app[STORED_DIRECTORY].save(participant, actor=actor, detail=detail)
    except ConfigError as exc:
        raise InputError(exc.message, code="admin.invalid_participant", path=exc.path) from exc
    log.info("participant_saved", organ_id=participant.organ_id, actor=actor)
    return web.json_response({"participant": participant_json(participant), **answer})


@routes.delete("/api/v1/admin/participants/{organ_id}")
async def disable_participant(request: web.Request) -> web.Response:
    actor = await require_admin(request)
    organ_id = request.match_info["organ_id"]
    directory = await request.app[STORED_DIRECTORY].disable(
        organ_id, actor=actor, detail={"via": "api"}
    )
    log.info("participant_disabled", organ_id=organ_id, actor=actor)
    participant = directory.get(organ_id)
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
