"""SIGTERM to ``lgsp run`` in the middle of a burst: clean answers, exit 0, and nothing lost.

The gateway runs as a real process (``lgsp run --role all``) under the run's broker prefix and a
SQLite log; the recipient is a push endpoint in this test process, so it sees every delivery of
both runs.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import defaultdict
from collections.abc import Callable

import aiohttp
from process_kit import Answer, RunningGateway, post_document
from service_kit import (
    DEPARTMENT,
    DISTRICT,
    PushReceiver,
    new_document,
)

from gateway.demo import pki
from gateway.edxml.xml_codec import serialize_package
from gateway.service.runner import Service
from gateway.signatures.xmldsig import sign_xml
from gateway.store import DeliveryLog, DeliveryState

BURST = 200
SIGTERM_AFTER = 60  # answers received before the signal
LATE_MAX = 2000  # submissions after the signal, at most (until the process is gone, or
CLOSED_ENOUGH = 10  # this many found the listener closed)
REQUEST_TIMEOUT_S = 30.0  # a request without an answer by then hangs: a failure
# ``serve`` drains with Service's defaults: 503s for drain_grace_s, then up to
# shutdown_timeout_s for in-flight requests and deliveries. A clean exit stays within both.
_defaults = Service.__init__.__kwdefaults__ or {}
DRAIN_S = sum(float(_defaults[k]) for k in ("drain_grace_s", "settle_s", "shutdown_timeout_s"))


def check_refusal(answer: Answer, where: str) -> None:
    """A refusal during shutdown: 503 with Retry-After, or the listener is gone already."""
    if isinstance(answer, str):
        assert answer in ("ClientConnectorError", "ServerDisconnectedError", "ClientOSError"), (
            where,
            answer,
        )
        return
    status, body, retry_after = answer
    assert status == 503, (where, status, body)  # never a 500
    assert body["code"] == "unavailable.shutting_down", (where, body)
    assert retry_after is not None, where
    assert int(retry_after) > 0


async def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout_s}s: {what}")


async def test_sigterm_mid_burst_drains_exits_0_and_loses_nothing(
    lgsp_run: RunningGateway, push_receiver: PushReceiver
) -> None:
    gw = lgsp_run
    ident = pki.load_identity(gw.setup.pki_dir, DEPARTMENT)

    def signed(i: int) -> bytes:
        package = new_document(DEPARTMENT, [DISTRICT], number=f"{i}/SD")
        return sign_xml(serialize_package(package), ident.key, ident.chain)

    bodies = [signed(i) for i in range(BURST)]
    headers = {
        "Authorization": f"Bearer {gw.setup.api_keys[DEPARTMENT]}",
        "Content-Type": "application/xml",
    }
    answers: dict[int, Answer] = {}
    signalled: list[float] = []
    before_signal: set[int] = set()
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)

    async with aiohttp.ClientSession(timeout=timeout) as session:
        await gw.start(session)
        assert gw.proc is not None
        proc = gw.proc

        async def submit(i: int) -> None:
            answers[i] = await post_document(session, gw.base_url, bodies[i], headers)
            if len(answers) == SIGTERM_AFTER:
                before_signal.update(answers)
                proc.send_signal(signal.SIGTERM)
                signalled.append(time.monotonic())

        async def keep_submitting() -> None:  # new connections, one after the other
            await wait_until(lambda: bool(signalled), REQUEST_TIMEOUT_S, "SIGTERM sent")
            connector = aiohttp.TCPConnector(force_close=True)
            closed = 0
            async with aiohttp.ClientSession(timeout=timeout, connector=connector) as late:
                for i in range(BURST, BURST + LATE_MAX):
                    if proc.returncode is not None or closed >= CLOSED_ENOUGH:
                        return
                    bodies.append(signed(i))
                    answers[i] = await post_document(late, gw.base_url, bodies[i], headers)
                    closed += isinstance(answers[i], str)

        await asyncio.gather(*(submit(i) for i in range(BURST)), keep_submitting())
        code = await gw.wait_exit(DRAIN_S)
        exit_s = time.monotonic() - signalled[0]
        assert code == 0, gw.tail()
        first_run = gw.output.read_text(errors="replace")

        accepted = {i: a for i, a in answers.items() if not isinstance(a, str) and a[0] == 202}
        refused = sorted(set(answers) - accepted.keys())
        for i in refused:
            check_refusal(answers[i], f"submission {i}")
        assert before_signal <= accepted.keys(), "before the signal, every answer was 202"
        draining = [i for i in refused if not isinstance(answers[i], str)]
        first_accepted = len(accepted)
        assert draining, "no 503 while draining: the signal came too late to test anything"

        await gw.start(session)  # the same configuration, store and queues
        for i in (i for i in refused if i < BURST):  # the burst's clients retry
            retried = await post_document(session, gw.base_url, bodies[i], headers)
            assert not isinstance(retried, str), retried
            assert retried[0] in (200, 202), retried
            accepted[i] = retried
        await wait_until(
            lambda: {body for _, body in push_receiver.received} >= {bodies[i] for i in accepted},
            60,
            "every accepted package pushed",
        )
        assert await gw.stop(signal.SIGTERM, DRAIN_S) == 0, gw.tail()

    keys_by_body: defaultdict[bytes, set[str]] = defaultdict(set)
    for received_headers, body in push_receiver.received:
        keys_by_body[body].add(received_headers["Idempotency-Key"])
    for i, answer in accepted.items():
        assert not isinstance(answer, str)
        [recipient] = answer[1]["recipients"]
        assert keys_by_body[bodies[i]] == {recipient["delivery_id"]}, "delivered under one id"
    distinct = {key for keys in keys_by_body.values() for key in keys}
    assert len(distinct) == len(accepted) == len(keys_by_body)
    repeats = len(push_receiver.received) - len(distinct)
    await check_log(
        gw.settings.store.url, [a[1]["id"] for a in accepted.values() if not isinstance(a, str)]
    )
    assert "gateway_draining" in first_run
    assert "Traceback" not in gw.output.read_text(errors="replace"), gw.tail(80)
    late = [i for i in answers if i >= BURST]
    print(
        f"burst {BURST} + {len(late)} late: {first_accepted} accepted before exit; "
        f"{len(draining)} got 503, {len(refused) - len(draining)} a closed listener; "
        f"the burst's retried; exit 0 in {exit_s:.1f}s (drain budget {DRAIN_S:.0f}s); repeated "
        f"pushes with the same Idempotency-Key: {repeats}"
    )


async def check_log(store_url: str, document_ids: list[str]) -> None:
    """Every accepted document is ``delivered`` in the delivery log, for its one recipient."""
    log = await DeliveryLog.open(store_url)
    try:
        for document_id in document_ids:
            view = await log.get_document(document_id)
            assert view is not None, document_id
            assert [(d.recipient, d.state) for d in view.deliveries] == [
                (DISTRICT, DeliveryState.DELIVERED)
            ], view.deliveries
    finally:
        await log.aclose()
