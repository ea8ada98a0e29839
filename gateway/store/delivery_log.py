"""The delivery log: every accepted document, its deliveries and every hop, durably recorded."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.core.errors import ConflictError, InputError, NotFoundError
from gateway.core.methods import DeliveryMethod
from gateway.edxml.model import StatusCode
from gateway.store.attempts import AttemptLog
from gateway.store.chain import append_events
from gateway.store.engine import Engines, create_engines, transaction
from gateway.store.group_commit import DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_S, GroupCommitter
from gateway.store.migrations import migrate
from gateway.store.queries import (
    delivery_record,
    delivery_routes,
    event_values,
    lock_deliveries,
    utc_now,
)
from gateway.store.records import (
    DeliveryRecord,
    DeliveryState,
    EventKind,
    IntakeResult,
    IntakeWrite,
    NationalDoc,
    NewDocument,
    StatusAnswer,
)
from gateway.store.tables import deliveries

_EVENT_FOR_STATE = {
    DeliveryState.DELIVERED: EventKind.DELIVERED,
    DeliveryState.RETRYING: EventKind.RETRY_SCHEDULED,
    DeliveryState.FAILED: EventKind.FAILED,
    DeliveryState.DEAD_LETTERED: EventKind.DEAD_LETTERED,
}
_REPLAYABLE = (DeliveryState.DEAD_LETTERED.value, DeliveryState.FAILED.value)


def _new_id() -> str:
    """A UUIDv7 (RFC 9562): time-ordered, so new rows land at the end of the id indexes and a
    search that joins recent rows by id reads neighbouring index and table pages."""
    unix_ms = time.time_ns() // 1_000_000
    rand = secrets.randbits(74)
    value = (
        (unix_ms & (1 << 48) - 1) << 80
        | 0x7 << 76  # version
        | (rand >> 62) << 64  # rand_a, 12 bits
        | 0b10 << 62  # variant
        | rand & (1 << 62) - 1  # rand_b, 62 bits
    )
    return str(uuid.UUID(int=value))


class DeliveryLog(AttemptLog):
    """Documents, deliveries and events. Create it with ``await DeliveryLog.open(url)``."""

    def __init__(
        self,
        engines: Engines,
        schema_version: int,
        *,
        batch_max: int = DEFAULT_MAX_BATCH,
        batch_wait_s: float = DEFAULT_MAX_WAIT_S,
    ) -> None:
        super().__init__(engines)
        self.schema_version = schema_version
        self.writer = GroupCommitter(
            engines, _new_id, max_batch=batch_max, max_wait_s=batch_wait_s, kept=self._kept
        )

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        batch_max: int = DEFAULT_MAX_BATCH,
        batch_wait_s: float = DEFAULT_MAX_WAIT_S,
    ) -> DeliveryLog:
        """Connect to ``sqlite+aiosqlite:///…`` or ``postgresql+asyncpg://…`` and migrate.

        ``batch_max`` and ``batch_wait_s`` bound the group commit of intakes (``group_commit``).
        """
        engines = create_engines(url)
        try:
            version = await migrate(engines.writer)
        except BaseException:
            await engines.reader.dispose()
            raise
        return cls(engines, version, batch_max=batch_max, batch_wait_s=batch_wait_s)

    async def aclose(self) -> None:
        try:
            await self.writer.aclose()
            if self._kept is not None:
                await self._kept.aclose()
        finally:
            await self._engines.reader.dispose()

    # -- intake -------------------------------------------------------------------------------

    async def record_intake(
        self,
        new: NewDocument,
        package: bytes,
        recipients: Sequence[tuple[str, str]],
        *,
        answers: StatusAnswer | None = None,
        national: NationalDoc | None = None,
    ) -> IntakeResult:
        """Record a package, its document, one delivery per ``(organ_id, method)``, atomically.

        The same ``dedup_key`` with the same bytes returns the original records (created=False);
        with other bytes it raises ``ConflictError`` (``conflict.duplicate_document``). A status
        package passes ``answers``: the document it answers becomes ``in_reply_to`` and that
        delivery's business status is set in the same transaction. Concurrent calls share one
        transaction (``group_commit``). A package fetched from the national platform passes
        ``national``: its ``national_inbox`` row is written in the same transaction.
        """
        write = IntakeWrite(
            new,
            package,
            hashlib.sha256(package).hexdigest(),
            tuple(delivery_routes(recipients)),
            answers,
            national,
        )
        return await self.writer.record(write)

    def note_published(self, delivery_ids: Sequence[str]) -> None:
        """The broker confirmed these deliveries: accepted -> queued in a coming transaction."""
        self.writer.mark_published(delivery_ids)

    # -- publication and the outbox -----------------------------------------------------------

    async def mark_published(
        self, delivery_ids: Sequence[str], *, republished: bool = False, actor: str = "gateway"
    ) -> None:
        """The broker confirmed these deliveries: accepted -> queued (later states stay)."""
        if not delivery_ids:
            return
        kind = EventKind.REPUBLISHED if republished else EventKind.PUBLISHED
        async with transaction(self._engines.writer) as conn:
            rows = (
                await conn.execute(
                    lock_deliveries(
                        delivery_ids, deliveries.c.id, deliveries.c.document, deliveries.c.state
                    )
                )
            ).all()
            by_id = {row.id: row for row in rows}
            missing = set(delivery_ids) - by_id.keys()
            if missing:
                raise NotFoundError(f"no deliveries {sorted(missing)}", code="not_found.delivery")
            now = utc_now()
            await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.id.in_(delivery_ids),
                    deliveries.c.state == DeliveryState.ACCEPTED.value,
                )
                .values(state=DeliveryState.QUEUED.value, updated_at=now)
            )
            await conn.run_sync(
                append_events,
                [
                    event_values(
                        document=row.document,
                        delivery=row.id,
                        at=now,
                        kind=kind,
                        outcome="confirmed",
                        detail={"state_before": row.state},
                        actor=actor,
                    )
                    for row in map(by_id.__getitem__, dict.fromkeys(delivery_ids))
                ],
            )

    # -- delivery attempts ----------------------------------------------------------------------

    async def record_attempt(
        self,
        delivery_id: str,
        *,
        outcome: str,
        detail: str,
        next_state: DeliveryState,
        error: str | None = None,
        error_code: str | None = None,
        actor: str = "worker",
    ) -> DeliveryRecord:
        """One delivery attempt: count it, move to ``next_state``, append an event.

        ``error`` (the adapter's message, which may quote the remote side) is for admins;
        ``error_code``, its stable code, is what participants are shown.

        A delivery already ``delivered`` stays delivered (a redelivered message after success):
        the late report is logged as an ``attempt`` event and changes nothing else.
        """
        if next_state is DeliveryState.ACCEPTED:
            raise InputError(
                "only replay() returns a delivery to accepted", code="input.invalid_transition"
            )
        async with transaction(self._engines.writer) as conn:
            row = await self._locked_delivery(conn, delivery_id)
            info: dict[str, object] = {"message": detail, "error": error}
            if error_code is not None:
                info["code"] = error_code
            if row.state == DeliveryState.DELIVERED.value:
                info["ignored"] = "already delivered"
                await self._append(
                    conn,
                    row,
                    EventKind.ATTEMPT,
                    outcome=outcome,
                    detail=info,
                    actor=actor,
                )
                return delivery_record(row)
            now = utc_now()
            values: dict[str, Any] = {
                "state": next_state.value,
                "attempts": row.attempts + 1,
                "updated_at": now,
            }
            if error is not None:
                values["last_error"] = error
                values["last_error_code"] = error_code
            if next_state is DeliveryState.DELIVERED:
                values["delivered_at"] = now
            info["attempt"] = row.attempts + 1
            kind = _EVENT_FOR_STATE.get(next_state, EventKind.ATTEMPT)
            record = await self._update_delivery(conn, delivery_id, values)
            await self._append(conn, row, kind, outcome=outcome, detail=info, actor=actor)
            return record

    async def mark_delivered(
        self, delivery_id: str, *, detail: str, actor: str = "worker"
    ) -> DeliveryRecord:
        """A successful attempt; repeating it changes nothing but the trail."""
        return await self.record_attempt(
            delivery_id,
            outcome="delivered",
            detail=detail,
            next_state=DeliveryState.DELIVERED,
            actor=actor,
        )

    # -- business status ------------------------------------------------------------------------

    async def set_business_status(
        self,
        delivery_id: str,
        code: str,
        at: datetime,
        status_document: str,
        *,
        actor: str = "gateway",
    ) -> DeliveryRecord:
        """A recipient's status package (``code`` 01..16, sent ``at``) about this delivery.

        The delivery keeps the latest status by ``at``: a status that arrives after a newer one
        is logged but does not replace it.
        """
        try:
            status = StatusCode(code)
        except ValueError as exc:
            raise InputError(f"unknown status code {code!r}", code="edxml.bad_status_code") from exc
        async with transaction(self._engines.writer) as conn:
            row = await self._locked_delivery(conn, delivery_id)
            current_at: datetime | None = row.business_status_at
            newest = current_at is None or at >= current_at
            detail = {
                "status_document": status_document,
                "at": at.isoformat(),
                "superseded": not newest,
            }
            record = delivery_record(row)
            if newest:
                values = {
                    "business_status": status.value,
                    "business_status_at": at,
                    "updated_at": utc_now(),
                }
                record = await self._update_delivery(conn, delivery_id, values)
            await self._append(
                conn,
                row,
                EventKind.BUSINESS_STATUS,
                outcome=status.value,
                detail=detail,
                actor=actor,
            )
            return record

    # -- mailbox --------------------------------------------------------------------------------

    async def ack_inbox(
        self, recipient: str, delivery_id: str, *, outcome: str = "acked", reason: str = ""
    ) -> DeliveryRecord:
        """``recipient`` took the item from its mailbox (again: no change). Not theirs: 404.

        ``outcome`` "failed" (with a ``reason``) records that the recipient's system could not
        take it in (the national protocol's ``updateStatus fail``); the item leaves the mailbox.
        """
        async with transaction(self._engines.writer) as conn:
            row = (
                await conn.execute(
                    select(deliveries)
                    .where(
                        deliveries.c.id == delivery_id,
                        deliveries.c.recipient == recipient,
                        deliveries.c.method == DeliveryMethod.MAILBOX.value,
                        deliveries.c.state == DeliveryState.DELIVERED.value,
                    )
                    .with_for_update(key_share=True)
                )
            ).first()
            if row is None:
                raise NotFoundError(
                    f"no inbox item {delivery_id} for {recipient}", code="not_found.inbox_item"
                )
            if row.acked_at is not None:
                return delivery_record(row)
            now = utc_now()
            record = await self._update_delivery(
                conn, delivery_id, {"acked_at": now, "updated_at": now}
            )
            await self._append(
                conn,
                row,
                EventKind.INBOX_ACKED,
                outcome=outcome,
                detail={"reason": reason} if reason else {},
                actor=recipient,
            )
            return record

    async def replay(self, delivery_id: str, actor: str) -> DeliveryRecord:
        """A dead-lettered (or failed) delivery back to ``accepted``, same id, to be republished."""
        async with transaction(self._engines.writer) as conn:
            row = await self._locked_delivery(conn, delivery_id)
            if row.state not in _REPLAYABLE:
                raise ConflictError(
                    f"delivery {delivery_id} is {row.state}, not dead-lettered",
                    code="conflict.not_replayable",
                )
            values = {"state": DeliveryState.ACCEPTED.value, "updated_at": utc_now()}
            record = await self._update_delivery(conn, delivery_id, values)
            await self._append(
                conn,
                row,
                EventKind.REPLAYED,
                outcome="accepted",
                detail={"state_before": row.state},
                actor=actor,
            )
            return record

    # -- helpers (inside a caller's transaction) ----------------------------------------------

    async def _locked_delivery(self, conn: AsyncConnection, delivery_id: str) -> Row[Any]:
        row = (
            await conn.execute(
                select(deliveries)
                .where(deliveries.c.id == delivery_id)
                .with_for_update(key_share=True)  # FOR NO KEY UPDATE: see ``store.chain``
            )
        ).first()
        if row is None:
            raise NotFoundError(f"no delivery {delivery_id}", code="not_found.delivery")
        return row

    async def _update_delivery(
        self, conn: AsyncConnection, delivery_id: str, values: dict[str, Any]
    ) -> DeliveryRecord:
        row = (
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(**values)
                .returning(*deliveries.c)
            )
        ).one()
        return delivery_record(row)

    async def _append(
        self,
        conn: AsyncConnection,
        delivery: Row[Any],
        kind: EventKind,
        *,
        outcome: str,
        detail: dict[str, object],
        actor: str,
    ) -> None:
        """An event about ``delivery`` (a ``deliveries`` row), appended to the chain: the
        transaction's last write."""
        values = event_values(
            document=delivery.document,
            delivery=delivery.id,
            at=utc_now(),
            kind=kind,
            outcome=outcome,
            detail=detail,
            actor=actor,
        )
        await conn.run_sync(append_events, [values])
