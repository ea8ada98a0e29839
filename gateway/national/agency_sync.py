"""Agency sync: national agencies into the directory as national-routed, local agencies registered.

Local agencies are the enabled directory entries delivered by this gateway (any method but
``national``, not the national platform itself). Every other agency of ``getAgenciesList`` becomes
(or stays) a participant delivered by ``national``: the gateway then routes documents to it, and
accepts packages it sends through the platform (the poller injects them). An entry the platform
lists under the OrganId of a local agency never replaces it. Agencies that leave the platform's
list are kept (the list may be partial); an administrator disables them.

The directory in the store is written only when something changed (one change, one audit entry
per agency added or updated, actor ``national-sync``); other processes reload it within 2 s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import structlog

from adapters.national.client import NationalClient, PlatformRefusedError
from adapters.national.records import Agency
from gateway.core.directory import Delivery, Directory, Participant, ParticipantKind
from gateway.core.methods import DeliveryMethod
from gateway.store.participants import StoredDirectory

log = structlog.get_logger(__name__)
SYNC_ACTOR = "national-sync"


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one sync did, by OrganId."""

    registered: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()  # local agencies the platform would not register for us
    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()


def is_local(participant: Participant) -> bool:
    """Whether this gateway delivers to ``participant`` itself (it is one of the province's)."""
    return (
        participant.kind is not ParticipantKind.NATIONAL
        and participant.delivery.method is not DeliveryMethod.NATIONAL
    )


def local_agencies(directory: Directory) -> list[Agency]:
    """The enabled local participants, as ``registerAgency`` bodies."""
    return [
        Agency(code=p.organ_id, name=p.name, pcode=p.parent or "", id=p.organ_id)
        for p in directory
        if p.enabled and is_local(p)
    ]


def merge_agencies(
    directory: Directory, agencies: Iterable[Agency]
) -> tuple[Directory, SyncReport]:
    """``directory`` with every non-local agency present and national-routed."""
    added: list[str] = []
    updated: list[str] = []
    merged = directory
    for agency in agencies:
        code = agency.code.strip()
        if not code:
            continue
        current = merged.get(code)
        if current is not None and is_local(current):
            continue
        wanted = _participant(agency, current)
        if wanted != current:
            merged = merged.with_participant(wanted)
            (added if current is None else updated).append(code)
    return merged, SyncReport(added=tuple(added), updated=tuple(updated))


def _participant(agency: Agency, current: Participant | None) -> Participant:
    name = agency.name.strip() or agency.code.strip()
    parent = agency.pcode.strip() or None
    if current is not None:
        return replace(current, name=name, parent=parent)
    code = agency.code.strip()
    kind = ParticipantKind.BUSINESS if code.isdigit() else ParticipantKind.STATE
    return Participant(
        organ_id=code,
        name=name,
        kind=kind,
        parent=parent,
        delivery=Delivery(DeliveryMethod.NATIONAL),
    )


class AgencySync:
    """Registers the local agencies and pulls the national list into ``directory``."""

    def __init__(self, client: NationalClient, directory: StoredDirectory) -> None:
        self._client = client
        self._directory = directory

    async def run_once(self) -> SyncReport:
        """One sync; ``UnavailableError`` / ``AuthError`` when the platform cannot be used."""
        await self._directory.refresh()  # another process may have changed it
        listed = await self._client.get_agencies_list()
        registered, refused = await self._register(listed)
        merged, report = merge_agencies(self._directory.holder.current, listed)
        changed = [merged.get(code) for code in (*report.added, *report.updated)]
        if changed:
            await self._directory.save_many(
                (p for p in changed if p is not None), actor=SYNC_ACTOR, action="participant.sync"
            )
        report = replace(report, registered=registered, refused=refused)
        log.info(
            "national_agencies_synced",
            listed=len(listed),
            registered=len(registered),
            refused=len(refused),
            added=len(report.added),
            updated=len(report.updated),
        )
        return report

    async def _register(self, listed: Sequence[Agency]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Register the local agencies the platform does not list as they are: (done, refused).

        A refusal (e.g. the OrganId is another system's) is logged and the others go on.
        """
        known = {(a.code, a.name, a.pcode) for a in listed}
        done: list[str] = []
        refused: list[str] = []
        for agency in local_agencies(self._directory.holder.current):
            if (agency.code, agency.name, agency.pcode) in known:
                continue
            try:
                await self._client.register_agency(agency)
            except PlatformRefusedError as exc:
                log.warning("national_agency_refused", organ_id=agency.code, error=exc.message)
                refused.append(agency.code)
                continue
            done.append(agency.code)
        return tuple(done), tuple(refused)
