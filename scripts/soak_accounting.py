"""The chaos soak's accounting: every document submitted, followed to its recipients.

Once the load and the faults are over, ``Ledger.wait_quiet`` reads every acknowledged document
from the admin API (``GET /api/v1/admin/documents/{id}``: each delivery's state and last error)
until every delivery is final (delivered, failed, dead-lettered) and every delivered one was
seen by its recipient, or until nothing changed for ``quiet_s``. ``Ledger.figures`` then counts:

* ``delivered``: the log says delivered *and* the recipient has the bytes (push: the receiver
  under that ``Idempotency-Key``; mailbox: the reader fetched that item; national: the national
  agencies' system fetched those bytes);
* ``dead_lettered``: failed or dead-lettered, each with the log's reason;
* ``lost``: acknowledged (202/200) but neither, with what is known of each;
* ``duplicate_arrivals``: the same delivery arriving again (push: the same key; mailbox: the
  same item; national: the same bytes listed again); ``duplicates_processed``: a recipient that
  deduplicates as documented processing the same package twice (the same bytes under two keys
  or items: e.g. a retried submission recorded twice).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from bench_measure import percentile
from soak_client import Submission
from soak_consumers import MailboxReader, NationalReader
from soak_mix import METHOD_OF, PUSH_ENDPOINTS

from gateway.core.methods import DeliveryMethod

FINAL = frozenset({"delivered", "failed", "dead_lettered"})
READ_CONCURRENCY = 16
ROUND_PAUSE_S = 3.0
LISTED = 100  # items listed in the JSON line per category (the report file has them all)


@dataclass
class Ledger:
    session: aiohttp.ClientSession
    base_urls: Sequence[str]
    admin_token: str
    receivers_url: str
    submissions: Sequence[Submission]
    mailbox: MailboxReader
    national: NationalReader
    views: dict[str, dict[str, Any]] = field(default_factory=dict)  # document id -> admin view
    pushed: dict[str, dict[str, Any]] = field(default_factory=dict)  # endpoint -> report

    async def _view(self, doc_id: str, turn: int) -> dict[str, Any] | None:
        url = f"{self.base_urls[turn % len(self.base_urls)]}/api/v1/admin/documents/{doc_id}"
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        try:
            async with self.session.get(url, headers=headers) as r:
                if r.status != 200:
                    return None
                data: dict[str, Any] = await r.json()
                return data
        except (TimeoutError, aiohttp.ClientError):
            return None

    async def _refresh(self, doc_ids: list[str]) -> None:
        gate = asyncio.Semaphore(READ_CONCURRENCY)

        async def one(i: int, doc_id: str) -> None:
            async with gate:
                view = await self._view(doc_id, i)
            if view is not None:
                self.views[doc_id] = view

        await asyncio.gather(*(one(i, d) for i, d in enumerate(doc_ids)))
        async with self.session.get(f"{self.receivers_url}/report") as r:
            self.pushed = await r.json()

    def _settled(self, sub: Submission) -> bool:
        """Every delivery of ``sub`` final, and each delivered one seen by its recipient."""
        view = self.views.get(sub.document or "")
        if view is None:
            return False
        return all(
            d["state"] in FINAL and (d["state"] != "delivered" or self._arrival(sub, d))
            for d in view["recipients"]
        )

    async def wait_quiet(self, quiet_s: float) -> float:
        """Until everything is settled or nothing changed for ``quiet_s``; seconds waited.

        A change is a document settled or another attempt at one of the unsettled ones."""
        started = last_change = time.monotonic()
        acked = [s for s in self.submissions if s.acknowledged and s.document]
        last: tuple[int, int] = (-1, -1)
        while True:
            todo = [s for s in acked if not self._settled(s)]
            await self._refresh([str(s.document) for s in todo])
            todo = [s for s in todo if not self._settled(s)]
            attempts = sum(
                d["attempts"]
                for s in todo
                for d in self.views.get(str(s.document), {}).get("recipients", [])
            )
            print(f"# accounting: {len(todo)} documents not settled yet", flush=True)
            if not todo:
                return time.monotonic() - started
            if (len(todo), attempts) != last:
                last, last_change = (len(todo), attempts), time.monotonic()
            elif time.monotonic() - last_change > quiet_s:
                return time.monotonic() - started
            await asyncio.sleep(ROUND_PAUSE_S)

    def _arrival(self, sub: Submission, delivery: dict[str, Any]) -> float | None:
        """When the recipient got this delivery's bytes (its own clock or the log's)."""
        organ = delivery["organ_id"]
        method = METHOD_OF.get(organ)
        if method is DeliveryMethod.PUSH:
            keys = self.pushed.get(PUSH_ENDPOINTS[organ], {}).get("keys", {})
            seen = keys.get(delivery["delivery_id"])
            ok = seen is not None and seen["sha256"] == sub.doc.sha256
            return float(seen["first_at"]) if ok and seen else None
        if method is DeliveryMethod.MAILBOX:
            got = self.mailbox.first.get(delivery["delivery_id"])
            ok = got is not None and got[1] == sub.doc.sha256
        else:
            ok = sub.doc.sha256 in self.national.first
        if not ok or not delivery["delivered_at"]:
            return None
        return datetime.fromisoformat(delivery["delivered_at"]).timestamp()

    def figures(self) -> dict[str, Any]:
        delivered, dead, lost = 0, [], []
        latency_ms: dict[str, list[float]] = {}
        for sub in self.submissions:
            if not sub.acknowledged:
                continue
            view = self.views.get(sub.document or "")
            deliveries = {d["organ_id"]: d for d in view["recipients"]} if view else {}
            for organ in sub.doc.recipients:
                d = deliveries.get(organ)
                where = {"document": sub.document, "recipient": organ, "kind": sub.doc.kind}
                if d is None:
                    lost.append({**where, "why": "no delivery in the log" if view else "no view"})
                elif d["state"] in ("failed", "dead_lettered"):
                    dead.append(
                        {**where, "delivery": d["delivery_id"], "state": d["state"],
                         "reason": d.get("last_error") or d.get("error_code"),
                         "attempts": d["attempts"]}
                    )  # fmt: skip
                elif (at := self._arrival(sub, d) if d["state"] == "delivered" else None) is None:
                    why = "the recipient never got it" if d["state"] == "delivered" else d["state"]
                    lost.append({**where, "delivery": d["delivery_id"], "why": why})
                else:
                    delivered += 1
                    method = str(METHOD_OF[organ].value)
                    latency_ms.setdefault(method, []).append((at - sub.due_at) * 1000)
        every = [ms for values in latency_ms.values() for ms in values]
        return {
            "delivered": delivered,
            "dead_lettered": len(dead),
            "dead_letters": dead[:LISTED],
            "dead_letter_reasons": dict(Counter(_short(x["reason"]) for x in dead)),
            "lost": len(lost),
            "lost_items": lost[:LISTED],
            **self._duplicates(),
            "e2e_p50_ms": _ms(percentile(every, 50)),
            "e2e_p99_ms": _ms(percentile(every, 99)),
            "e2e_max_ms": _ms(max(every, default=float("nan"))),
            "e2e_p99_ms_by_method": {m: _ms(percentile(v, 99)) for m, v in latency_ms.items()},
            "_all_dead_letters": dead,
            "_all_lost": lost,
        }

    def _duplicates(self) -> dict[str, Any]:
        arrivals: Counter[str] = Counter()
        processed: Counter[str] = Counter()
        refused_attempts = 0
        for endpoint, report in self.pushed.items():
            per_body: Counter[str] = Counter()
            for seen in report["keys"].values():
                arrivals["push"] += max(0, seen["arrivals"] - 1)
                refused_attempts += seen["refused"]
                if seen["sha256"]:
                    per_body[seen["sha256"]] += 1
            processed["push"] += sum(n - 1 for n in per_body.values())
            _ = endpoint
        arrivals["mailbox"] = sum(n - 1 for n in self.mailbox.arrivals.values())
        mail_bodies = Counter((organ, sha) for organ, sha, _t in self.mailbox.first.values())
        processed["mailbox"] = sum(n - 1 for n in mail_bodies.values())
        arrivals["national"] = sum(n - 1 for n in self.national.arrivals.values())
        processed["national"] = 0  # deduplicated by (sender, DocumentId): the same bytes
        return {
            "duplicates_processed": sum(processed.values()),
            "duplicates_processed_by_method": dict(processed),
            "duplicate_arrivals": sum(arrivals.values()),
            "duplicate_arrivals_by_method": dict(arrivals),
            "push_attempts_refused_by_receivers": refused_attempts,
        }


def _short(reason: object) -> str:
    text = str(reason)
    return text if len(text) <= 120 else text[:117] + "..."


def _ms(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 1)  # NaN: nothing delivered
