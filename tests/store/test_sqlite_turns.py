"""SQLite write turns: a write transaction waits for another process's turn and starts when that
turn is given back; a cancelled wait and a killed holder never leave the turn taken."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.store.engine import Engines, create_engines, transaction
from gateway.store.sqlite_turns import LOCK_SUFFIX, FileTurn

# Another process: takes the turn of the database named on its command line, says "held", and
# gives it back when its stdin says so (or when it is killed).
HOLDER = """
import asyncio, sys
from gateway.store.sqlite_turns import FileTurn

async def main():
    turn = FileTurn(sys.argv[1])
    await turn.acquire()
    print("held", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    turn.release()
    print("released", flush=True)

asyncio.run(main())
"""


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "turns.db"


@pytest.fixture
async def engines(database: Path) -> AsyncIterator[Engines]:
    opened = create_engines(f"sqlite+aiosqlite:///{database}")
    async with transaction(opened.writer) as conn:
        await conn.execute(text("CREATE TABLE t (n INTEGER)"))
    yield opened
    await opened.writer.dispose()


@pytest.fixture
def holder(database: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the database's write turn (only the turn: SQLite's lock is free)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.communicate()  # waits, and closes its pipes


def _give_back(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "released"


async def _insert(engines: Engines, n: int) -> None:
    async with transaction(engines.writer) as conn:
        await conn.execute(text("INSERT INTO t (n) VALUES (:n)"), {"n": n})


async def _rows(engines: Engines) -> list[int]:
    async with engines.reader.connect() as conn:
        return [row[0] for row in await conn.execute(text("SELECT n FROM t ORDER BY n"))]


async def test_a_write_waits_for_another_process_turn_and_starts_once_it_is_given_back(
    engines: Engines, holder: subprocess.Popen[str], database: Path
) -> None:
    assert os.stat(str(database) + LOCK_SUFFIX).st_mode & 0o777 == 0o600
    writing = asyncio.create_task(_insert(engines, 1))
    await asyncio.sleep(0.5)
    assert not writing.done()  # SQLite's own lock is free: only the turn holds it back
    assert await _rows(engines) == []  # readers are not held back
    await asyncio.get_running_loop().run_in_executor(None, _give_back, holder)
    await asyncio.wait_for(writing, 10)
    assert await _rows(engines) == [1]


async def test_writes_of_one_process_take_turns_in_order(engines: Engines) -> None:
    await asyncio.gather(*(_insert(engines, n) for n in range(20)))
    assert await _rows(engines) == list(range(20))


async def test_a_cancelled_wait_gives_the_turn_back_when_it_comes(
    engines: Engines, holder: subprocess.Popen[str], database: Path
) -> None:
    writing = asyncio.create_task(_insert(engines, 1))
    await asyncio.sleep(0.3)
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing
    await asyncio.get_running_loop().run_in_executor(None, _give_back, holder)
    # The cancelled wait's thread took the turn after the holder and gave it straight back: both
    # another process and this one get it again.
    other = FileTurn(str(database))
    await asyncio.wait_for(other.acquire(), 10)
    other.release()
    await asyncio.wait_for(_insert(engines, 2), 10)
    assert await _rows(engines) == [2]


async def test_a_killed_holder_leaves_the_turn_free(
    engines: Engines, holder: subprocess.Popen[str]
) -> None:
    writing = asyncio.create_task(_insert(engines, 1))
    await asyncio.sleep(0.3)
    assert not writing.done()
    holder.kill()
    await asyncio.wait_for(writing, 10)
    assert await _rows(engines) == [1]
