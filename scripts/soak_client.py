"""The chaos soak's agency system: submits at a steady rate and retries as integration.md asks.

A request that got no answer (connection refused or reset, a timeout) or one that says to try
again (503, 429, 408; a problem with ``"retryable": true``; 502 and 504 from a load balancer;
``Retry-After`` honoured, at most ``MAX_BACKOFF_S``) is sent again with the same bytes, to the
next gateway (as a load balancer would), with a growing back-off, until ``give_up_s`` after it
was due. 202 (accepted) or 200 (the same bytes were accepted before: the original record) ends
it; any other answer (a 500 included: the gateway did not say the fault was passing) is a
refusal, reported. Every retry is counted, by cause.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import aiohttp
from soak_mix import Doc

RETRYABLE = frozenset({408, 429, 502, 503, 504})
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
REQUEST_TIMEOUT_S = 30.0


@dataclass
class Submission:
    """What became of one document on the client's side."""

    doc: Doc
    due_at: float  # time.time() when it was due to be sent
    attempts: int = 0
    status: int | None = None  # the final answer (202, 200, or a refusal)
    answers: list[str] = field(default_factory=list)  # each attempt's answer or error
    document: str | None = None  # the gateway's id
    deliveries: dict[str, str] = field(default_factory=dict)  # recipient -> delivery id
    acknowledged_at: float | None = None
    refusal: str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.status in (200, 202)


class AgencyClient:
    """Submits documents to the gateways (``base_urls``), retrying as an agency should."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_urls: Sequence[str],
        api_keys: dict[str, str],
        *,
        give_up_s: float,
    ) -> None:
        self._session = session
        self._urls = list(base_urls)
        self._keys = api_keys
        self._give_up_s = give_up_s
        self.retries: Counter[str] = Counter()  # by cause
        self.submissions: list[Submission] = []

    async def submit(self, doc: Doc, due_at: float, lane: int) -> Submission:
        sub = Submission(doc, due_at)
        self.submissions.append(sub)
        headers = {
            "Authorization": f"Bearer {self._keys[doc.sender]}",
            "Content-Type": "application/xml",
        }
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        backoff_s = FIRST_BACKOFF_S
        while True:
            url = self._urls[(lane + sub.attempts) % len(self._urls)] + "/api/v1/documents"
            sub.attempts += 1
            retry_after: float | None = None
            try:
                async with self._session.post(
                    url, data=doc.body, headers=headers, timeout=timeout
                ) as r:
                    raw = await r.read()
                    status = r.status
                    retry_after = _seconds(r.headers.get("Retry-After"))
            except (TimeoutError, aiohttp.ClientError) as exc:
                cause = "timeout" if isinstance(exc, TimeoutError) else "connection"
                sub.answers.append(cause)
            else:
                sub.answers.append(str(status))
                if status in (200, 202):
                    return self._acknowledged(sub, status, raw)
                if status not in RETRYABLE and not _says_retryable(raw):
                    sub.status, sub.refusal = status, raw[:300].decode(errors="replace")
                    return sub
                cause = f"http_{status}"
            if time.time() - due_at > self._give_up_s:
                sub.refusal = f"gave up after {sub.attempts} attempts: {sub.answers[-1]}"
                return sub
            self.retries[cause] += 1
            wait_s = min(MAX_BACKOFF_S, retry_after if retry_after is not None else backoff_s)
            await asyncio.sleep(wait_s * random.uniform(0.8, 1.2))
            backoff_s = min(MAX_BACKOFF_S, backoff_s * 2)

    def _acknowledged(self, sub: Submission, status: int, raw: bytes) -> Submission:
        answer = json.loads(raw)
        sub.status, sub.acknowledged_at = status, time.time()
        sub.document = str(answer["id"])
        sub.deliveries = {r["organ_id"]: r["delivery_id"] for r in answer["recipients"]}
        return sub


def _says_retryable(raw: bytes) -> bool:
    """A problem document with ``"retryable": true``."""
    try:
        return json.loads(raw).get("retryable") is True
    except (ValueError, AttributeError):
        return False


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


async def run_load(
    client: AgencyClient, docs: Iterable[Doc], *, rate_per_s: float, started_at: float
) -> None:
    """Submit one document every ``1/rate_per_s`` s (open loop) from ``started_at`` (wall)."""
    tasks: list[asyncio.Task[Submission]] = []
    for i, doc in enumerate(docs):
        due_at = started_at + i / rate_per_s
        await asyncio.sleep(max(0.0, due_at - time.time()))
        tasks.append(asyncio.create_task(client.submit(doc, due_at, i)))
    await asyncio.gather(*tasks)
