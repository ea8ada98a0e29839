"""Concurrent submissions over HTTP share group commits and publishes; each hears its own answer.

A burst of new documents, resubmissions (same bytes), conflicts (other bytes under one
DocumentId), refusals (unknown recipient, bad signature, speaking for another) and status
packages lands exactly the right rows on SQLite and PostgreSQL. A broker nack inside a batch (a
real one: the work queue refuses new messages by policy) fails only the request it belongs to.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections import defaultdict
from dataclasses import replace
from typing import Any

import aio_pika
from service_kit import (
    COMMUNE,
    DEPARTMENT,
    DISTRICT,
    Gateway,
    PushReceiver,
    StartGateway,
    new_document,
    status_for,
)
from service_sites import BrokerSite, rabbitmqctl

from gateway.service.runner import Role
from gateway.store import DeliveryLog, DeliveryState, DocumentFilter, EventKind
from gateway.web.keys import DISPATCHER

FAST_OUTBOX = {"LGSP_BROKER__OUTBOX_INTERVAL_S": "0.5", "LGSP_BROKER__OUTBOX_AGE_S": "1"}


async def _wait(condition: Any, timeout_s: float, what: str) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout_s}s: {what}")


async def test_a_burst_answers_each_request_and_lands_exactly_the_right_rows(
    start_gateway: StartGateway, push_receiver: PushReceiver
) -> None:
    gw = await start_gateway(push={DISTRICT: push_receiver.url})
    originals = [new_document(DEPARTMENT, [DISTRICT], number=f"{i}/ORIG") for i in range(3)]
    original_bodies = [gw.sign(original, DEPARTMENT) for original in originals]
    for body in original_bodies:
        status, answer = await gw.submit(body, DEPARTMENT)
        assert status == 202, answer
    tag = secrets.token_hex(3)

    burst: list[tuple[str, bytes, str]] = []  # (what is expected, body, who submits)
    news = [
        gw.sign(new_document(DEPARTMENT, [DISTRICT], number=f"{i}/{tag}"), DEPARTMENT)
        for i in range(16)
    ]
    burst += [("new", body, DEPARTMENT) for body in news]
    burst += [("twin", body, DEPARTMENT) for body in news[:4]]  # the same bytes again
    for i in range(2):  # two versions of one DocumentId: one is accepted, the other conflicts
        document = new_document(DEPARTMENT, [DISTRICT], number=f"C{i}/{tag}")
        changed = replace(document, header=replace(document.header, subject="V/v khác"))
        burst += [
            ("pair", gw.sign(document, DEPARTMENT), DEPARTMENT),
            ("pair", gw.sign(changed, DEPARTMENT), DEPARTMENT),
        ]
    burst.append(
        (
            "422",
            gw.sign(new_document(DEPARTMENT, [DISTRICT, "000.00.99.H56"]), DEPARTMENT),
            DEPARTMENT,
        )
    )
    tampered = gw.sign(new_document(DEPARTMENT, [DISTRICT]), DEPARTMENT).replace(
        "thử nghiệm".encode(), "THỬ NGHIỆM".encode(), 1
    )
    burst.append(("422", tampered, DEPARTMENT))
    burst.append(("403", gw.sign(new_document(DEPARTMENT, [DISTRICT]), DEPARTMENT), COMMUNE))
    burst += [
        ("status", gw.sign(status_for(original, DISTRICT, "03"), DISTRICT), DISTRICT)
        for original in originals
    ]

    answers = await asyncio.gather(*(gw.submit(body, who) for _, body, who in burst))

    by_body: defaultdict[bytes, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for (expected, body, _), (status, answer) in zip(burst, answers, strict=True):
        by_body[body].append((status, answer))
        if expected in ("422", "403"):
            assert status == int(expected), answer
            assert answer["code"] in (
                "acl.recipients_refused",
                "signature.digest_mismatch",
                "acl.cannot_speak_for",
            ), answer
        elif expected in ("new", "status"):
            assert status in (200, 202), answer
    for body in news:
        statuses = sorted(s for s, _ in by_body[body])
        assert statuses == ([200, 202] if body in news[:4] else [202]), by_body[body]
        assert len({a["id"] for _, a in by_body[body]}) == 1
        assert len({a["recipients"][0]["delivery_id"] for _, a in by_body[body]}) == 1
    pairs = [
        s for (expected, _, _), (s, _) in zip(burst, answers, strict=True) if expected == "pair"
    ]
    assert sorted(pairs) == [202, 202, 409, 409]
    conflicts = [
        a
        for (expected, _, _), (s, a) in zip(burst, answers, strict=True)
        if expected == "pair" and s == 409
    ]
    assert {a["code"] for a in conflicts} == {"conflict.duplicate_document"}

    accepted = {a["id"] for s, a in answers if s == 202}
    log = await DeliveryLog.open(gw.settings.store.url)
    try:
        assert await log.count_documents(DocumentFilter()) == 3 + len(accepted)
        for original, (_, answer) in zip(originals, answers[-3:], strict=True):
            view = await log.get_document(answer["id"])
            assert view is not None
            assert view.document.in_reply_to is not None
            answered = await log.get_document(view.document.in_reply_to)
            assert answered is not None
            assert answered.document.document_id == original.document_id
            assert [
                d.business_status.value if d.business_status else None for d in answered.deliveries
            ] == ["03"]
            assert EventKind.BUSINESS_STATUS in [e.kind for e in answered.events]
    finally:
        await log.aclose()

    wanted = {
        body: a["recipients"][0]["delivery_id"]
        for (expected, body, _), (s, a) in zip(burst, answers, strict=True)
        if s == 202 and expected != "status"
    }

    async def all_pushed() -> bool:
        return wanted.keys() <= {b for _, b in push_receiver.received}

    await _wait(all_pushed, 60, "every accepted document pushed")
    keys: defaultdict[bytes, set[str]] = defaultdict(set)
    for headers, body in push_receiver.received:
        keys[body].add(headers["Idempotency-Key"])
    assert {body: keys[body] for body in wanted} == {b: {d} for b, d in wanted.items()}
    assert set(keys) - set(wanted) <= set(original_bodies), "nothing refused was pushed"


async def _policy(broker: BrokerSite, gw: Gateway, *definition: str) -> None:
    """A policy on this gateway's soap work queue alone (``definition``), or none."""
    prefix = gw.settings.broker.prefix
    name, queue = f"{prefix}-refuse", f"^{re.escape(prefix)}\\.q\\.soap$"
    if definition:
        await asyncio.to_thread(
            rabbitmqctl,
            "set_policy",
            "-p",
            broker.vhost,
            "--apply-to",
            "queues",
            "--priority",
            "10",
            name,
            queue,
            definition[0],
        )
        for _ in range(100):  # a policy reaches its queues a moment later
            listed = await asyncio.to_thread(
                rabbitmqctl,
                "list_queues",
                "-p",
                broker.vhost,
                "--formatter",
                "json",
                "name",
                "policy",
            )
            if {"name": f"{prefix}.q.soap", "policy": name} in json.loads(listed):
                await asyncio.sleep(0.5)
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the policy {name} never reached {prefix}.q.soap")
    await asyncio.to_thread(rabbitmqctl, "clear_policy", "-p", broker.vhost, name)


