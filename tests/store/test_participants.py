"""The participant directory in the store, on real SQLite and PostgreSQL databases: seeding,
changes seen by other processes' refresh, one version per change, audit entries, imports."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from gateway.console.throttle import LoginThrottle
from gateway.core.directory import (
    Delivery,
    Directory,
    Participant,
    generate_api_key,
    load_directory,
    write_directory,
)
from gateway.core.errors import ConfigError, NotFoundError
from gateway.core.methods import DeliveryMethod
from gateway.store import DeliveryLog
from gateway.store.login_failures import LoginFailures
from gateway.store.participants import StoredDirectory
from gateway.store.tables import console_audit

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "participants.toml"
WARD = "000.02.15.H56"


def stored(log: DeliveryLog) -> StoredDirectory:
    """What one process holds: its own snapshot over the shared store."""
    return StoredDirectory(lambda: log.engines)


async def audit_trail(log: DeliveryLog) -> list[tuple[str, str, str]]:
    async with log.engines.reader.connect() as conn:
        rows = await conn.execute(
            select(console_audit.c.actor, console_audit.c.action, console_audit.c.target).order_by(
                console_audit.c.id
            )
        )
        return [(r.actor, r.action, r.target) for r in rows]


async def test_an_empty_store_is_seeded_once_from_the_file(
    log: DeliveryLog, tmp_path: Path
) -> None:
    seed = tmp_path / "participants.toml"
    seed.write_bytes(EXAMPLE.read_bytes())
    first, second = stored(log), stored(log)
    assert await first.read() is None  # no directory yet

    loaded = await asyncio.gather(first.open(seed), second.open(seed))  # two processes at once

    expected = load_directory(EXAMPLE)
    assert [list(d) for d in loaded] == [list(expected), list(expected)]
    assert (first.holder.version, second.holder.version) == (1, 1)
    assert [a for a in await audit_trail(log) if a[1] == "directory.seed"] == [
        ("system", "directory.seed", str(seed))
    ]

    ward = Participant(WARD, "UBND phường")
    write_directory(seed, expected.with_participant(ward))  # the file edited afterwards
    with capture_logs() as logs:
        again = await stored(log).open(seed)
    assert WARD not in again  # the store is the directory; the file is only imported
    differs = [e for e in logs if e["event"] == "directory_file_differs"]
    assert differs
    assert differs[0]["only_in_file"] == [WARD]


async def test_an_empty_store_without_its_file_refuses_to_start(
    log: DeliveryLog, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as refused:
        await stored(log).open(tmp_path / "missing.toml")
    assert refused.value.path == "directory.path"
    assert "lgsp directory import" in refused.value.message


async def test_a_change_is_one_version_seen_by_the_other_process(log: DeliveryLog) -> None:
    gateway_a, worker_b = stored(log), stored(log)
    await gateway_a.seed(load_directory(EXAMPLE), source="test")
    await worker_b.refresh()
    version = worker_b.holder.version
    _, key_hash = generate_api_key()
    ward = Participant(WARD, "UBND phường", api_key_hashes=(key_hash,))

    await gateway_a.save(ward, actor="admin", detail={"via": "api"})

    assert WARD in gateway_a.holder.current  # the writer sees its change at once
    assert gateway_a.holder.version == version + 1
    assert WARD not in worker_b.holder.current
    assert await worker_b.refresh()
    assert worker_b.holder.current.get(WARD) == ward
    assert worker_b.holder.version == version + 1
    assert not await worker_b.refresh()  # nothing new: no reload
    assert (await audit_trail(log))[-1] == ("admin", "participant.save", WARD)

    await worker_b.disable(WARD, actor="operator")
    await gateway_a.refresh()
    found = gateway_a.holder.current.get(WARD)
    assert found is not None
    assert not found.enabled
    assert (await audit_trail(log))[-1] == ("operator", "participant.disable", WARD)


async def test_a_refused_change_writes_nothing(log: DeliveryLog) -> None:
    directory = stored(log)
    await directory.seed(load_directory(EXAMPLE), source="test")
    before = await directory.read()
    assert before is not None
    trail = await audit_trail(log)
    bad = Participant(WARD, "push without URL", delivery=Delivery(DeliveryMethod.PUSH, None))

    with pytest.raises(ConfigError):
        await directory.save(bad, actor="admin")
    with pytest.raises(NotFoundError):
        await directory.disable("000.00.99.H56", actor="admin")

    after = await directory.read()
    assert after is not None
    assert (after[0], after[1].participants) == (before[0], before[1].participants)
    assert await audit_trail(log) == trail


async def test_a_replaced_participant_keeps_its_place(log: DeliveryLog) -> None:
    directory = stored(log)
    await directory.seed(load_directory(EXAMPLE), source="test")
    order = [p.organ_id for p in load_directory(EXAMPLE)]
    first = load_directory(EXAMPLE).participants[0]

    await directory.save(replace(first, name="renamed"), actor="admin")

    found = await directory.read()
    assert found is not None
    assert [p.organ_id for p in found[1]] == order
    assert [p.organ_id for p in directory.holder.current] == order


async def test_concurrent_changes_from_two_processes_are_all_kept(log: DeliveryLog) -> None:
    a, b = stored(log), stored(log)
    await a.seed(Directory(), source="test")
    ids = [f"000.{i:02d}.77.H56" for i in range(12)]

    await asyncio.gather(
        *(
            (a if i % 2 else b).save(Participant(organ_id, organ_id), actor="admin")
            for i, organ_id in enumerate(ids)
        )
    )

    found = await a.read()
    assert found is not None
    version, directory = found
    assert sorted(p.organ_id for p in directory) == sorted(ids)
    assert version == 1 + len(ids)  # one version each: no change was lost or merged away


async def test_import_replaces_or_merges(log: DeliveryLog) -> None:
    directory = stored(log)
    await directory.seed(load_directory(EXAMPLE), source="test")
    example = load_directory(EXAMPLE)
    kept = example.participants[0]
    ward = Participant(WARD, "UBND phường")

    merged = await directory.import_directory(
        Directory([replace(kept, name="renamed"), ward]), actor="cli:root", source="f", merge=True
    )

    assert (merged.added, merged.changed, merged.removed) == ((WARD,), (kept.organ_id,), ())
    assert len(directory.holder.current) == len(example) + 1

    replaced = await directory.import_directory(Directory([ward]), actor="cli:root", source="f")

    assert replaced.removed == tuple(p.organ_id for p in example)
    assert [p.organ_id for p in directory.holder.current] == [WARD]
    assert [a[1] for a in (await audit_trail(log))[-2:]] == ["directory.merge", "directory.import"]


async def test_login_delays_are_shared_by_every_process(log: DeliveryLog) -> None:
    now = [1_000_000.0]
    here, there = (
        LoginThrottle(LoginFailures(lambda: log.engines), clock=lambda: now[0]) for _ in range(2)
    )
    for throttle in (here, there):  # free failures, from two processes
        await throttle.failed("operator")
    assert await there.retry_after_s("operator") == 0
    await here.failed("operator")
    assert await there.retry_after_s("operator") == 1  # the third failure counts everywhere
    await there.failed("operator")
    assert await here.retry_after_s("operator") == 2
    now[0] += 1.5
    assert await here.retry_after_s("operator") == 0.5
    await here.succeeded("operator")
    assert await there.retry_after_s("operator") == 0
