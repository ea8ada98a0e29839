"""API fuzzing: the gateway's own OpenAPI document drives schemathesis against the running gateway.

Every operation of ``/api/v1/openapi.json`` gets generated requests (valid and invalid by the
schema), with a participant's API key (the admin token on admin paths) and, for a share of them,
without credentials. No answer may be a 5xx, and every error answer is problem+json with a stable
``code`` (the southbound ``/XrdAdapter/`` answers in the national SDK's JSON, ``status`` FAIL
and an ``ErrorCode``, as its OpenAPI entry says). The gateway runs in this event loop;
schemathesis calls it from a worker thread.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from service_kit import DEPARTMENT, Gateway, StartGateway

EXAMPLES_PER_OPERATION = 25
SOUTHBOUND = "/XrdAdapter/"  # answers in the SDK's JSON (status FAIL + ErrorCode), as documented
pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def check(gw: Gateway, operation: Any, failures: list[str]) -> None:
    """Fuzz one operation; record each bad answer (status and body) instead of stopping."""

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(), authenticated=st.booleans())
    def run(case: Any, authenticated: bool) -> None:
        token = gw.setup.admin_token if "/admin/" in case.path else gw.setup.api_keys[DEPARTMENT]
        headers = {"Authorization": f"Bearer {token}"} if authenticated else {}
        response = case.call(base_url=gw.base_url, headers=headers, timeout=30)
        label = f"{case.method} {case.formatted_path} -> {response.status_code}"
        if response.status_code >= 500:
            failures.append(f"{label}: {response.text[:300]}")
        elif response.status_code >= 400 and case.path.startswith(SOUTHBOUND):
            answer = json.loads(response.text)  # the national SDK's protocol, not RFC 9457
            if answer.get("status") != "FAIL" or not answer.get("ErrorCode"):
                failures.append(f"{label}: not a protocol FAIL answer: {response.text[:200]}")
        elif response.status_code >= 400:
            content_type = ",".join(response.headers.get("content-type", []))  # lower-case keys
            if not content_type.startswith("application/problem+json"):
                failures.append(f"{label}: not problem+json ({content_type})")
                return
            problem = json.loads(response.text)
            if not (
                isinstance(problem.get("code"), str)
                and problem.get("status") == response.status_code
            ):
                failures.append(f"{label}: problem without code/status: {response.text[:200]}")

    run()


@pytest.mark.slow
async def test_openapi_driven_fuzzing_finds_no_5xx_and_only_problem_json_errors(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway()
    async with gw.session.get(f"{gw.base_url}/api/v1/openapi.json") as response:
        document = await response.json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    failures: list[str] = []
    for operation in operations:
        await asyncio.to_thread(check, gw, operation, failures)
    assert failures == [], "\n".join(failures[:30])
