"""The national simulator's durable state in SQLite: sent packages, per-system queues, agencies.

Every sent package gets the sender's ``DocId``; each recipient gets a queue entry of its own, with
its own ``docId`` (the platform's receiverDocId), ``pending`` until the receiving system
acknowledges it ``done`` or ``fail``. Uses the gateway store's engine (WAL, synchronous=FULL).

Concurrent sends, acknowledgements and ``getEdoc`` reads are grouped, one transaction for what
arrived while the previous one ran (``gateway.delivery.batching``); each call returns once its own
write committed (or its read is done). The registered agencies are read once and kept (this process
is their only writer).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Row,
    String,
    Table,
    bindparam,
    insert,
    select,
    update,
)

from adapters.national.protocol import PLATFORM_TZ
from adapters.national.records import Agency
from gateway.core.errors import ForbiddenError
from gateway.delivery.batching import Batcher
from gateway.store.engine import Engines, create_engines, transaction

PENDING = "pending"
MAX_WRITE_BATCH = 64

metadata = MetaData()
messages = Table(
    "sim_messages",
    metadata,
    Column("doc_id", String(64), primary_key=True),
    Column("sender_system", String(200), nullable=False),
    Column("from_code", String(200), nullable=False),
    Column("message_type", String(16), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("sent_at", String(40), nullable=False),
)
queue = Table(
    "sim_queue",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("doc_id", String(64), nullable=False, unique=True),
    Column("message", String(64), ForeignKey("sim_messages.doc_id"), nullable=False),
    Column("receiver_system", String(200), nullable=False, index=True),
    Column("to_code", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
)
agencies = Table(
    "sim_agencies",
    metadata,
    Column("code", String(200), primary_key=True),
    Column("system_id", String(200), nullable=False),
    Column("name", String(500), nullable=False),
    Column("pcode", String(200), nullable=False),
    Column("agency_id", String(200), nullable=False),
    Column("mail", String(200), nullable=False),
    Column("mobile", String(200), nullable=False),
    Column("fax", String(200), nullable=False),
)


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One package for one receiving system."""

    doc_id: str  # the receiver's docId
    message: str  # the sender's DocId
    sender_system: str
    receiver_system: str
    from_code: str
    to_code: str
    message_type: str
    status: str
    created_at: str
    updated_at: str


def now_text() -> str:
    return datetime.now(PLATFORM_TZ).isoformat(sep=" ", timespec="seconds")


