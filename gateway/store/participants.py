"""The participant directory in the store, shared by every gateway and worker process.

One row per participant (``participants``: the JSON object of ``participant_to_mapping``) and one
version (``directory_version``) that every change raises in the change's own transaction, with
the change's audit entry. A process keeps its snapshot in a ``DirectoryHolder``: its own changes
are swapped in at once, and :meth:`StoredDirectory.refresh` (one tiny query, polled every second
by ``gateway.service.components.watch_directory``) reloads the others'.

The store has a directory once its version row exists. An empty store is seeded from the
configured TOML file at start; after that the file is only read by ``lgsp directory import``
(a start-up warning names the differences when the file and the store disagree).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import structlog
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.core.directory import (
    Directory,
    DirectoryHolder,
    Participant,
    load_directory,
    participant_from_mapping,
    participant_to_mapping,
)
from gateway.core.errors import ConfigError, ConflictError, NotFoundError
from gateway.store.audit import insert_audit
from gateway.store.engine import Engines, transaction
from gateway.store.tables import directory_version, participants

log = structlog.get_logger(__name__)

VERSION_ROW = 1
SEEDED_BY = "seed"

Change = Callable[[Directory], Directory]


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import changed, by OrganId."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: int = 0
    version: int = 0


def directory_differences(
    old: Directory, new: Directory
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """``(added, changed, removed)`` OrganIds from ``old`` to ``new``."""
    added = tuple(p.organ_id for p in new if p.organ_id not in old)
    changed = tuple(p.organ_id for p in new if p.organ_id in old and old.get(p.organ_id) != p)
    removed = tuple(p.organ_id for p in old if p.organ_id not in new)
    return added, changed, removed


def imported(current: Directory, directory: Directory, *, merge: bool) -> Directory:
    """The directory an import of ``directory`` makes of ``current``: ``directory`` itself, or
    with ``merge`` ``current`` with the participants ``directory`` lists added or replaced."""
    if not merge:
        return directory
    return Directory([*(p for p in current if p.organ_id not in directory), *directory])


class StoredDirectory:
    """The store's directory and this process's snapshot of it (``holder``)."""

    def __init__(self, engines: Callable[[], Engines], holder: DirectoryHolder | None = None):
        self._engines_of = engines
        self.holder = holder if holder is not None else DirectoryHolder()

    # -- reading --------------------------------------------------------------------------------

    async def version(self) -> int | None:
        """The store's directory version; None while the store has no directory."""
        async with transaction(self._engines_of().reader) as conn:
            return await _version(conn)

    async def read(self) -> tuple[int, Directory] | None:
        """``(version, directory)`` as stored, or None while the store has no directory."""
        async with transaction(self._engines_of().reader) as conn:
            version = await _version(conn)
            if version is None:
                return None
            return version, await _directory(conn)

    async def refresh(self) -> bool:
        """Reload the snapshot if another process changed the directory; True if it did."""
        version = await self.version()
        if version is None or version == self.holder.version:
            return False
        found = await self.read()
        if found is None:
            return False
        return self.holder.swap(found[1], found[0])

    async def open(self, seed_file: Path | None) -> Directory:
        """At start: seed an empty store from ``seed_file``, then load the store's directory.

        A store without a directory needs the file (``ConfigError`` otherwise). A store with
        one ignores the file, with a warning when the two differ."""
        found = await self.read()
        if found is None:
            if seed_file is None:
                raise ConfigError("the store has no directory and none is configured")
            try:
                seeded = load_directory(seed_file)
            except ConfigError as exc:
                raise ConfigError(
                    f"the store has no participant directory yet, and directory.path cannot "
                    f"seed it: {exc.message} (or load one with `lgsp directory import FILE`)",
                    code=exc.code,
                    path="directory.path",
                ) from exc
            await self.seed(seeded, source=str(seed_file))
            found = await self.read()
            assert found is not None
        elif seed_file is not None:
            _warn_if_file_differs(seed_file, found[1])
        self.holder.swap(found[1], found[0])
        log.info("directory_loaded", participants=len(found[1]), version=found[0])
        return found[1]

    # -- writing --------------------------------------------------------------------------------

    async def seed(self, directory: Directory, *, source: str) -> bool:
        """Write ``directory`` if the store has none yet; False if it has (or another process
        seeded it meanwhile)."""
        try:
            async with transaction(self._engines_of().writer) as conn:
                if await _version(conn) is not None:
                    return False
                await _insert_version(conn, SEEDED_BY)
                await _write(conn, Directory(), directory, SEEDED_BY)
                detail = {"participants": len(directory), "source": source}
                await insert_audit(conn, "system", "directory.seed", [(source, detail)])
        except ConflictError:  # another process seeded it first
            return False
        log.info("directory_seeded", participants=len(directory), source=source)
        return True

    async def save(
        self,
        participant: Participant,
        *,
        actor: str,
        detail: Mapping[str, object] | None = None,
        action: str = "participant.save",
    ) -> Directory:
        """Add or replace ``participant`` (the directory's checks apply: ``ConfigError``)."""

        def change(current: Directory) -> Directory:
            return current.with_participant(participant)

        audit = [(participant.organ_id, dict(detail or {}))]
        return (await self._change(change, actor, action, audit))[1]

    async def disable(
        self, organ_id: str, *, actor: str, detail: Mapping[str, object] | None = None
    ) -> Directory:
        """Disable a participant (``NotFoundError`` if there is none)."""

        def change(current: Directory) -> Directory:
            found = current.get(organ_id)
            if found is None:
                raise NotFoundError(f"no participant {organ_id}", code="not_found.participant")
            return current.with_participant(replace(found, enabled=False))

        audit = [(organ_id, dict(detail or {}))]
        return (await self._change(change, actor, "participant.disable", audit))[1]

    async def save_many(
        self, changed: Iterable[Participant], *, actor: str, action: str
    ) -> Directory:
        """Add or replace several participants in one change (one audit entry each)."""
        wanted = list(changed)

        def change(current: Directory) -> Directory:
            for participant in wanted:
                current = current.with_participant(participant)
            return current

        audit: list[tuple[str, dict[str, object]]] = [
            (p.organ_id, {"enabled": p.enabled}) for p in wanted
        ]
        return (await self._change(change, actor, action, audit))[1]

    async def import_directory(
        self, directory: Directory, *, actor: str, source: str, merge: bool = False
    ) -> ImportReport:
        """Make the store's directory ``directory`` (participants missing from it are removed),
        or with ``merge`` only add and replace the participants it lists."""
        report: dict[str, tuple[str, ...]] = {}

        def change(current: Directory) -> Directory:
            new = directory
            if merge:
                new = Directory([*(p for p in current if p.organ_id not in directory), *directory])
            added, changed, removed = directory_differences(current, new)
            report.update(added=added, changed=changed, removed=removed)
            return new

        action = "directory.merge" if merge else "directory.import"
        version, result = await self._change(
            change, actor, action, [(source, {"participants": len(directory)})]
        )
        touched = len(report["added"]) + len(report["changed"])
        return ImportReport(
            report["added"],
            report["changed"],
            report["removed"],
            unchanged=len(result) - touched,
            version=version,
        )

    async def _change(
        self,
        change: Change,
        actor: str,
        action: str,
        audit: list[tuple[str, dict[str, object]]],
    ) -> tuple[int, Directory]:
        """Raise the version (which serialises writers), read, change, write the difference and
        the audit entries, in one transaction; then swap the result into this process."""
        async with transaction(self._engines_of().writer) as conn:
            version = await _raise_version(conn, actor)
            current = await _directory(conn)
            new = change(current)
            ordered = await _write(conn, current, new, actor)
            await insert_audit(conn, actor, action, audit)
        self.holder.swap(ordered, version)
        return version, ordered


