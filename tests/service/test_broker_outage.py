"""The broker drops mid-burst: nothing acknowledged is lost, nothing is delivered under two ids.

The outage is real and confined to this test: the gateway connects as a throw-away broker user,
whose permissions are cleared (so reconnects are refused) and whose open connections are closed;
later the permissions come back and the gateway's robust connections reconnect by themselves.
Nobody else's connections on the shared default vhost are touched.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from service_kit import DEPARTMENT, DISTRICT, Gateway, PushReceiver, StartGateway, new_document
from service_sites import BrokerSite, rabbitmqctl

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)

DURING = 12  # submitted once the broker is certainly gone
CONCURRENCY = 6
MAX_DOCUMENTS = 600  # a bound on the stream, should the outage never come
FAST_OUTBOX = {"LGSP_BROKER__OUTBOX_INTERVAL_S": "0.5", "LGSP_BROKER__OUTBOX_AGE_S": "1"}


@dataclass
class Burst:
    """A stream of concurrent submissions, each signed as it is sent, until told to stop."""

    gw: Gateway
    bodies: list[bytes] = field(default_factory=list)
    answers: dict[int, tuple[int, dict[str, Any], str | None]] = field(default_factory=dict)
    after_outage: set[int] = field(default_factory=set)  # sent once access was revoked
    after_drop: set[int] = field(default_factory=set)  # sent once the connections were gone
    outage: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: asyncio.Event = field(default_factory=asyncio.Event)

    def with_status(self, *statuses: int) -> list[int]:
        return sorted(i for i, (s, _, _) in self.answers.items() if s in statuses)

    def done(self) -> bool:
        return len(self.after_drop) >= DURING or len(self.bodies) >= MAX_DOCUMENTS

    async def sender(self) -> None:
        gw = self.gw
        while not self.done():
            i = len(self.bodies)
            self.bodies.append(
                gw.sign(new_document(DEPARTMENT, [DISTRICT], number=f"{i}/OUT"), DEPARTMENT)
            )
            if self.outage.is_set():
                self.after_outage.add(i)
            if self.dropped.is_set():
                self.after_drop.add(i)
            async with gw.session.post(
                f"{gw.base_url}/api/v1/documents",
                data=self.bodies[i],
                headers=gw.headers(DEPARTMENT),
            ) as r:
                self.answers[i] = (
                    r.status,
                    await r.json(content_type=None),
                    r.headers.get("Retry-After"),
                )

    async def run(self) -> None:
        await asyncio.gather(*(self.sender() for _ in range(CONCURRENCY)))


@pytest.fixture
def test_broker(test_broker: BrokerSite) -> Iterator[BrokerSite]:
    """The run's broker site reached as a user of this test's own (deleted afterwards)."""
    with test_broker.own_user() as site:
        yield site


@contextmanager
def permissions_restored(broker: BrokerSite) -> Iterator[None]:
    """Whatever happens in the block, the test's user gets its permissions on the vhost back."""
    try:
        yield
    finally:
        rabbitmqctl("set_permissions", "-p", broker.vhost, broker.user, ".*", ".*", ".*")


async def take_broker_away(broker: BrokerSite, burst: Burst) -> None:
    """Once the burst is going, revoke the user's access (publishes are refused at once),
    then close its connections (and the reconnects are refused too)."""
    await wait_until(lambda: len(burst.answers) >= 8, 30, "the burst under way")
    await asyncio.to_thread(rabbitmqctl, "clear_permissions", "-p", broker.vhost, broker.user)
    burst.outage.set()
    await asyncio.to_thread(
        rabbitmqctl, "close_all_user_connections", broker.user, "test: broker outage"
    )
    burst.dropped.set()


async def wait_until(condition: Any, timeout_s: float, what: str) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout_s}s: {what}")


async def test_broker_dropping_mid_burst_loses_nothing(
    start_gateway: StartGateway, push_receiver: PushReceiver, test_broker: BrokerSite
) -> None:
    gw = await start_gateway(push={DISTRICT: push_receiver.url}, env=FAST_OUTBOX)
    burst = Burst(gw)

    with permissions_restored(test_broker):
        await asyncio.gather(burst.run(), take_broker_away(test_broker, burst))
        async with gw.session.get(f"{gw.base_url}/readyz") as r:
            assert r.status == 503, "the broker should be gone"

    bodies = burst.bodies
    refused, accepted = burst.with_status(503), burst.with_status(202)
    assert sorted(accepted + refused) == list(range(len(bodies))), burst.answers
    assert burst.after_drop <= set(refused), "the broker was gone, yet the gateway said 202"
    assert accepted, "the outage came before the burst"
    for i in refused:
        _, problem, retry_after = burst.answers[i]
        assert (problem["code"], problem["retryable"]) == ("unavailable.broker", True)
        assert retry_after is not None
        assert int(retry_after) > 0
    retried = refused[::2]  # the client retries half; the outbox relay must publish the rest
    for i in retried:
        status, answer = await gw.submit(bodies[i], DEPARTMENT)
        assert (status, answer["duplicate"]) == (200, True), answer  # the record was kept
        burst.answers[i] = (status, answer, None)

    await wait_until(
        lambda: set(push_receiver.delivered) == set(bodies), 60, "every package delivered"
    )

    keys_by_body: defaultdict[bytes, set[str]] = defaultdict(set)
    documents: dict[bytes, str] = {}
    for headers, body in push_receiver.received:
        keys_by_body[body].add(headers["Idempotency-Key"])
        documents[body] = headers["X-LGSP-Document-Id"]
    assert all(len(keys) == 1 for keys in keys_by_body.values()), "one delivery id per document"
    for i, (status, answer, _) in burst.answers.items():
        if status in (200, 202):
            [delivery] = answer["recipients"]
            assert keys_by_body[bodies[i]] == {delivery["delivery_id"]}
    for i, body in enumerate(bodies):
        view = await gw.wait_for(
            documents[body], DEPARTMENT, lambda v: v["recipients"][0]["state"] == "delivered"
        )
        kinds = [e["kind"] for e in view["recipients"][0]["trace"]]
        if i in burst.after_drop:  # intake never reached the broker: the relay published it
            assert "republished" in kinds, kinds
    repeats = len(push_receiver.received) - len(keys_by_body)
    print(
        f"sent {len(bodies)}: accepted {len(accepted)}, refused {len(refused)} "
        f"({len(burst.after_outage)} sent after access was revoked, {len(burst.after_drop)} "
        f"after the connections were closed; {len(retried)} retried by the client); "
        f"repeated pushes (same key): {repeats}"
    )