def _entry(row: Row[Any] | Any) -> QueueEntry:
    return QueueEntry(
        doc_id=row.doc_id,
        message=row.message,
        sender_system=row.sender_system,
        receiver_system=row.receiver_system,
        from_code=row.from_code,
        to_code=row.to_code,
        message_type=row.message_type,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@dataclass(frozen=True, slots=True)
class _Send:
    sender_system: str
    from_code: str
    message_type: str
    data: bytes = field(repr=False)
    receivers: Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class _Fetch:
    system: str
    doc_id: str


@dataclass(frozen=True, slots=True)
class _Status:
    system: str
    doc_id: str
    status: str


_ENTRY_COLUMNS = (
    queue.c.doc_id,
    queue.c.message,
    messages.c.sender_system,
    queue.c.receiver_system,
    messages.c.from_code,
    queue.c.to_code,
    messages.c.message_type,
    queue.c.status,
    queue.c.created_at,
    queue.c.updated_at,
)


class SimStore:
    """Open with ``await SimStore.open(path)``; all writes are single transactions."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines
        self._sends = Batcher(self._record_sends, max_size=MAX_WRITE_BATCH)
        self._statuses = Batcher(self._set_statuses, max_size=MAX_WRITE_BATCH)
        self._packages = Batcher(self._read_packages, max_size=MAX_WRITE_BATCH)
        self._agencies: list[tuple[Agency, str]] | None = None  # read once, kept up to date
        self._registrations = 0  # a read older than the last registration is not kept

    @classmethod
    async def open(cls, path: Path) -> SimStore:
        engines = create_engines(f"sqlite+aiosqlite:///{path}")
        async with transaction(engines.writer) as conn:
            await conn.run_sync(metadata.create_all)
        return cls(engines)

    async def aclose(self) -> None:
        await self._sends.aclose()
        await self._statuses.aclose()
        await self._packages.aclose()
        await self._engines.reader.dispose()

    async def record_send(
        self,
        sender_system: str,
        from_code: str,
        message_type: str,
        data: bytes,
        receivers: Sequence[tuple[str, str]],
    ) -> str:
        """Store a package and queue it for each ``(receiver_system, to_code)``; its DocId."""
        send = _Send(sender_system, from_code, message_type, data, receivers)
        return await self._sends.submit(send)

    async def _record_sends(self, sends: Sequence[_Send]) -> list[str]:
        now = now_text()
        doc_ids = [str(uuid.uuid4()) for _ in sends]
        async with transaction(self._engines.writer) as conn:
            await conn.execute(
                insert(messages),
                [
                    {
                        "doc_id": doc_id,
                        "sender_system": send.sender_system,
                        "from_code": send.from_code,
                        "message_type": send.message_type,
                        "data": send.data,
                        "sent_at": now,
                    }
                    for doc_id, send in zip(doc_ids, sends, strict=True)
                ],
            )
            await conn.execute(
                insert(queue),
                [
                    {
                        "doc_id": str(uuid.uuid4()),
                        "message": doc_id,
                        "receiver_system": system,
                        "to_code": to_code,
                        "status": PENDING,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for doc_id, send in zip(doc_ids, sends, strict=True)
                    for system, to_code in send.receivers
                ],
            )
        return doc_ids

    async def pending(self, system: str, message_type: str, limit: int) -> list[QueueEntry]:
        """What waits for ``system``, oldest first."""
        query = (
            select(*_ENTRY_COLUMNS)
            .join(messages, messages.c.doc_id == queue.c.message)
            .where(
                queue.c.receiver_system == system,
                queue.c.status == PENDING,
                messages.c.message_type == message_type,
            )
            .order_by(queue.c.seq)
            .limit(limit)
        )
        async with transaction(self._engines.reader) as conn:
            return [_entry(row) for row in await conn.execute(query)]

    async def package_for(self, system: str, doc_id: str) -> bytes | None:
        """The bytes behind ``system``'s queue entry ``doc_id`` (None: not theirs)."""
        return await self._packages.submit(_Fetch(system, doc_id))

    async def _read_packages(self, fetches: Sequence[_Fetch]) -> list[bytes | None]:
        doc_ids = sorted({f.doc_id for f in fetches})
        query = (
            select(queue.c.doc_id, queue.c.receiver_system, messages.c.data)
            .join(messages, messages.c.doc_id == queue.c.message)
            .where(queue.c.doc_id.in_(doc_ids))
        )
        async with transaction(self._engines.reader) as conn:
            found = {
                (row.receiver_system, row.doc_id): bytes(row.data)
                for row in await conn.execute(query)
            }
        return [found.get((f.system, f.doc_id)) for f in fetches]

    async def set_status(self, system: str, doc_id: str, status: str) -> bool:
        """Acknowledge ``system``'s entry ``doc_id``; False if it has no such entry."""
        return await self._statuses.submit(_Status(system, doc_id, status))

    async def _set_statuses(self, statuses: Sequence[_Status]) -> list[bool]:
        """One read of the entries named, then one executemany UPDATE of those that are the
        caller's (an entry's docId is unique)."""
        now = now_text()
        owned = select(queue.c.doc_id, queue.c.receiver_system).where(
            queue.c.doc_id.in_(sorted({ack.doc_id for ack in statuses}))
        )
        async with transaction(self._engines.writer) as conn:
            entries = {(row.receiver_system, row.doc_id) for row in await conn.execute(owned)}
            found = [(ack.system, ack.doc_id) in entries for ack in statuses]
            changes = [
                {"entry": ack.doc_id, "new_status": ack.status}
                for ack, ok in zip(statuses, found, strict=True)
                if ok
            ]
            if changes:  # in the order received: a docId acknowledged twice keeps the last
                await conn.execute(
                    update(queue)
                    .where(queue.c.doc_id == bindparam("entry"))
                    .values(status=bindparam("new_status"), updated_at=now),
                    changes,
                )
        return found

    async def sent(self, system: str, message_type: str, limit: int) -> list[QueueEntry]:
        """``system``'s sent packages, one entry per recipient, newest first."""
        query = (
            select(*_ENTRY_COLUMNS)
            .join(messages, messages.c.doc_id == queue.c.message)
            .where(messages.c.sender_system == system, messages.c.message_type == message_type)
            .order_by(queue.c.seq.desc())
            .limit(limit)
        )
        async with transaction(self._engines.reader) as conn:
            return [_entry(row) for row in await conn.execute(query)]

    async def agencies(self) -> list[tuple[Agency, str]]:
        """Registered agencies with the system each belongs to."""
        if self._agencies is not None:
            return list(self._agencies)
        registrations = self._registrations
        found = await self._read_agencies()
        if registrations == self._registrations:
            self._agencies = found
        return list(found)

    async def _read_agencies(self) -> list[tuple[Agency, str]]:
        async with transaction(self._engines.reader) as conn:
            rows = await conn.execute(select(agencies).order_by(agencies.c.code))
            return [
                (
                    Agency(
                        code=r.code,
                        name=r.name,
                        pcode=r.pcode,
                        id=r.agency_id,
                        mail=r.mail,
                        mobile=r.mobile,
                        fax=r.fax,
                    ),
                    r.system_id,
                )
                for r in rows
            ]

    async def register(self, system: str, agency: Agency) -> None:
        """Register or update ``agency`` for ``system``; another system's agency is refused."""
        values = {
            "name": agency.name,
            "pcode": agency.pcode,
            "agency_id": agency.id,
            "mail": agency.mail,
            "mobile": agency.mobile,
            "fax": agency.fax,
        }
        async with transaction(self._engines.writer) as conn:
            owner = await conn.scalar(
                select(agencies.c.system_id).where(agencies.c.code == agency.code)
            )
            if owner is None:
                await conn.execute(
                    insert(agencies).values(code=agency.code, system_id=system, **values)
                )
            elif owner == system:
                await conn.execute(
                    update(agencies).where(agencies.c.code == agency.code).values(**values)
                )
            else:
                raise ForbiddenError(
                    f"agency {agency.code} belongs to another system", code="national.agency_taken"
                )
        self._registrations += 1
        self._agencies = None  # read again on next use