async def _version(conn: AsyncConnection) -> int | None:
    found = await conn.scalar(
        select(directory_version.c.version).where(directory_version.c.id == VERSION_ROW)
    )
    return None if found is None else int(found)


async def _insert_version(conn: AsyncConnection, actor: str) -> int:
    await conn.execute(
        insert(directory_version).values(
            id=VERSION_ROW, version=1, changed_at=datetime.now(UTC), changed_by=actor
        )
    )
    return 1


async def _raise_version(conn: AsyncConnection, actor: str) -> int:
    """The next version (the row lock taken here orders concurrent changes on PostgreSQL)."""
    raised = await conn.scalar(
        update(directory_version)
        .where(directory_version.c.id == VERSION_ROW)
        .values(
            version=directory_version.c.version + 1,
            changed_at=datetime.now(UTC),
            changed_by=actor,
        )
        .returning(directory_version.c.version)
    )
    if raised is None:  # the store's first directory
        return await _insert_version(conn, actor)
    return int(raised)


async def _directory(conn: AsyncConnection) -> Directory:
    rows = await conn.execute(
        select(participants.c.organ_id, participants.c.entry).order_by(
            participants.c.position, participants.c.organ_id
        )
    )
    return Directory(
        participant_from_mapping(json.loads(row.entry), f"participants[{row.organ_id}]")
        for row in rows
    )


async def _write(conn: AsyncConnection, old: Directory, new: Directory, actor: str) -> Directory:
    """Store the difference from ``old`` to ``new``; ``new`` in the stored order (a replaced
    participant keeps its place, new ones come last)."""
    added, changed, removed = directory_differences(old, new)
    now = datetime.now(UTC)
    if removed:
        await conn.execute(delete(participants).where(participants.c.organ_id.in_(removed)))
    for organ_id in changed:
        await conn.execute(
            update(participants)
            .where(participants.c.organ_id == organ_id)
            .values(entry=_entry(new, organ_id), updated_at=now, updated_by=actor)
        )
    if added:
        last = await conn.scalar(select(func.max(participants.c.position)))
        start = -1 if last is None else int(last)
        await conn.execute(
            insert(participants),
            [
                {
                    "organ_id": organ_id,
                    "position": start + 1 + i,
                    "entry": _entry(new, organ_id),
                    "updated_at": now,
                    "updated_by": actor,
                }
                for i, organ_id in enumerate(added)
            ],
        )
    by_id = {p.organ_id: p for p in new}
    return Directory(
        [*(by_id[p.organ_id] for p in old if p.organ_id in by_id), *(by_id[a] for a in added)]
    )


def _entry(directory: Directory, organ_id: str) -> str:
    participant = directory.get(organ_id)
    assert participant is not None
    return json.dumps(participant_to_mapping(participant), ensure_ascii=False, sort_keys=True)


def _warn_if_file_differs(path: Path, stored: Directory) -> None:
    """The store is the directory: say so when the configured file says otherwise."""
    if not path.exists():
        return
    try:
        on_file = load_directory(path)
    except ConfigError as exc:
        log.warning("directory_file_ignored", path=str(path), error=exc.message)
        return
    added, changed, removed = directory_differences(stored, on_file)
    if added or changed or removed:
        log.warning(
            "directory_file_differs",
            path=str(path),
            only_in_file=list(added),
            different=list(changed),
            only_in_store=list(removed),
            hint="the store's directory is used; `lgsp directory import` applies the file, "
            "`lgsp directory export` rewrites it",
        )
