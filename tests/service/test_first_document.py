"""A first document without friction: dead routes refused, the demo's national simulator end to
end, ``lgsp send --url`` from any directory, refusals in one line (or whole with --json)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from service_kit import COMMUNE, DEPARTMENT, DISTRICT, StartGateway, free_port, new_document

from adapters.national.client import NationalClient
from gateway.national.simulator import NationalSimulator, load_sim_config

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)

LGSP = Path(sys.executable).with_name("lgsp")
NATIONAL = "000.00.00.G22"


@dataclass(frozen=True, slots=True)
class Done:
    code: int
    out: str
    err: str


async def lgsp_in(cwd: Path, *args: str) -> Done:
    """The ``lgsp`` console script run from ``cwd``, with no LGSP_* variable set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LGSP_")}
    proc = await asyncio.create_subprocess_exec(
        str(LGSP),
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


def _delivered(view: dict[str, Any]) -> bool:
    return all(r["state"] == "delivered" for r in view["recipients"])


async def test_a_route_without_an_enabled_delivery_is_refused_at_intake(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway()  # the demo without national delivery, G22 still routed to it

    status, problem = await gw.submit(
        gw.sign(new_document(DEPARTMENT, [NATIONAL]), DEPARTMENT), DEPARTMENT
    )

    assert status == 422, problem
    assert problem["code"] == "routing.no_adapter"
    assert NATIONAL in problem["detail"]
    assert "national" in problem["detail"]
    assert problem["recipients"] == [
        {
            "organ_id": NATIONAL,
            "reason": "no_adapter",
            "code": "routing.no_adapter",
            "detail": problem["recipients"][0]["detail"],
        }
    ]

    mixed = gw.sign(new_document(DEPARTMENT, [COMMUNE, NATIONAL, "000.00.99.H56"]), DEPARTMENT)
    status, problem = await gw.submit(mixed, DEPARTMENT)
    assert (status, problem["code"]) == (422, "acl.recipients_refused")
    assert {r["organ_id"]: r["code"] for r in problem["recipients"]} == {
        NATIONAL: "routing.no_adapter",
        "000.00.99.H56": "acl.unknown_recipient",
    }
    status, listed = await gw.get("/api/v1/inbox", COMMUNE)
    assert (status, listed["items"]) == (200, [])  # nothing was accepted for the others either


async def test_the_demo_delivers_to_the_national_platform_simulator(
    start_gateway: StartGateway,
) -> None:
    national_port = free_port()
    gw = await start_gateway(national_port=national_port)
    sim_config = load_sim_config(gw.setup.dir / "national-sim.toml")
    simulator = NationalSimulator(sim_config, gw.setup.dir / "var" / "national-sim.db")
    endpoint = await simulator.start("127.0.0.1", national_port)
    assert endpoint == gw.setup.national_endpoint
    vpcp = next(s.credentials for s in sim_config.systems if s.system_id == "vpcp")
    client = NationalClient(endpoint, vpcp.system_id, vpcp.secret, timeout_s=5)
    try:
        signed = gw.sign(new_document(DEPARTMENT, [DISTRICT, NATIONAL]), DEPARTMENT)
        status, answer = await gw.submit(signed, DEPARTMENT)
        assert status == 202, answer
        assert {r["organ_id"]: r["method"] for r in answer["recipients"]} == {
            DISTRICT: "mailbox",
            NATIONAL: "national",
        }
        await gw.wait_for(answer["id"], DEPARTMENT, _delivered)

        received = await client.get_received_edoc_list("edoc")
        assert [item.to for item in received] == [NATIONAL]
        assert await client.get_edoc(received[0].doc_id) == signed
    finally:
        await client.aclose()
        await simulator.stop()


async def test_send_url_from_any_directory_then_log_show_by_document_id(
    start_gateway: StartGateway, tmp_path: Path
) -> None:
    gw = await start_gateway()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()  # no config/, no credentials, no key directory here
    document = new_document(DEPARTMENT, [COMMUNE], number="42")
    (elsewhere / "signed.edxml").write_bytes(gw.sign(document, DEPARTMENT))
    key = gw.setup.api_keys[DEPARTMENT]

    sent = await lgsp_in(elsewhere, "send", "signed.edxml", "--url", gw.base_url, "--api-key", key)

    assert sent.code == 0, sent
    assert sent.out.startswith("accepted: document ")
    assert f"DocumentId {document.document_id} (HTTP 202)" in sent.out
    again = await lgsp_in(
        elsewhere,
        "send",
        "signed.edxml",
        "--url",
        f"{gw.base_url}/api/v1/documents",
        "--api-key",
        key,
        "--json",
    )
    assert again.code == 0, again
    answer = json.loads(again.out)
    assert answer["duplicate"] is True
    await gw.wait_for(answer["id"], DEPARTMENT, _delivered)

    # the same DocumentId with other content: one line naming it, with what to change
    changed = replace(document, header=replace(document.header, subject="V/v khác"))
    (elsewhere / "changed.edxml").write_bytes(gw.sign(changed, DEPARTMENT))
    refused = await lgsp_in(
        elsewhere, "send", "changed.edxml", "--url", gw.base_url, "--api-key", key
    )
    assert (refused.code, refused.out) == (1, ""), refused
    [line] = refused.err.splitlines()
    assert line.startswith("lgsp: conflict.duplicate_document: ")
    assert document.document_id in line
    assert "new number" in line
    whole = await lgsp_in(
        elsewhere, "send", "changed.edxml", "--url", gw.base_url, "--api-key", key, "--json"
    )
    assert whole.code == 1
    problem = json.loads(whole.out)
    assert (problem["status"], problem["document_id"]) == (409, document.document_id)
    assert problem["accepted_as"] == answer["id"]

    config = str(gw.setup.config_path)
    shown = await lgsp_in(elsewhere, "log", "show", document.document_id or "", "--config", config)
    assert shown.code == 0, shown
    assert shown.out.splitlines()[0] == f"document     {answer['id']}"
    missing = await lgsp_in(elsewhere, "log", "show", "no-such-id", "--config", config, "--json")
    assert missing.code == 1
    assert json.loads(missing.out)["code"] == "not_found.document"
    assert missing.err.startswith("lgsp: not_found.document: ")
