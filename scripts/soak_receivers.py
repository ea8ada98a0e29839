"""The chaos soak's push receivers: local systems that deduplicate by ``Idempotency-Key``.

``python scripts/soak_receivers.py --port P`` serves one endpoint per name, ``POST /push/NAME``,
each in a mode set with ``POST /control/NAME`` (JSON ``{"mode": …, "hold_s": …}``):

* ``ok``      takes the package (stores it once per ``Idempotency-Key``) and answers 200;
* ``5xx``     answers 503 without taking it (counted as a refused attempt);
* ``timeout`` takes it, then holds the answer ``hold_s`` (longer than the gateway waits), so
  the gateway retries a delivery the receiver already has: a duplicate *arrival*;
* ``slow``    waits ``hold_s`` (less than the gateway waits), then takes it and answers 200.

As the integration guide asks, a receiver processes a package once per ``Idempotency-Key``; it
also notes each body's SHA-256, so the same document arriving under two keys (which the
gateway must never cause) shows up as a duplicate *processed*. ``GET /report`` gives, per
endpoint, every key with its body's SHA-256, the first arrival (``time.time()``), and how many
times it arrived or was refused.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp import web

MODES = ("ok", "5xx", "timeout", "slow")


@dataclass
class Endpoint:
    mode: str = "ok"
    hold_s: float = 0.0
    first: dict[str, tuple[str, float]] = field(default_factory=dict)  # key -> (sha256, t)
    arrivals: dict[str, int] = field(default_factory=dict)  # times taken in, per key
    refused: dict[str, int] = field(default_factory=dict)  # 5xx answers, per key

    def take(self, key: str, body: bytes) -> None:
        """Store once per key (a real system: in the same transaction as its own work)."""
        self.arrivals[key] = self.arrivals.get(key, 0) + 1
        if key not in self.first:
            self.first[key] = (hashlib.sha256(body).hexdigest(), time.time())

    def report(self) -> dict[str, object]:
        keys = set(self.first) | set(self.refused)
        return {
            "mode": self.mode,
            "keys": {
                key: {
                    "sha256": self.first[key][0] if key in self.first else None,
                    "first_at": self.first[key][1] if key in self.first else None,
                    "arrivals": self.arrivals.get(key, 0),
                    "refused": self.refused.get(key, 0),
                }
                for key in keys
            },
        }


def receivers_app() -> web.Application:
    endpoints: dict[str, Endpoint] = {}

    async def push(request: web.Request) -> web.Response:
        endpoint = endpoints.setdefault(request.match_info["name"], Endpoint())
        body = await request.read()
        key = request.headers.get("Idempotency-Key", "")
        if not key:
            return web.Response(status=400, text="no Idempotency-Key")
        mode, hold_s = endpoint.mode, endpoint.hold_s
        if mode == "5xx":
            endpoint.refused[key] = endpoint.refused.get(key, 0) + 1
            return web.Response(status=503, text="the document system is down")
        if mode == "slow":
            await asyncio.sleep(hold_s)
        endpoint.take(key, body)
        if mode == "timeout":
            await asyncio.sleep(hold_s)  # the gateway has given up by then
        return web.Response(text="stored")

    async def control(request: web.Request) -> web.Response:
        endpoint = endpoints.setdefault(request.match_info["name"], Endpoint())
        data = await request.json()
        if data.get("mode") not in MODES:
            return web.Response(status=400, text=f"mode must be one of {MODES}")
        endpoint.mode = str(data["mode"])
        endpoint.hold_s = float(data.get("hold_s", 0.0))
        return web.json_response({"mode": endpoint.mode, "hold_s": endpoint.hold_s})

    async def report(_request: web.Request) -> web.Response:
        return web.json_response({name: ep.report() for name, ep in endpoints.items()})

    app = web.Application(client_max_size=128 * 1024 * 1024)
    app.router.add_post("/push/{name}", push)
    app.router.add_post("/control/{name}", control)
    app.router.add_get("/report", report)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the chaos soak's push receivers")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    web.run_app(receivers_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
