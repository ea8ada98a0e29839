"""``/api/v1/admin/participants``: the directory, changed at run time by an admin token holder."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import structlog
from aiohttp import web

from gateway.api.auth import require_admin
from gateway.core.directory import generate_api_key, participant_from_mapping, participant_json
from gateway.core.errors import ConfigError, InputError
from gateway.web.keys import DIRECTORY

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)


@routes.get("/api/v1/admin/participants")
async def list_participants(request: web.Request) -> web.Response:
    require_admin(request)
    directory = request.app[DIRECTORY].current
    return web.json_response({"participants": [participant_json(p) for p in directory]})


@routes.post("/api/v1/admin/participants")
async def upsert_participant(request: web.Request) -> web.Response:
    """Add or replace a participant; ``"generate_api_key": true`` returns a new key once."""
    actor = require_admin(request)
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
    answer: dict[str, Any] = {}
    if generate:
        plaintext, digest = generate_api_key()
        participant = replace(participant, api_key_hashes=(*participant.api_key_hashes, digest))
        answer["api_key"] = plaintext
    holder = request.app[DIRECTORY]
    holder.upsert(participant)
    if holder.path is not None:
        holder.save()
    log.info("participant_saved", organ_id=participant.organ_id, actor=actor)
    return web.json_response({"participant": participant_json(participant), **answer})


@routes.delete("/api/v1/admin/participants/{organ_id}")
async def disable_participant(request: web.Request) -> web.Response:
    actor = require_admin(request)
    holder = request.app[DIRECTORY]
    directory = holder.disable(request.match_info["organ_id"])
    if holder.path is not None:
        holder.save()
    log.info("participant_disabled", organ_id=request.match_info["organ_id"], actor=actor)
    participant = directory.get(request.match_info["organ_id"])
    assert participant is not None
    return web.json_response({"participant": participant_json(participant)})
