"""The processes a benchmark starts: spawned with their log file, stopped, a free port for each."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

LGSP = Path(sys.executable).parent / "lgsp"
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    role: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def tail(self, lines: int = 20) -> str:
        self.log_file.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def spawn(
    role: str, args: Sequence[str], log_path: Path, env: dict[str, str] | None = None
) -> Proc:
    log_file = log_path.open("wb")
    popen = subprocess.Popen(
        list(args), stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    return Proc(role, popen, log_path, log_file)


def stop(procs: Sequence[Proc]) -> None:
    """SIGTERM each, then wait (SIGKILL after ``STOP_TIMEOUT_S``)."""
    for proc in procs:
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in procs:
        try:
            proc.popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"# {proc.role} pid {proc.popen.pid} ignored SIGTERM: killed", file=sys.stderr)
            proc.popen.kill()
            proc.popen.wait()
        proc.log_file.close()
