"""The worker's side of the delivery log, a batch at a time: one read before, one write after.

Before delivering a batch, ``check_batch`` answers "delivered already?" for all of it in one
read (so a delivered delivery is never sent again), with each delivery's attempt count (a copy
of a message that saw another count is stale), and fetches its claim-checked bytes with one
more statement in the same read transaction. After the batch's adapter calls,
``record_attempts`` writes every outcome in ONE transaction (on PostgreSQL its rows locked first,
in id order: ``queries.lock_deliveries``): each delivery moves with a conditional update
(``... WHERE state <> 'delivered' RETURNING``), and a row that it does not move was delivered by
someone else meanwhile. A failure moves it only if its attempt count is still the one the report's
message saw (``AND attempts = :seen``): of two copies of one delivery that both failed (in one
batch or in two workers' at once), one is counted and retried, the other is stale. Such a report
changes nothing but the trail (an ``attempt`` event marked ``ignored``), and the caller is told
which, from a read in the same transaction of the rows not moved.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.compiler import SQLCompiler

from gateway.core.errors import InputError
from gateway.store.chain import append_events, prefetch_head
from gateway.store.driver_statements import DriverStatement
from gateway.store.engine import (
    Engines,
    kept_connection,
    run_transaction,
    sqlite_autocommit_rows,
    transaction,
)
from gateway.store.queries import event_values, lock_deliveries, utc_now
from gateway.store.reads import LogReader
from gateway.store.records import DeliveryState, EventKind
from gateway.store.tables import deliveries, packages

_NOT_DELIVERED = deliveries.c.state != DeliveryState.DELIVERED.value

# The batch statements, built once (each execution then skips building the statement and its
# cache key; the compiled form is SQLAlchemy's cached one): ``ids`` and ``sha256s`` expand.
_STATES = select(deliveries.c.id, deliveries.c.state, deliveries.c.attempts).where(
    deliveries.c.id.in_(bindparam("ids", expanding=True))
)
_PACKAGES = select(packages.c.sha256, packages.c.data).where(
    packages.c.sha256.in_(bindparam("sha256s", expanding=True))
)
_NOW = bindparam("now_", type_=deliveries.c.updated_at.type)
_DELIVERED = (
    update(deliveries)
    .where(deliveries.c.id.in_(bindparam("ids", expanding=True)), _NOT_DELIVERED)
    .values(
        state=DeliveryState.DELIVERED.value,
        attempts=deliveries.c.attempts + 1,
        updated_at=_NOW,
        delivered_at=_NOW,
    )
    .returning(deliveries.c.id, deliveries.c.document, deliveries.c.attempts)
)
# on the one-hop SQLite driver, in one hop without ``Connection.execute`` (``driver_statements``)
_DELIVERED_ON_DRIVER = DriverStatement(_DELIVERED)


@functools.lru_cache(maxsize=64)
def _states_sql(dialect: Dialect, count: int) -> str:
    """``_STATES`` as ``dialect``'s text for ``count`` ids, whose ``?`` take the ids in order
    (SQLite's batch check reads it without SQLAlchemy's execution: ``sqlite_autocommit_rows``;
    expanding the statement costs more than the read's Python otherwise)."""
    compiled = _STATES.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    expanded = compiled.construct_expanded_state({"ids": [str(i) for i in range(count)]})
    assert expanded.positional_parameters == tuple(str(i) for i in range(count))
    return expanded.statement


class AttemptResult(StrEnum):
    """What became of one report in ``record_attempts``."""

    APPLIED = "applied"  # the delivery moved to the reported state
    ALREADY_DELIVERED = "already_delivered"  # it was delivered meanwhile: trail entry only
    STALE = "stale"  # a failure of a copy whose count was not the log's: trail entry only
    UNKNOWN = "unknown"  # no such delivery in the log: nothing written


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """A delivery as a batch check read it: its state and recorded attempt count."""

    state: DeliveryState
    attempts: int


_REPORTED = {
    DeliveryState.DELIVERED: (EventKind.DELIVERED, "delivered"),
    DeliveryState.RETRYING: (EventKind.RETRY_SCHEDULED, "retry"),
    DeliveryState.DEAD_LETTERED: (EventKind.DEAD_LETTERED, "dead_lettered"),
}


@dataclass(frozen=True, slots=True)
class AttemptReport:
    """One finished attempt: the state it leaves its delivery in, and what to keep of it."""

    delivery_id: str
    state: DeliveryState  # DELIVERED, RETRYING or DEAD_LETTERED
    detail: str
    error: str | None = None  # the adapter's message (remote text, URL): for admins only
    error_code: str | None = None  # its stable code, shown to participants
    retry_in_s: float | None = None  # RETRYING: the delay before the next attempt (the sweep's)
    # the delivery's attempt count its message saw: a failure applies only while it is the
    # log's (None: unconditionally); a success applies whatever it is
    attempts_seen: int | None = None

    def __post_init__(self) -> None:
        if self.state not in _REPORTED:
            raise InputError(
                f"an attempt cannot leave a delivery {self.state}", code="input.invalid_transition"
            )


class AttemptLog(LogReader):
    """Batch reads and writes of delivery attempts (``DeliveryLog`` extends it)."""

    def __init__(self, engines: Engines) -> None:
        super().__init__(engines)
        # the writer's kept connection on SQLite (``kept_connection``), for ``record_attempts``
        # and the intake's group commit; ``DeliveryLog.aclose`` gives it back
        self._kept = kept_connection(engines.writer)

    async def delivery_states(self, delivery_ids: Iterable[str]) -> dict[str, DeliveryState]:
        """The current state of each of ``delivery_ids`` found in the log (one statement)."""
        ids = sorted(set(delivery_ids))
        if not ids:
            return {}
        async with transaction(self._engines.reader) as conn:
            rows = await conn.execute(_STATES, {"ids": ids})
            return {row.id: DeliveryState(row.state) for row in rows}

    async def check_batch(
        self, delivery_ids: Iterable[str], claim_checks: Mapping[str, str]
    ) -> tuple[dict[str, StoredDelivery], dict[str, bytes]]:
        """The state and attempt count of each of ``delivery_ids`` found in the log and, in the
        same read transaction, the bytes of the ``claim_checks`` (delivery id -> package
        SHA-256) whose delivery is found and not delivered: what a worker batch needs before
        its adapter calls. Without claim checks the read is one statement, which SQLite runs
        outside a transaction (one thread hop instead of three; the same snapshot)."""
        ids = sorted(set(delivery_ids))
        if not ids:
            return {}, {}
        reader = self._engines.reader
        if not claim_checks and reader.dialect.name == "sqlite":  # one statement: one hop
            read = await sqlite_autocommit_rows(reader, _states_sql(reader.dialect, len(ids)), ids)
            return {i: StoredDelivery(DeliveryState(s), n) for i, s, n in read}, {}
        return await run_transaction(reader, lambda conn: _checked(conn, ids, claim_checks))

    async def packages(self, sha256s: Iterable[str]) -> dict[str, bytes]:
        """The stored bytes of each of ``sha256s`` found in the log (one statement)."""
        wanted = sorted(set(sha256s))
        if not wanted:
            return {}
        async with transaction(self._engines.reader) as conn:
            rows = await conn.execute(_PACKAGES, {"sha256s": wanted})
            return {row.sha256: bytes(row.data) for row in rows}

    async def record_attempts(
        self, reports: Sequence[AttemptReport], *, actor: str = "worker"
    ) -> list[AttemptResult]:
        """Record a batch of attempts in one transaction; per report, what became of it.

        A report about a delivery that is ``delivered`` already (or that is not in the log)
        does not apply, nor does a failure whose ``attempts_seen`` is not the delivery's count
        (STALE): the delivery keeps its state and, if it exists, its trail gets an ``attempt``
        event marked ``ignored``. Successes apply before failures, so of two reports about one
        delivery a success wins, and of two successes the first; of two failures that saw the
        same count, the first.
        """
        if not reports:
            return []
        now = utc_now()
        return await run_transaction(
            self._engines.writer, lambda conn: _recorded(conn, reports, now, actor), self._kept
        )


def _checked(
    conn: Connection, ids: list[str], claim_checks: Mapping[str, str]
) -> tuple[dict[str, StoredDelivery], dict[str, bytes]]:
    """``check_batch`` in its read transaction."""
    rows = conn.execute(_STATES, {"ids": ids})
    stored = {row.id: StoredDelivery(DeliveryState(row.state), row.attempts) for row in rows}
    wanted = sorted(
        {
            sha
            for delivery_id, sha in claim_checks.items()
            if (found := stored.get(delivery_id)) is not None
            and found.state is not DeliveryState.DELIVERED
        }
    )
    if not wanted:
        return stored, {}
    fetched = conn.execute(_PACKAGES, {"sha256s": wanted})
    return stored, {row.sha256: bytes(row.data) for row in fetched}


def _recorded(
    conn: Connection, reports: Sequence[AttemptReport], now: datetime, actor: str
) -> list[AttemptResult]:
    """``record_attempts`` in its write transaction."""
    prefetch_head(conn)  # with the first hop: ``append_events`` reads it without one
    if conn.dialect.name == "postgresql":  # one lock order for every writer
        conn.execute(lock_deliveries(r.delivery_id for r in reports))
    moved = _move(conn, reports, now)
    missed = {r.delivery_id for i, r in enumerate(reports) if i not in moved}
    found = _found(conn, missed) if missed else {}
    results = [_result(i in moved, found.get(r.delivery_id)) for i, r in enumerate(reports)]
    trail = [
        _event(report, moved.get(i), found, results[i], now=now, actor=actor)
        for i, report in enumerate(reports)
    ]
    append_events(conn, [row for row in trail if row is not None])  # last: see ``store.chain``
    return results


def _move(
    conn: Connection, reports: Sequence[AttemptReport], now: datetime
) -> dict[int, tuple[str, int]]:
    """Apply the state changes; ``{report index: (document, attempts after)}`` of those
    that applied."""
    moved: dict[int, tuple[str, int]] = {}
    first: dict[str, int] = {}
    for i, report in enumerate(reports):
        if report.state is DeliveryState.DELIVERED:
            first.setdefault(report.delivery_id, i)
    if first:  # the hot path: every success of the batch in one statement
        rows = _DELIVERED_ON_DRIVER.fetch(conn, [{"ids": sorted(first), "now_": now}])
        for delivery_id, document, attempts in rows:
            moved[first[delivery_id]] = (document, attempts)
    for i, report in enumerate(reports):  # failures: fewer, each with its own error
        if report.state is DeliveryState.DELIVERED:
            continue
        values: dict[str, Any] = {
            "state": report.state.value,
            "attempts": deliveries.c.attempts + 1,
            "updated_at": now,
        }
        if report.error is not None:
            values["last_error"] = report.error
            values["last_error_code"] = report.error_code
        where = [deliveries.c.id == report.delivery_id, _NOT_DELIVERED]
        if report.attempts_seen is not None:  # one copy's failure counts, not two
            where.append(deliveries.c.attempts == report.attempts_seen)
        failed = conn.execute(
            update(deliveries)
            .where(*where)
            .values(**values)
            .returning(deliveries.c.document, deliveries.c.attempts)
        ).first()
        if failed is not None:
            moved[i] = (failed.document, failed.attempts)
    return moved


def _found(conn: Connection, delivery_ids: set[str]) -> dict[str, tuple[str, DeliveryState]]:
    """``{delivery id: (document, state)}`` of those of ``delivery_ids`` in the log."""
    rows = conn.execute(
        select(deliveries.c.id, deliveries.c.document, deliveries.c.state).where(
            deliveries.c.id.in_(sorted(delivery_ids))
        )
    )
    return {row.id: (row.document, DeliveryState(row.state)) for row in rows}


def _result(moved: bool, found: tuple[str, DeliveryState] | None) -> AttemptResult:
    """What became of a report: it moved its delivery, or why not (``found``: as it is now)."""
    if moved:
        return AttemptResult.APPLIED
    if found is None:
        return AttemptResult.UNKNOWN
    if found[1] is DeliveryState.DELIVERED:
        return AttemptResult.ALREADY_DELIVERED
    return AttemptResult.STALE  # a failure whose count the log had moved past


_IGNORED = {
    AttemptResult.ALREADY_DELIVERED: "already delivered",
    AttemptResult.STALE: "stale copy",
}


def _event(
    report: AttemptReport,
    moved: tuple[str, int] | None,
    found: dict[str, tuple[str, DeliveryState]],
    result: AttemptResult,
    *,
    now: datetime,
    actor: str,
) -> dict[str, object] | None:
    """The trail entry of one report; None for a delivery that is not in the log."""
    kind, outcome = _REPORTED[report.state]
    detail: dict[str, object] = {"message": report.detail, "error": report.error}
    if report.error_code is not None:
        detail["code"] = report.error_code
    if report.retry_in_s is not None:
        detail["retry_in_s"] = report.retry_in_s
    if moved is not None:
        document, attempts = moved
        detail["attempt"] = attempts
    elif result in _IGNORED:
        document, kind = found[report.delivery_id][0], EventKind.ATTEMPT
        detail["ignored"] = _IGNORED[result]
    else:
        return None
    return event_values(
        document=document,
        delivery=report.delivery_id,
        at=now,
        kind=kind,
        outcome=outcome,
        detail=detail,
        actor=actor,
    )
