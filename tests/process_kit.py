"""``lgsp run`` as child processes of a test: started on a demo, ready, stopped or killed.

``RunningGateway`` starts one (any role, environment and port of its own), waits until it has
started and stops it with the signal a test names; the ``lgsp_processes`` fixture makes them and
kills what is left at the end. ``post_document`` submits to one as an agency system would.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest
from service_sites import delete_topology

from gateway.core.settings import Settings, load_settings
from gateway.demo.layout import DemoSetup
from gateway.service.runner import Role

TEST_ENV = {  # every test gateway, in the loop or a child: quick retries, text logs
    "LGSP_BROKER__RETRY_DELAYS_S": "0.2,0.4,0.8",
    "LGSP_BROKER__MAX_TRIES": "4",
    "LGSP_LOG__JSON": "false",
}

LGSP = Path(sys.executable).with_name("lgsp")
START_TIMEOUT_S = 90.0  # start-up only; a loaded 2-core machine (load 17) once took over 30 s


@dataclass
class RunningGateway:
    """``lgsp run`` as a child process on a demo, its output (stdout and stderr) in a file.

    ``settings`` are what the child runs with: the demo's configuration under ``TEST_ENV`` and
    the ``env`` of the last ``start`` (e.g. ``LGSP_HTTP__PORT`` for a second gateway).
    """

    setup: DemoSetup
    output: Path
    settings: Settings = field(init=False)
    proc: asyncio.subprocess.Process | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.settings = load_settings(self.setup.config_path, env=TEST_ENV)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http.port}"

    async def start(
        self,
        session: aiohttp.ClientSession,
        role: str = "all",
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Start ``lgsp run --role ROLE`` (``TEST_ENV`` and ``env`` over an environment without
        ``LGSP_`` variables) and return once it has started: its last start-up line is in its
        output (``workers_started``, or ``metrics_listening`` with a metrics port) and, with an
        HTTP listener, ``/readyz`` answers 200."""
        run_env = {**TEST_ENV, **(env or {})}
        self.settings = load_settings(self.setup.config_path, env=run_env)
        self.output.touch()
        since = self.output.stat().st_size
        self._log = self.output.open("ab")
        clean = {k: v for k, v in os.environ.items() if not k.startswith("LGSP_")}
        self.proc = await asyncio.create_subprocess_exec(
            str(LGSP),
            "run",
            "--config",
            str(self.setup.config_path),
            "--role",
            role,
            env={**clean, **run_env},
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
        )
        listens = role in (Role.GATEWAY.value, Role.ALL.value)
        if self.settings.metrics.port is not None:
            last_line = b"metrics_listening"
        elif role == Role.GATEWAY.value:
            last_line = b"gateway_listening"
        else:
            last_line = b"workers_started"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.returncode is None, f"lgsp run exited:\n{self.tail()}"
            if last_line in self.output.read_bytes()[since:] and (
                not listens or await self._ready(session)
            ):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"lgsp run not ready in {START_TIMEOUT_S}s:\n{self.tail()}")

    async def _ready(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(f"{self.base_url}/readyz") as r:
                return r.status == 200
        except aiohttp.ClientConnectionError:
            return False

    async def stop(self, sig: int, timeout_s: float = 60) -> int:
        """Send ``sig`` (unless the process is gone already) and wait for its exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await self.wait_exit(timeout_s)

    async def wait_exit(self, timeout_s: float) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout_s)
        assert self._log is not None
        self._log.close()
        return code

    async def kill(self) -> None:
        """SIGKILL the process if it still runs (the end of a test, passed or not)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._log is not None:
            self._log.close()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output.read_text(errors="replace").splitlines()[-lines:])


NewProcess = Callable[[DemoSetup, str], RunningGateway]


@pytest.fixture
async def lgsp_processes(tmp_path: Path) -> AsyncIterator[NewProcess]:
    """``lgsp_processes(setup, name)``: an ``lgsp run`` on ``setup``, not started, its output in
    ``tmp_path/NAME.log``. At the end each is killed and each setup's broker topology deleted."""
    made: list[RunningGateway] = []

    def new(setup: DemoSetup, name: str) -> RunningGateway:
        process = RunningGateway(setup, tmp_path / f"{name}.log")
        made.append(process)
        return process

    try:
        yield new
    finally:
        await asyncio.gather(*(process.kill() for process in made))
        prefixes = {p.settings.broker.prefix: p.settings for p in made}
        for settings in prefixes.values():
            await delete_topology(settings)


Answer = tuple[int, dict[str, Any], str | None] | str  # (status, body, Retry-After) or an error


async def post_document(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: Mapping[str, str]
) -> Answer:
    """One submission to the gateway at ``url``: its answer, or the name of the client error it
    met (a refused or cut connection)."""
    try:
        async with session.post(f"{url}/api/v1/documents", data=body, headers=headers) as r:
            return r.status, await r.json(content_type=None), r.headers.get("Retry-After")
    except aiohttp.ClientError as exc:
        return type(exc).__name__
