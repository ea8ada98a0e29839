"""The chaos soak's pulling recipients: the mailbox participants and the national agencies.

* ``MailboxReader``: each mailbox participant's system lists ``/api/v1/inbox``, fetches every
  item, then acknowledges it (through either gateway); an item seen again (its acknowledgement
  was lost) is a duplicate arrival, deduplicated by its id.
* ``NationalReader``: the national agencies' system (``vpcp`` on the simulator) lists its received
  packages, fetches each and acknowledges it ``done``; the platform gives every send a docId of
  its own, so the same bytes listed twice are a duplicate arrival, and the receiving side
  deduplicates by (sender, DocumentId) as the gateway's intake does (here: by the bytes).

Both note each package's SHA-256 and first arrival (``time.time()``) and survive any failure of
a round (the gateways, the broker, the store or the simulator being down): the next round tries
again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import tomllib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from adapters.national.client import NationalClient
from adapters.national.protocol import AckStatus

ROUND_INTERVAL_S = 1.0
FETCH_CONCURRENCY = 8
TIMEOUT = aiohttp.ClientTimeout(total=30)


class MailboxReader:
    def __init__(
        self, session: aiohttp.ClientSession, base_urls: Sequence[str], api_keys: dict[str, str]
    ) -> None:
        self._session = session
        self._urls = list(base_urls)
        self._keys = api_keys  # organ_id -> API key, of the mailbox participants
        self.first: dict[str, tuple[str, str, float]] = {}  # delivery id -> (organ, sha, t)
        self.arrivals: Counter[str] = Counter()
        self.failed_rounds = 0
        self._turn = 0

    def _url(self) -> str:
        self._turn += 1
        return self._urls[self._turn % len(self._urls)]

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for organ_id in self._keys:
                try:
                    await self.read(organ_id)
                except (TimeoutError, aiohttp.ClientError, ValueError, KeyError):
                    self.failed_rounds += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), ROUND_INTERVAL_S)

    async def read(self, organ_id: str) -> int:
        """One round for one participant: what was listed."""
        headers = {"Authorization": f"Bearer {self._keys[organ_id]}"}
        async with self._session.get(
            f"{self._url()}/api/v1/inbox?limit=500", headers=headers, timeout=TIMEOUT
        ) as r:
            r.raise_for_status()
            items = (await r.json())["items"]
        gate = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(item_id: str) -> None:
            async with gate:
                async with self._session.get(
                    f"{self._url()}/api/v1/inbox/{item_id}", headers=headers, timeout=TIMEOUT
                ) as r:
                    r.raise_for_status()
                    body = await r.read()
                self.arrivals[item_id] += 1
                sha = hashlib.sha256(body).hexdigest()
                self.first.setdefault(item_id, (organ_id, sha, time.time()))
                async with self._session.post(
                    f"{self._url()}/api/v1/inbox/{item_id}/ack", headers=headers, timeout=TIMEOUT
                ) as r:
                    r.raise_for_status()

        results = await asyncio.gather(
            *(one(str(item["id"])) for item in items), return_exceptions=True
        )
        if any(isinstance(x, BaseException) for x in results):
            self.failed_rounds += 1
        return len(items)


class NationalReader:
    def __init__(self, session: aiohttp.ClientSession, endpoint: str, sim_config: Path) -> None:
        system = next(
            s
            for s in tomllib.loads(sim_config.read_text(encoding="utf-8"))["system"]
            if s["system_id"] == "vpcp"
        )
        self._client = NationalClient(
            endpoint, system["system_id"], system["secret"], session=session, timeout_s=30
        )
        self.first: dict[str, float] = {}  # sha -> first arrival
        self.arrivals: Counter[str] = Counter()  # sha -> times listed and fetched
        self.failed_rounds = 0
        self._done: set[str] = set()  # the platform's docIds already counted

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.read()
            except Exception:
                self.failed_rounds += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), ROUND_INTERVAL_S)

    async def read(self) -> int:
        items = await self._client.get_received_edoc_list()
        for item in items:
            if item.doc_id not in self._done:
                body = await self._client.get_edoc(item.doc_id)
                sha = hashlib.sha256(body).hexdigest()
                self.arrivals[sha] += 1
                self.first.setdefault(sha, time.time())
                self._done.add(item.doc_id)
            await self._client.update_status(item.doc_id, AckStatus.DONE)
        return len(items)