async def _refusing(gw: Gateway, queue: str) -> None:
    """Fill ``queue`` past its max-length policy: publish probes until the broker nacks one."""
    connection = await aio_pika.connect(gw.settings.broker.url)
    async with connection, connection.channel(publisher_confirms=True) as channel:
        for n in range(100):
            try:
                await channel.default_exchange.publish(
                    aio_pika.Message(f"probe {n}".encode()), queue, mandatory=True, timeout=5
                )
            except aio_pika.exceptions.DeliveryError:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"{queue} never refused a message")


async def test_a_broker_nack_inside_a_batch_fails_only_its_own_request(
    start_gateway: StartGateway, test_broker: BrokerSite
) -> None:
    """The soap work queue refuses new messages (max-length 0, reject-publish, and a probe in
    it: the broker nacks); no worker runs, so nothing drains it. Documents to the commune go
    there, their neighbours in the same batches to the district's push queue."""
    gw = await start_gateway(role=Role.GATEWAY, soap={COMMUNE: "nowhere"}, env=FAST_OUTBOX)
    dispatcher = gw.service.app[DISPATCHER]
    await _policy(test_broker, gw, '{"max-length": 0, "overflow": "reject-publish"}')
    try:
        await _refusing(gw, f"{gw.settings.broker.prefix}.q.soap")
        tag = secrets.token_hex(3)
        to_commune = {i for i in range(12) if i % 4 == 1}
        bodies = [
            gw.sign(
                new_document(
                    DEPARTMENT, [COMMUNE if i in to_commune else DISTRICT], number=f"{i}/{tag}"
                ),
                DEPARTMENT,
            )
            for i in range(12)
        ]
        batches = dispatcher.batches
        answers = await asyncio.gather(*(gw.submit(body, DEPARTMENT) for body in bodies))
        assert dispatcher.batches - batches < len(bodies), "no publish was shared"
        for i, (status, answer) in enumerate(answers):
            if i in to_commune:  # nacked: 503, retryable, the record kept for the outbox
                assert status == 503, answer
                assert (answer["code"], answer["retryable"]) == ("unavailable.broker", True)
                assert "not confirmed" in answer["detail"], answer
            else:
                assert status == 202, answer
    finally:  # (removing the policy does not lift a quorum queue's limit on RabbitMQ 3.10)
        await _policy(test_broker, gw, '{"max-length": 1000000, "overflow": "reject-publish"}')

    log = await DeliveryLog.open(gw.settings.store.url)
    try:

        async def settled() -> bool:
            """The neighbours are marked queued; the refused ones were recorded and the outbox
            relay publishes them once the queue takes them (the client's retry is a 200)."""
            done = 0
            for i, body in enumerate(bodies):
                status, answer = await gw.submit(body, DEPARTMENT)
                assert (status, answer["duplicate"]) == (200, True), answer
                view = await log.get_document(answer["id"])
                assert view is not None
                kinds = [e.kind for e in view.events]
                if i in to_commune:
                    assert EventKind.PUBLISHED not in kinds
                    done += EventKind.REPUBLISHED in kinds
                else:
                    assert EventKind.REPUBLISHED not in kinds
                    done += [d.state for d in view.deliveries] == [DeliveryState.QUEUED]
            return done == len(bodies)

        await _wait(settled, 90, "neighbours queued, the nacked republished by the outbox")
    finally:
        await log.aclose()
        await _policy(test_broker, gw)
