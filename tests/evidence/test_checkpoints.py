"""Checkpoints: the chain's head signed by the gateway and time-stamped by a TSA (a local
``openssl ts`` one), stored and exported; ``lgsp archive verify`` holds the chain to them.
Making, verifying and the periodic loop on SQLite and PostgreSQL; the changes a checkpoint
exposes on SQLite."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime, timedelta

from evidence_kit import SQLITE_ONLY, Filled, Tsa, lgsp, sql
from sqlalchemy import select, update

from gateway.core.loops import Loops
from gateway.core.settings import load_settings
from gateway.evidence.components import build_checkpointer, checkpoint_forever
from gateway.store import DeliveryLog
from gateway.store.chain import GENESIS, link
from gateway.store.chain_read import read_chunk
from gateway.store.tables import chain_checkpoints, chain_head, events


def checkpoint(filled: Filled) -> tuple[int, str]:
    done = lgsp("archive", "checkpoint", "--config", str(filled.config))
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout


def verify(filled: Filled, *extra: str) -> tuple[int, str, str]:
    done = lgsp("archive", "verify", "--config", str(filled.config), *extra)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


async def test_a_checkpoint_is_signed_time_stamped_exported_and_verified(
    signed: Filled, tsa: Tsa
) -> None:
    (last,) = await sql(signed.url, "SELECT max(id) FROM events")
    code, out = checkpoint(signed)
    assert code == 0
    assert f"entry {last} signed, time-stamped " in out
    files = signed.config.parent / "archive" / "checkpoints"
    jws, tsr = files / f"checkpoint-{last:012d}.jws", files / f"checkpoint-{last:012d}.tsr"
    # anyone can check the exported token with openssl alone
    ok = await asyncio.to_thread(
        subprocess.run,
        ["openssl", "ts", "-verify", "-data", str(jws), "-in", str(tsr), "-CAfile", str(tsa.ca)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "Verification: OK" in ok.stdout
    assert list((signed.config.parent / "archive" / "trust").glob("gateway-*.pem"))

    assert checkpoint(signed) == (
        0,
        "lgsp archive checkpoint: the chain's head is checkpointed already\n",
    )
    code, out, err = verify(signed)
    assert (code, err) == (0, "")
    assert "1 of 1 checkpoints matched" in out


@SQLITE_ONLY
async def test_a_change_before_a_checkpoint_names_the_checkpoint_it_contradicts(
    signed: Filled,
) -> None:
    assert checkpoint(signed)[0] == 0
    (seq,) = await sql(signed.url, "SELECT max(seq) FROM chain_checkpoints")
    await sql(signed.url, "UPDATE events SET actor = 'someone else' WHERE id = 3")
    code, _, err = verify(signed)
    assert code == 1
    first = err.splitlines()[0]
    assert first.startswith("lgsp: archive verify: edited: event 3 ")
    assert f"; contradicts checkpoint {seq} (signed " in first
    assert ", time-stamped " in first


@SQLITE_ONLY
async def test_a_chain_recomputed_after_an_edit_contradicts_the_signed_checkpoint(
    signed: Filled,
) -> None:
    """A database administrator who knows the chain's rules edits an event and recomputes every
    hash and the head: the rows agree with each other, the signed checkpoint does not."""
    assert checkpoint(signed)[0] == 0
    (seq,) = await sql(signed.url, "SELECT max(seq) FROM chain_checkpoints")
    log = await DeliveryLog.open(signed.url)
    try:
        async with log.engines.writer.begin() as conn:
            await conn.execute(update(events).where(events.c.id == 4).values(outcome="forged"))

            def rehash(sync: object) -> None:
                last, after = GENESIS, 0
                while chunk := read_chunk(sync, after, 100, check_packages=False):  # type: ignore[arg-type]
                    for entry in chunk:
                        last = link(last, entry.digest())
                        sync.execute(  # type: ignore[attr-defined]
                            update(events).where(events.c.id == entry.id).values(chain_hash=last)
                        )
                    after = chunk[-1].id
                sync.execute(update(chain_head).values(hash=last))  # type: ignore[attr-defined]

            await conn.run_sync(rehash)
    finally:
        await log.aclose()
    code, _, err = verify(signed)
    assert code == 1
    assert err.splitlines()[0] == (
        f"lgsp: archive verify: rewritten: the entries 1..{seq}: their stored hashes agree with "
        "each other but not with the signed hash: the chain was recomputed after changes; "
        f"contradicts checkpoint {seq} " + err.splitlines()[0].split(f"checkpoint {seq} ")[1]
    )


@SQLITE_ONLY
async def test_a_forged_checkpoint_row_is_refused(signed: Filled) -> None:
    assert checkpoint(signed)[0] == 0
    (seq,) = await sql(signed.url, "SELECT max(seq) FROM chain_checkpoints")
    await sql(signed.url, "UPDATE chain_checkpoints SET hash = :h", h="00" * 32)
    code, _, err = verify(signed)
    assert code == 1
    assert f"edited: checkpoint {seq} (signed " in err
    assert "not valid: evidence.statement: the signed statement does not match the row" in err


@SQLITE_ONLY
async def test_verify_from_a_date_starts_at_the_checkpoint_before_it(signed: Filled) -> None:
    assert checkpoint(signed)[0] == 0
    await sql(signed.url, "UPDATE events SET actor = 'someone else' WHERE id = 2")
    later = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    code, out, err = verify(signed, "--from", later)
    assert (code, err) == (0, "")  # what precedes the checkpoint is not walked again
    assert " 0 entries (none) " in out
    assert verify(signed)[0] == 1


async def test_the_periodic_loop_checkpoints_new_entries(signed: Filled) -> None:
    settings = load_settings(signed.config)
    log = await DeliveryLog.open(signed.url)
    loops = Loops()
    try:
        task = asyncio.create_task(
            checkpoint_forever(build_checkpointer(settings, log.engines), 0.3, loops)
        )
        for _ in range(100):
            await asyncio.sleep(0.1)
            rows = await _checkpoints(log)
            if rows:
                break
        assert rows, "no checkpoint after 10 s"
        view = await log.get_document(signed.document)
        assert view is not None
        await log.set_business_status(view.deliveries[0].id, "06", datetime.now(UTC), "x")
        for _ in range(100):
            await asyncio.sleep(0.1)
            if len(await _checkpoints(log)) >= 2:
                break
        task.cancel()
        seqs = [r.seq for r in await _checkpoints(log)]
        assert len(seqs) >= 2
        assert seqs == sorted(seqs)
        assert loops.snapshot()["checkpoints"]["failures"] == 0  # type: ignore[index]
        assert all(r.tsa_response is not None for r in await _checkpoints(log))
    finally:
        await log.aclose()
    assert verify(signed)[0] == 0


async def _checkpoints(log: DeliveryLog) -> list[object]:
    async with log.engines.reader.connect() as conn:
        result = await conn.execute(select(chain_checkpoints).order_by(chain_checkpoints.c.seq))
        return list(result.all())
