"""SIGKILL of ``lgsp run`` mid-burst, between group commits and their publishes: the outbox repairs.

The gateway runs as a real process on the test vhost and a SQLite log. It is killed while a burst
is in flight, so some batches are committed and not yet confirmed (or confirmed with their
``published`` marks not yet written). The log is read at that moment: those deliveries are still
``accepted``. A second process (gateway and workers, with a fast outbox relay) must publish them,
and every committed document reaches its recipient under its one delivery id.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import signal
from collections import defaultdict

import aiohttp
from process_kit import Answer, RunningGateway, post_document
from service_kit import (
    DEPARTMENT,
    DISTRICT,
    PushReceiver,
    new_document,
)
from sqlalchemy import select

from gateway.demo import pki
from gateway.edxml.xml_codec import serialize_package
from gateway.signatures.xmldsig import sign_xml
from gateway.store import DeliveryLog, DeliveryState
from gateway.store.engine import transaction
from gateway.store.tables import deliveries, documents

BURST = 160
CONCURRENCY = 32
KILL_AFTER = 50  # answers received before the SIGKILL
FAST_OUTBOX = {"LGSP_BROKER__OUTBOX_INTERVAL_S": "0.5", "LGSP_BROKER__OUTBOX_AGE_S": "1"}


async def _log_state(store_url: str) -> dict[str, tuple[str, str, str]]:
    """Each committed delivery: (its document's package sha256, its id, its state)."""
    log = await DeliveryLog.open(store_url)
    try:
        async with transaction(log.engines.reader) as conn:
            rows = (
                await conn.execute(
                    select(documents.c.package_sha256, deliveries.c.id, deliveries.c.state).join(
                        documents, documents.c.id == deliveries.c.document
                    )
                )
            ).all()
    finally:
        await log.aclose()
    return {row.id: (row.package_sha256, row.id, row.state) for row in rows}


async def test_a_crash_between_commit_and_publish_is_repaired_by_the_outbox(
    lgsp_run: RunningGateway, push_receiver: PushReceiver
) -> None:
    gw = lgsp_run
    ident = pki.load_identity(gw.setup.pki_dir, DEPARTMENT)
    tag = secrets.token_hex(3)
    bodies = [
        sign_xml(
            serialize_package(new_document(DEPARTMENT, [DISTRICT], number=f"{i}/{tag}")),
            ident.key,
            ident.chain,
        )
        for i in range(BURST)
    ]
    headers = {
        "Authorization": f"Bearer {gw.setup.api_keys[DEPARTMENT]}",
        "Content-Type": "application/xml",
    }
    answers: dict[int, Answer] = {}
    timeout = aiohttp.ClientTimeout(total=30)

    async with aiohttp.ClientSession(timeout=timeout) as session:
        await gw.start(session, "gateway", {})  # no worker: what was published stays queued
        assert gw.proc is not None
        proc = gw.proc
        queue = list(range(BURST))

        async def client() -> None:
            while queue and proc.returncode is None:
                i = queue.pop(0)
                answers[i] = await post_document(session, gw.base_url, bodies[i], headers)
                if len(answers) == KILL_AFTER:
                    proc.send_signal(signal.SIGKILL)

        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        assert await gw.stop(signal.SIGKILL) == -signal.SIGKILL

        at_kill = await _log_state(gw.settings.store.url)
        unconfirmed = [d for d in at_kill.values() if d[2] == DeliveryState.ACCEPTED.value]
        assert unconfirmed, "the kill came when no batch was between commit and publish"
        accepted = {i: a for i, a in answers.items() if not isinstance(a, str) and a[0] == 202}
        assert accepted, "the burst never got going"
        assert all(isinstance(a, str) or a[0] == 202 for a in answers.values()), answers

        await gw.start(session, "all", FAST_OUTBOX)  # the same store and queues, a new process
        sha_of = {hashlib.sha256(b).hexdigest(): b for b in bodies}
        committed = {sha for sha, _, _ in at_kill.values()}

        async def all_delivered() -> bool:
            return {sha_of[sha] for sha in committed} <= {b for _, b in push_receiver.received}

        for _ in range(600):
            if await all_delivered():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("not every committed document was delivered after the restart")
        assert await gw.stop(signal.SIGTERM) == 0, gw.tail()

    after = await _log_state(gw.settings.store.url)
    delivered = dict.fromkeys(at_kill, DeliveryState.DELIVERED.value)
    assert {d: s for d, (_, _, s) in after.items()} == delivered
    keys: defaultdict[bytes, set[str]] = defaultdict(set)
    for received_headers, body in push_receiver.received:
        keys[body].add(received_headers["Idempotency-Key"])
    for delivery_id, (sha, _, _) in at_kill.items():
        assert keys[sha_of[sha]] == {delivery_id}, "delivered under its one delivery id"
    for i, (_, answer, _) in accepted.items():
        assert keys[bodies[i]] == {answer["recipients"][0]["delivery_id"]}
    print(
        f"killed after {len(answers)} answers ({len(accepted)} accepted): {len(at_kill)} "
        f"deliveries committed, {len(unconfirmed)} still accepted at the kill; all delivered "
        f"after the restart, {len(push_receiver.received)} pushes for {len(at_kill)}"
    )
