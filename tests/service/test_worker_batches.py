"""The worker by batches, on the real broker and store: dispositions, and a crash before the commit.

The gateway runs in this process (role gateway); the worker runs either in this process
(``WorkerGroup``) or as a real ``lgsp run --role worker`` process that the test SIGKILLs.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from process_kit import NewProcess
from service_kit import (
    COMMUNE,
    DEPARTMENT,
    DISTRICT,
    PROVINCE,
    Gateway,
    StartGateway,
    local_site,
    new_document,
    states,
)
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.broker import Broker
from gateway.service.runner import Role
from gateway.service.workers import WorkerGroup
from gateway.store import DeliveryLog, DeliveryState

DOCUMENTS = 4  # each to three recipients: one answers 200, one 503, one 410
LONG_RETRY_S = 600.0  # the retry copies wait here, where the test can count them


class ScriptedReceivers:
    """Three push endpoints that hold every request until ``expected`` have arrived, then answer
    200 (``/ok``), 503 with ``Retry-After`` (``/busy``) or 410 (``/gone``) all at once."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received: list[tuple[str, dict[str, str]]] = []
        self.all_in = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.received.append((request.path, dict(request.headers)))
        if len(self.received) >= self.expected:
            self.all_in.set()
        await self.all_in.wait()
        if request.path == "/busy":
            return web.Response(status=503, headers={"Retry-After": str(int(LONG_RETRY_S))})
        if request.path == "/gone":
            return web.Response(status=410, text="no such office")
        return web.Response(status=200)


@asynccontextmanager
async def serving(receivers: ScriptedReceivers) -> AsyncIterator[None]:
    app = web.Application()
    app.router.add_post("/{name}", receivers.handle)
    async with local_site(app) as base_url:
        receivers.url = base_url
        yield


async def submit_all(gw: Gateway, count: int, recipients: list[str]) -> list[dict[str, Any]]:
    answers = []
    for n in range(count):
        signed = gw.sign(new_document(DEPARTMENT, recipients, number=f"{n}/LO"), DEPARTMENT)
        status, answer = await gw.submit(signed, DEPARTMENT)
        assert status == 202, answer
        answers.append(answer)
    return answers


async def test_a_batch_of_successes_and_failures_ends_each_in_its_state_and_queue(
    start_gateway: StartGateway,
) -> None:
    receivers = ScriptedReceivers(expected=3 * DOCUMENTS)
    async with serving(receivers):
        gw = await start_gateway(
            role=Role.GATEWAY,
            push={
                DISTRICT: f"{receivers.url}/ok",
                COMMUNE: f"{receivers.url}/busy",
                PROVINCE: f"{receivers.url}/gone",
            },
            env={"LGSP_BROKER__RETRY_DELAYS_S": f"0.2,{LONG_RETRY_S}"},
        )
        answers = await submit_all(gw, DOCUMENTS, [DISTRICT, COMMUNE, PROVINCE])
        group = WorkerGroup(gw.settings, drain_timeout_s=5)  # all messages wait: one batch
        await group.start()
        try:
            for answer in answers:
                await gw.wait_for(
                    answer["id"],
                    DEPARTMENT,
                    lambda v: (
                        states(v)
                        == {DISTRICT: "delivered", COMMUNE: "retrying", PROVINCE: "dead_lettered"}
                    ),
                )
        finally:
            await group.stop()
        [push_worker] = [w for w in group.workers if w.method == "push"]
        commits = push_worker.commit_sizes

    assert len(receivers.received) == 3 * DOCUMENTS  # each delivery was sent once
    assert push_worker.outcomes == {
        "acked": DOCUMENTS,
        "retried": DOCUMENTS,
        "dead_lettered": DOCUMENTS,
    }
    assert sum(size * n for size, n in commits.items()) == 3 * DOCUMENTS
    assert sum(commits.values()) < 3 * DOCUMENTS, f"not batched: {commits}"
    conf = gw.settings.broker
    async with await Broker.connect(
        conf.url, prefix=conf.prefix, retry_delays_s=conf.retry_delays_s
    ) as broker:
        depths = await broker.queue_depths()
        topology = broker.topology
    assert depths[topology.work_queue("push")] == 0  # all acked
    assert depths[topology.retry_queue("push", LONG_RETRY_S)] == DOCUMENTS
    assert depths[topology.dead_queue("push")] == DOCUMENTS
    for answer in answers:
        status, view = await gw.get(f"/api/v1/documents/{answer['id']}", DEPARTMENT)
        assert status == 200
        by_recipient = {r["organ_id"]: r for r in view["recipients"]}
        assert [by_recipient[r]["attempts"] for r in (DISTRICT, COMMUNE, PROVINCE)] == [1, 1, 1]
        assert [by_recipient[r]["error_code"] for r in (DISTRICT, COMMUNE, PROVINCE)] == [
            None,
            "delivery.http_status",
            "delivery.refused",
        ]  # the sender sees codes only
        in_full = {r["organ_id"]: r for r in (await gw.admin_view(answer["id"]))["recipients"]}
        assert in_full[DISTRICT]["last_error"] is None
        assert "503" in in_full[COMMUNE]["last_error"]
        assert "410" in in_full[PROVINCE]["last_error"]
        assert "no such office" in in_full[PROVINCE]["last_error"]


