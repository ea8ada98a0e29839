"""``lgsp archive verify`` against rows edited, deleted, inserted and reordered straight in the
database: exit 1 naming the entry; an untouched log exits 0. Both on SQLite and PostgreSQL: the
untouched log (every writer's events chained on each) and an edited event; the other kinds of
tampering on SQLite (the verifier reads the rows alike on both)."""

from __future__ import annotations

import re

from evidence_kit import SQLITE_ONLY, Filled, lgsp, lgsp_process, sql

from gateway.store import EventKind


def verify(filled: Filled, *, process: bool = False) -> tuple[int, str, str]:
    run = lgsp_process if process else lgsp
    done = run("archive", "verify", "--config", str(filled.config))
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


def first_problem(err: str) -> str:
    return err.splitlines()[0]


async def event_id(filled: Filled, kind: str, nth: int = 0) -> int:
    ids = await sql(
        filled.url,
        "SELECT id FROM events WHERE kind = :kind ORDER BY id LIMIT 1 OFFSET :nth",
        kind=kind,
        nth=nth,
    )
    return int(str(ids[0]))


async def test_an_untouched_log_verifies(filled: Filled) -> None:
    code, out, err = verify(filled, process=True)  # the entry point, as a user runs it
    assert (code, err) == (0, "")
    (count,) = await sql(filled.url, "SELECT count(*) FROM events")
    assert f" {count} entries (1..{count}) " in out  # every writer's events, one chain
    kinds = await sql(filled.url, "SELECT count(DISTINCT kind) FROM events")
    assert kinds == [len(EventKind)]  # received, published, attempt, replayed, …
    assert re.search(r"[\d,]+ entries/s", out)


async def test_an_edited_event_is_named(filled: Filled) -> None:
    target = await event_id(filled, "retry_scheduled")
    await sql(filled.url, "UPDATE events SET outcome = 'delivered' WHERE id = :id", id=target)
    code, _, err = verify(filled)
    assert code == 1
    assert first_problem(err).startswith(f"lgsp: archive verify: edited: event {target} ")
    assert "no signed checkpoint covers it yet" in first_problem(err)


@SQLITE_ONLY
async def test_an_edited_document_or_delivery_is_named_by_its_received_event(
    filled: Filled,
) -> None:
    received = await event_id(filled, "received")
    await sql(
        filled.url,
        "UPDATE deliveries SET recipient = '000.00.99.H56' WHERE document = :doc "
        "AND recipient = '000.00.15.H56'",
        doc=filled.document,
    )
    code, _, err = verify(filled)
    assert code == 1
    assert f"edited: event {received} (received, document {filled.document}" in err


@SQLITE_ONLY
async def test_edited_package_bytes_are_named(filled: Filled) -> None:
    received = await event_id(filled, "received")
    await sql(
        filled.url,
        "UPDATE packages SET data = :data WHERE sha256 = "
        "(SELECT package_sha256 FROM documents WHERE id = :doc)",
        data=b"<edXML>fir5t</edXML>",
        doc=filled.document,
    )
    code, _, err = verify(filled)
    assert code == 1
    assert f"edited: event {received} " in first_problem(err)
    assert "no longer hashes to its SHA-256" in first_problem(err)


@SQLITE_ONLY
async def test_a_deleted_event_is_named(filled: Filled) -> None:
    target = await event_id(filled, "delivered")
    await sql(filled.url, "DELETE FROM events WHERE id = :id", id=target)
    code, _, err = verify(filled)
    assert code == 1
    assert first_problem(err).startswith(f"lgsp: archive verify: deleted: the entry {target}: ")


@SQLITE_ONLY
async def test_the_deleted_end_of_the_chain_is_named(filled: Filled) -> None:
    (last,) = await sql(filled.url, "SELECT max(id) FROM events")
    await sql(filled.url, "DELETE FROM events WHERE id = :id", id=last)
    code, _, err = verify(filled)
    assert code == 1
    assert f"deleted: the entries {last}..{last} (the end of the chain)" in first_problem(err)


@SQLITE_ONLY
async def test_an_inserted_event_is_named(filled: Filled) -> None:
    (last,) = await sql(filled.url, "SELECT max(id) FROM events")
    forged = int(str(last)) + 1
    await sql(
        filled.url,
        "INSERT INTO events (id, document, delivery, at, kind, outcome, detail, actor, chain_hash)"
        " VALUES (:id, :doc, NULL, CURRENT_TIMESTAMP, 'replayed', 'accepted', '{}', 'dba', :h)",
        id=forged,
        doc=filled.document,
        h="ab" * 32,
    )
    code, _, err = verify(filled)
    assert code == 1
    assert first_problem(err).startswith(f"lgsp: archive verify: inserted: event {forged} ")


@SQLITE_ONLY
async def test_an_event_inserted_with_the_head_moved_is_named(filled: Filled) -> None:
    (last,) = await sql(filled.url, "SELECT max(id) FROM events")
    forged = int(str(last)) + 1
    await sql(
        filled.url,
        "INSERT INTO events (id, document, delivery, at, kind, outcome, detail, actor)"
        " VALUES (:id, :doc, NULL, CURRENT_TIMESTAMP, 'replayed', 'accepted', '{}', 'dba')",
        "UPDATE chain_head SET last_id = :id",
        id=forged,
        doc=filled.document,
    )
    code, _, err = verify(filled)
    assert code == 1
    assert f"inserted: event {forged} " in first_problem(err)
    assert "no chain hash" in first_problem(err)


@SQLITE_ONLY
async def test_an_inserted_document_is_named(filled: Filled) -> None:
    await sql(
        filled.url,
        "INSERT INTO documents (id, dedup_key, kind, sender, document_id, package_sha256, format,"
        " signer_fingerprint, signer_subject, algorithm, caller, received_at) SELECT"
        " 'forged-document', 'forged', kind, sender, document_id, package_sha256, format,"
        " signer_fingerprint, signer_subject, algorithm, caller, received_at"
        " FROM documents WHERE id = :doc",
        doc=filled.document,
    )
    code, _, err = verify(filled)
    assert code == 1
    assert "inserted: document forged-document: it has no received event" in first_problem(err)


@SQLITE_ONLY
async def test_reordered_events_are_named(filled: Filled) -> None:
    first = await event_id(filled, "retry_scheduled")
    await sql(
        filled.url,
        "UPDATE events SET id = -1 WHERE id = :a",
        "UPDATE events SET id = :a WHERE id = :b",
        "UPDATE events SET id = :b WHERE id = -1",
        a=first,
        b=first + 1,
    )
    code, _, err = verify(filled)
    assert code == 1
    assert first_problem(err).startswith(f"lgsp: archive verify: reordered: event {first} ")
    assert f"the entry now at {first + 1} were swapped" in first_problem(err)
