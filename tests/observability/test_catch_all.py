"""The catch-all of the HTTP middlewares: a bug is a logged 500 with the request id.

A real aiohttp server with the gateway's own middlewares (the API's ``request_context`` at the root,
the console's ``console_errors`` on the ``/admin`` sub-application, its real templates) and one
handler that fails as a bug would.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import structlog
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from gateway.api.middleware import PROBLEM_JSON, REQUEST_ID_HEADER, request_context
from gateway.console.context import TEMPLATES
from gateway.console.middleware import console_errors
from gateway.console.render import build_templates


async def broken(request: web.Request) -> web.Response:
    raise ZeroDivisionError("secret detail 4711")


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application(middlewares=[request_context])
    app.router.add_get("/api/v1/broken", broken)
    console = web.Application(middlewares=[console_errors])
    console[TEMPLATES] = build_templates()
    console.router.add_get("/broken", broken)
    app.add_subapp("/admin", console)
    async with TestServer(app, host="127.0.0.1") as running:
        yield running


async def test_an_unexpected_api_error_is_a_problem_500_with_the_request_id(
    server: TestServer,
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with (
            ClientSession() as client,
            client.get(
                server.make_url("/api/v1/broken"), headers={REQUEST_ID_HEADER: "req-42"}
            ) as response,
        ):
            body = await response.text()
    assert response.status == 500
    assert response.content_type == PROBLEM_JSON
    assert response.headers[REQUEST_ID_HEADER] == "req-42"
    problem = json.loads(body)
    assert problem["code"] == "internal"
    assert problem["request_id"] == "req-42"
    assert "secret detail" not in body
    assert "ZeroDivisionError" not in body
    [failed] = [e for e in logs if e["event"] == "request_failed"]
    assert failed["log_level"] == "error"
    assert failed["path"] == "/api/v1/broken"
    assert isinstance(failed["exc_info"], bool)
    assert failed["exc_info"]


async def test_an_unexpected_console_error_is_the_500_page_with_the_request_id(
    server: TestServer,
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with (
            ClientSession() as client,
            client.get(
                server.make_url("/admin/broken"), headers={REQUEST_ID_HEADER: "req-43"}
            ) as response,
        ):
            page = await response.text()
    assert response.status == 500
    assert response.content_type == "text/html"
    assert "req-43" in page
    assert "secret detail" not in page
    assert "Traceback" not in page
    assert response.headers["X-Frame-Options"] == "DENY"
    assert [e["path"] for e in logs if e["event"] == "console_request_failed"] == ["/admin/broken"]