# --- a worker process killed between the adapter call and the batch commit ---------------------


class HoldingReceiver:
    """A push endpoint that holds each request until ``release`` is set, then answers 200."""

    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        self.release = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.received.append(dict(request.headers))
        await self.release.wait()
        return web.Response(status=200)


@asynccontextmanager
async def holding_receiver() -> AsyncIterator[HoldingReceiver]:
    receiver = HoldingReceiver()
    app = web.Application()
    app.router.add_post("/inbox", receiver.handle)
    async with local_site(app) as base_url:
        receiver.url = f"{base_url}/inbox"
        try:
            yield receiver
        finally:
            receiver.release.set()  # before the site's cleanup waits for the held requests


@asynccontextmanager
async def writes_blocked(store_url: str, delivery_id: str) -> AsyncIterator[None]:
    """Hold the store so that the worker's commit waits: SQLite's write lock, or (PostgreSQL) a
    row lock on the delivery."""
    url = make_url(store_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(str(url.database), isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn, conn.begin():
            await conn.execute(
                text("SELECT id FROM deliveries WHERE id = :id FOR UPDATE"), {"id": delivery_id}
            )
            yield
    finally:
        await engine.dispose()


def events(output: Path) -> list[dict[str, Any]]:
    lines = output.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


async def wait_until(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout_s}s: {what}")


async def test_a_worker_killed_before_its_commit_redelivers_with_the_same_key_once_recorded(
    start_gateway: StartGateway, lgsp_processes: NewProcess
) -> None:
    async with holding_receiver() as receiver:
        gw = await start_gateway(role=Role.GATEWAY, push={DISTRICT: receiver.url})
        [answer] = await submit_all(gw, 1, [DISTRICT])
        delivery_id = answer["recipients"][0]["delivery_id"]
        await gw.wait_for(answer["id"], DEPARTMENT, lambda v: states(v) == {DISTRICT: "queued"})
        worker, json_log = lgsp_processes(gw.setup, "worker"), {"LGSP_LOG__JSON": "true"}
        output = worker.output

        await worker.start(gw.session, "worker", json_log)
        await wait_until(lambda: receiver.received, 60, "the push reaches the receiver")
        async with writes_blocked(gw.settings.store.url, delivery_id):
            receiver.release.set()  # the adapter call ends: 200 ...
            await wait_until(  # ... the worker saw it, and now waits to commit
                lambda: any(e["event"] == "delivered" for e in events(output)),
                30,
                "the worker's adapter call returned",
            )
            await asyncio.sleep(0.3)
            # SIGKILL: no commit, no ack, no drain (-SIGKILL: it was still running)
            assert await worker.stop(signal.SIGKILL) == -signal.SIGKILL, worker.tail()
        log = await DeliveryLog.open(gw.settings.store.url)
        try:
            before = await log.get_delivery(delivery_id)
            assert before is not None
            assert before.state is DeliveryState.QUEUED, "recorded although killed before commit"

            await worker.start(gw.session, "worker", json_log)  # the same queues and store
            view = await gw.wait_for(
                answer["id"], DEPARTMENT, lambda v: states(v) == {DISTRICT: "delivered"}, 60
            )
            assert await worker.stop(signal.SIGTERM, 30) == 0, worker.tail()
            after = await log.get_document(answer["id"])
        finally:
            await log.aclose()

    keys = [headers["Idempotency-Key"] for headers in receiver.received]
    assert keys == [delivery_id, delivery_id]  # sent again, under the same key
    attempts = [headers["X-LGSP-Attempt"] for headers in receiver.received]
    assert attempts == ["1", "1"]  # the redelivered message itself, not a retry
    [recipient] = view["recipients"]
    assert recipient["attempts"] == 1
    assert after is not None
    kinds = [e.kind.value for e in after.events if e.delivery == delivery_id]
    assert kinds.count("delivered") == 1
    assert "attempt" not in kinds
    settled = [e for e in events(output) if e["event"] == "delivery.settled"]
    # the redelivered message still carries the log's count (0, nothing was recorded): current
    assert [(e["delivery_id"], e["redelivered"], e["attempts_seen"]) for e in settled] == [
        (delivery_id, True, 0)
    ]
    assert "Traceback" not in output.read_text(errors="replace")
