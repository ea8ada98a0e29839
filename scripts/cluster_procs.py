"""Deployment processes: detached children checked by pid and command line, a private PostgreSQL.

Used by ``cluster_deployment.py`` and ``cluster_deploy.py``. A process is started detached (its
own session, output to a log file) and known afterwards by its pid *and* a marker its command
line must contain (the deployment's directory), so a signal never reaches another process that
reused the pid. The private PostgreSQL is an ``initdb`` cluster of the machine's binaries in the
deployment's directory, on a port of its own: the chaos soak restarts it, and the machine's
shared server (which other test runs use) is never touched.
As root, it runs as the ``postgres`` user.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

POSTGRES_USER = "postgres"
STOP_TIMEOUT_S = 30.0
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}  # started by this process: reaped on exit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_port(port: int, timeout_s: float, *, pid: int | None = None, marker: str = "") -> None:
    """Until ``port`` accepts connections; fails early when ``pid`` (checked by marker) died."""
    deadline = time.monotonic() + timeout_s
    while not port_open(port):
        if pid is not None and not alive(pid, marker):
            raise RuntimeError(f"pid {pid} exited before port {port} opened")
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port} not open after {timeout_s:.0f} s")
        time.sleep(0.1)


def start_detached(
    args: Sequence[str], log_path: Path, env: Mapping[str, str], cwd: Path | None = None
) -> int:
    """Start ``args`` in a session of its own, output appended to ``log_path``; its pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        popen = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    _CHILDREN[popen.pid] = popen
    return popen.pid


def _reap(pid: int) -> None:
    popen = _CHILDREN.get(pid)
    if popen is not None and popen.poll() is not None:
        del _CHILDREN[pid]


def alive(pid: int, marker: str) -> bool:
    """``pid`` runs (not a zombie) and its command line contains ``marker``."""
    _reap(pid)
    try:
        for _ in range(50):  # empty for a moment while a just-started process execs
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            if cmdline:
                break
            time.sleep(0.01)
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    if any(line.startswith("State:") and "Z" in line.split()[1] for line in status.splitlines()):
        return False
    return marker.encode() in cmdline


def kill(pid: int, marker: str, sig: signal.Signals = signal.SIGKILL) -> bool:
    """Send ``sig`` to ``pid`` if it is still the process the marker names; whether it was."""
    if not alive(pid, marker):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    return True


def wait_gone(pid: int, marker: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while alive(pid, marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def terminate(pid: int, marker: str, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM (a graceful drain), then SIGKILL after ``timeout_s``."""
    if kill(pid, marker, signal.SIGTERM) and not wait_gone(pid, marker, timeout_s):
        kill(pid, marker, signal.SIGKILL)
        wait_gone(pid, marker, 10.0)


# --- the private PostgreSQL -----------------------------------------------------------------


def postgres_bin() -> Path:
    """The newest ``/usr/lib/postgresql/N/bin`` with ``initdb`` (Debian's layout), else PATH's."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("no PostgreSQL server binaries (initdb) on this machine")
    return Path(initdb).parent


def reachable_by_others(path: Path) -> bool:
    """Whether another user (``postgres``) may enter ``path``: every ancestor has o+x."""
    return all(p.stat().st_mode & 0o001 for p in (path, *path.parents) if p.exists())


class PrivatePostgres:
    """A PostgreSQL server of its own in ``dir`` (``data/``, ``run/`` socket, ``server.log``)."""

    def __init__(self, dir: Path, port: int) -> None:
        self.dir = dir
        self.port = port
        self.data = dir / "data"
        self.bin = postgres_bin()

    @property
    def server_url(self) -> str:
        return f"postgresql+asyncpg://{POSTGRES_USER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            cmd = ["runuser", "-u", POSTGRES_USER, "--", *cmd]
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=self.dir)
        if check and done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def init(self) -> None:
        """A fresh cluster: trust authentication, loopback and a socket in ``run/`` only."""
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / "run").mkdir(parents=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam(POSTGRES_USER)
            for path in (self.dir, self.dir / "run"):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", POSTGRES_USER, "--auth=trust", "-E", "UTF8")
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(
                "\n# lgsp deployment (scripts/cluster)\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.dir / 'run'}'\n"
                "max_connections = 200\n"
                "shared_buffers = 64MB\n"
            )

    def start(self) -> None:
        log = self.dir / "server.log"
        result = self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(log), "-w", "-t", "60", "start", check=False
        )
        if result.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {result.stderr.strip()}\n{tail}")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m MODE`` (``immediate`` is a crash: recovery at the next start)."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def create_database(self, name: str) -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", POSTGRES_USER, name)


# --- a database on an existing server (--store-url) ------------------------------------------


def _admin_sql(server_url: str, statement: str) -> None:
    async def run() -> None:
        engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())


def fresh_database_on(server_url: str) -> str:
    """A new database ``lgsp_cluster_<hex>`` on ``server_url``'s server; its URL."""
    name = f"lgsp_cluster_{secrets.token_hex(4)}"
    _admin_sql(server_url, f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database_on(server_url: str, database_url: str) -> None:
    name = make_url(database_url).database
    _admin_sql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
