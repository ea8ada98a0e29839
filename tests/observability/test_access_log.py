"""The access log: one ``request`` line per request, answered or redirected, with its status."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from gateway.api.middleware import REQUEST_ID_HEADER, request_context


async def test_redirects_and_errors_leave_an_access_line_like_answers() -> None:
    async def answered(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def redirected(_: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/elsewhere")

    app = web.Application(middlewares=[request_context])
    app.router.add_get("/answered", answered)
    app.router.add_post("/redirected", redirected)
    async with TestClient(TestServer(app)) as client:
        with capture_logs() as entries:
            ok = await client.get("/answered")
            moved = await client.post("/redirected", allow_redirects=False)
            missing = await client.get("/nowhere")
    assert (ok.status, moved.status, missing.status) == (200, 303, 404)
    assert moved.headers[REQUEST_ID_HEADER]
    lines = [(e["method"], e["path"], e["status"]) for e in entries if e["event"] == "request"]
    assert lines == [
        ("GET", "/answered", 200),
        ("POST", "/redirected", 303),
        ("GET", "/nowhere", 404),
    ]
