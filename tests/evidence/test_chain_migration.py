"""Migration 10 chains the events a version-9 store already holds (gaps in their ids closed)."""

from __future__ import annotations

from pathlib import Path

from evidence_kit import fill, sql

from gateway.evidence.verify import verify_store
from gateway.store import DeliveryLog
from gateway.store.migrations import LATEST


async def test_a_version_9_store_is_chained_by_the_migration(
    store_url: str, tmp_path: Path
) -> None:
    filled = await fill(store_url, tmp_path)
    before = await sql(store_url, "SELECT count(*) FROM events")
    drop_column = "ALTER TABLE events DROP COLUMN chain_hash"
    await sql(  # what version 9 left: no chain, and a gap in the ids (a rolled-back insert)
        store_url,
        "DROP TABLE chain_head",
        "DROP TABLE chain_checkpoints",
        "DROP TABLE archives",
        drop_column,
        "UPDATE events SET id = id + 100 WHERE id > 5",
        "DELETE FROM schema_version",
        "INSERT INTO schema_version (version, description, applied_at) "
        "VALUES (9, 'as version 9 left it', CURRENT_TIMESTAMP)",
    )

    log = await DeliveryLog.open(store_url)
    try:
        assert log.schema_version == LATEST == 10
        verdict = await verify_store(log.engines)
        assert verdict.intact, [p.line() for p in verdict.problems]
        assert (verdict.walk.start_seq, verdict.walk.last_seq) == (1, before[0])
        view = await log.get_document(filled.document)
        assert view is not None
        assert [e.id for e in view.events] == sorted(e.id for e in view.events)
        # and the chain goes on from there
        await log.set_business_status(view.deliveries[0].id, "06", view.document.received_at, "x")
        assert (await verify_store(log.engines)).intact
    finally:
        await log.aclose()
