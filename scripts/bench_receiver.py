"""The benchmarks' push receiver, run as its own process: ``bench_receiver.py --port P``.

The bench starts it as a subprocess so it does not share the load client's event loop:
``POST /inbox`` answers 200 and records the first arrival time (``time.time()``) per
``X-LGSP-Delivery-Id``; ``GET /count`` and ``GET /arrivals`` report them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web


@dataclass
class Arrivals:
    first_at: dict[str, float] = field(default_factory=dict)
    posts: int = 0


def receiver_app() -> web.Application:
    arrivals = Arrivals()

    async def inbox(request: web.Request) -> web.Response:
        await request.read()
        arrivals.posts += 1
        delivery_id = request.headers.get("X-LGSP-Delivery-Id", "")
        arrivals.first_at.setdefault(delivery_id, time.time())
        return web.Response(text="ok")

    async def count(_request: web.Request) -> web.Response:
        return web.json_response({"delivered": len(arrivals.first_at), "posts": arrivals.posts})

    async def listing(_request: web.Request) -> web.Response:
        return web.json_response(arrivals.first_at)

    app = web.Application(client_max_size=128 * 1024 * 1024)
    app.router.add_post("/inbox", inbox)
    app.router.add_get("/count", count)
    app.router.add_get("/arrivals", listing)
    return app


class ReceiverClient:
    """Reads the receiver subprocess's counters."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self.base_url = base_url

    async def count(self) -> int:
        async with self._session.get(f"{self.base_url}/count") as r:
            return int((await r.json())["delivered"])

    async def arrivals(self) -> dict[str, float]:
        async with self._session.get(f"{self.base_url}/arrivals") as r:
            data: dict[str, float] = await r.json()
            return data


def receiver_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description="the bench's push receiver")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    web.run_app(receiver_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(receiver_main(sys.argv[1:]))
