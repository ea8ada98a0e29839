"""The admin API: OrganIds checked as packages' are (lenient forms too), every change in the
operators' audit trail, answers that match the OpenAPI document's schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from service.service_kit import StartGateway

from gateway.console.db import ConsoleDb

SPEC = json.loads(
    (Path(__file__).resolve().parents[2] / "schemas" / "openapi.json").read_text(encoding="utf-8")
)


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}
    )


def test_every_operation_has_an_id_and_every_json_answer_a_schema() -> None:
    ids = []
    for path, ops in SPEC["paths"].items():
        for method, op in ops.items():
            ids.append(op["operationId"])
            for status, answer in op["responses"].items():
                assert answer.get("content"), (method, path, status)
                for media in answer["content"].values():
                    assert "schema" in media, (method, path, status)
    assert len(ids) == len(set(ids))
    assert "requestBody" in SPEC["paths"]["/api/v1/admin/participants"]["post"]


@pytest.mark.parametrize(
    ("organ_id", "valid"),
    [
        ("000.00.00.H56", True),
        ("00.53.W00", True),
        ("0101234567", True),
        ("0101234567-001", True),
        ("x y", False),
        ("", False),
        ("000.00.00.h56 ", False),
    ],
)
def test_the_participant_schema_takes_the_organ_ids_packages_take(
    organ_id: str, valid: bool
) -> None:
    errors = list(validator("ParticipantInput").iter_errors({"organ_id": organ_id, "name": "A"}))
    assert (not errors) is valid


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_admin_api_checks_organ_ids_audits_changes_and_matches_its_schema(
    start_gateway: StartGateway, store_url: str
) -> None:
    gw = await start_gateway()
    headers = {"Authorization": f"Bearer {gw.setup.admin_token}"}
    url = f"{gw.base_url}/api/v1/admin/participants"

    async def post(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with gw.session.post(url, json=body, headers=headers) as r:
            return r.status, await r.json(content_type=None)

    status, problem = await post({"organ_id": "x y", "name": "Không hợp lệ"})
    assert (status, problem["code"]) == (400, "admin.invalid_organ_id")
    status, problem = await post({"organ_id": "000.00.16.H56", "name": "X", "parent": "a b"})
    assert (status, problem["code"]) == (400, "admin.invalid_organ_id")
    status, saved = await post(
        {"organ_id": "00.53.W00", "name": "Trục tỉnh Tây Ninh", "generate_api_key": True}
    )
    assert status == 200
    assert not list(validator("ParticipantSaved").iter_errors(saved))
    async with gw.session.get(url, headers=headers) as r:
        assert not list(validator("ParticipantList").iter_errors(await r.json()))
    async with gw.session.delete(f"{url}/00.53.W00", headers=headers) as r:
        assert r.status == 200

    console = ConsoleDb.open(store_url)
    try:
        entries = await console.audit_entries(limit=10)
    finally:
        await console.aclose()
    mine = [
        (e.action, e.target, e.detail.get("via")) for e in entries if e.actor.startswith("admin:")
    ]
    assert mine == [
        ("participant.disable", "00.53.W00", "api"),
        ("participant.save", "00.53.W00", "api"),
    ]
    assert all(saved["api_key"] not in json.dumps(e.detail) for e in entries)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_a_participant_the_directory_refuses_is_a_400_not_a_500(
    start_gateway: StartGateway, store_url: str
) -> None:
    """Found by the API fuzzer: the directory's own checks ran after the request's, uncaught."""
    gw = await start_gateway()
    headers = {"Authorization": f"Bearer {gw.setup.admin_token}"}
    body = {"organ_id": "000.00.09.H56", "name": "Sở thử", "client_cert_fingerprints": ["NOT-HEX"]}
    async with gw.session.post(
        f"{gw.base_url}/api/v1/admin/participants", json=body, headers=headers
    ) as r:
        problem = await r.json(content_type=None)
        assert r.status == 400
    assert problem["code"] == "admin.invalid_participant"
    assert "client_cert_fingerprints" in problem["path"]
