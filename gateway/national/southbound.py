"""Southbound: the gateway serves the national SDK protocol to local document systems.

A system built on the national SDKs points its endpoint at ``http://<gateway>/XrdAdapter/adapter``
and works unchanged. Each system id belongs to one participant (``local_systems.py``); its calls
go through the same pipeline and delivery log as ``/api/v1``:

- ``sendEdoc``            -> ``Intake.submit`` as that participant (``DocId`` = the document id);
- ``getReceivedEdocList`` -> the participant's mailbox (``docId`` = the delivery id);
- ``getSentEdocList``     -> what the participant sent, per recipient (``sent_list.py``);
- ``getEdoc``             -> the stored package bytes, base64;
- ``updateStatus``        -> ``done``: acknowledged; ``fail``: recorded as failed; both end it;
- ``getAgenciesList``     -> the directory.

HMAC per system id; a timestamp window only for the systems configured with one (the SDK's timestamp
is set once per object in the JVM's time zone); the replay rule of each call (``ReplayRule``) over
the store's durable, shared memory of used hash-headers (``replays.py``); an optional network
allow-list per system. A system reads only packages addressed to its participant, and getEdoc
stops serving a package ``acked_grace_s`` after its updateStatus.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta

import structlog
from aiohttp import web

from adapters.national.protocol import (
    AckStatus,
    MessageType,
    Operation,
    Param,
    SignedRequest,
    ok_answer,
    parse_to,
)
from adapters.national.records import Agency, ReceivedItem
from gateway.core.directory import Participant
from gateway.core.errors import (
    AuthError,
    ForbiddenError,
    LgspError,
    NotFoundError,
    PackageError,
    UnavailableError,
)
from gateway.core.methods import DeliveryMethod
from gateway.edxml.formats import PackageFormat, sniff_format
from gateway.edxml.model import PackageKind
from gateway.national.authentication import HeaderAuthenticator, ReplayMemory
from gateway.national.local_systems import LocalSystems
from gateway.national.replays import StoredReplayMemory
from gateway.national.sent_list import sent_items
from gateway.national.serving import (
    OPERATION_ROUTE,
    answer,
    message_type,
    protocol_handler,
    read_file_doc,
    required,
)
from gateway.store import DeliveryLog
from gateway.store.records import DeliveryState
from gateway.web.keys import (
    DELIVERY_LOG,
    DIRECTORY,
    INTAKE,
    LIFECYCLE,
    METRICS,
    RATE_LIMITS,
    SETTINGS,
)

log = structlog.get_logger(__name__)

SUPPORTED = frozenset(
    {
        Operation.SEND_EDOC,
        Operation.GET_RECEIVED_EDOC_LIST,
        Operation.GET_EDOC,
        Operation.UPDATE_STATUS,
        Operation.GET_AGENCIES_LIST,
        Operation.GET_SENT_EDOC_LIST,
    }
)
LIST_LIMIT = 500
_KIND = {MessageType.EDOC: PackageKind.DOCUMENT, MessageType.STATUS: PackageKind.STATUS}


class Southbound:
    """The protocol's handlers over one application's intake, delivery log and directory."""

    def __init__(
        self, systems: LocalSystems, replays: ReplayMemory, *, acked_grace_s: float
    ) -> None:
        self.systems = systems
        self._auth = HeaderAuthenticator(systems.credentials, replays)
        self._acked_grace = timedelta(seconds=acked_grace_s)

    async def handle(self, request: web.Request, operation: Operation) -> web.Response:
        limits = request.app[RATE_LIMITS]  # failures per address, calls per system (429 rate.*)
        limits.check_address(request.remote)
        try:
            signed = await self._auth.authenticate(
                request.headers, operation, admit=lambda s: self._check_network(request, s)
            )
        except AuthError:
            await limits.failed(request.remote)
            raise
        try:
            await limits.request(f"system:{signed.system_id}")
            return await self._answer(request, operation, signed)
        except LgspError as exc:
            if exc.retryable:  # e.g. the store or broker down: the SDK's retry must not be a replay
                await self._auth.release(signed, operation)
            raise

    async def _answer(
        self, request: web.Request, operation: Operation, signed: SignedRequest
    ) -> web.Response:
        caller = self._caller(request, signed.system_id)
        if operation is Operation.SEND_EDOC:
            return answer(ok_answer(DocId=await self._send(request, signed, caller)))
        if operation is Operation.GET_AGENCIES_LIST:
            return answer(
                ok_answer(
                    data=[_agency(p).to_json() for p in request.app[DIRECTORY].current if p.enabled]
                )
            )
        delivery_log = request.app[DELIVERY_LOG]
        if operation is Operation.GET_RECEIVED_EDOC_LIST:
            items = await _mailbox(delivery_log, caller.organ_id, message_type(signed))
            return answer(ok_answer(data=[item.to_json() for item in items]))
        if operation is Operation.GET_SENT_EDOC_LIST:  # gateway/national/sent_list.py
            sent = await sent_items(delivery_log, caller.organ_id, message_type(signed))
            return answer(ok_answer(data=[item.to_json() for item in sent]))
        if operation is Operation.GET_EDOC:
            data = await _package(
                delivery_log,
                caller.organ_id,
                required(signed, Param.DOC_ID.value),
                datetime.now(UTC) - self._acked_grace,
            )
            return answer(ok_answer(data=base64.b64encode(data).decode("ascii")))
        await _acknowledge(delivery_log, caller.organ_id, signed)
        return answer(ok_answer())

    def _check_network(self, request: web.Request, signed: SignedRequest) -> None:
        system = self.systems.get(signed.system_id)
        if system is not None and not system.allows(request.remote):
            raise ForbiddenError(
                f"system {signed.system_id} may not call from {request.remote}", code="acl.network"
            )

    def _caller(self, request: web.Request, system_id: str) -> Participant:
        system = self.systems.get(system_id)
        participant = request.app[DIRECTORY].current.get(system.organ_id) if system else None
        if participant is None or not participant.enabled:
            raise AuthError(
                f"system {system_id} has no enabled participant", code="auth.participant_disabled"
            )
        return participant

    async def _send(self, request: web.Request, signed: SignedRequest, caller: Participant) -> str:
        app = request.app
        if app[LIFECYCLE].draining:
            raise UnavailableError(
                "the gateway is shutting down; retry shortly", code="unavailable.shutting_down"
            )
        started = time.perf_counter()
        kind = message_type(signed)
        try:
            data = await read_file_doc(request, signed)
            fmt = sniff_format(data)
            if fmt is PackageFormat.JSON:
                raise PackageError(
                    "send the signed edXML (or a JWS), not JSON", code="national.unsigned_package"
                )
            outcome = await app[INTAKE].submit(caller, data, fmt)
        except LgspError as exc:
            app[METRICS].rejected.labels(exc.code).inc()
            raise
        document = outcome.document
        app[METRICS].accepted.labels(document.kind.value).inc()
        app[METRICS].accept_latency_s.observe(time.perf_counter() - started)
        to = parse_to(signed.get(Param.TO.value))
        recipients = {d.recipient for d in outcome.deliveries}
        if _KIND[kind] is not document.kind or (to and set(to) != recipients):
            log.warning(
                "southbound_header_mismatch",
                document=document.id,
                messagetype=kind.value,
                kind=document.kind.value,
                to=list(to),
            )
        return document.id


async def _mailbox(
    delivery_log: DeliveryLog, organ_id: str, kind: MessageType
) -> list[ReceivedItem]:
    items = await delivery_log.inbox(organ_id, limit=LIST_LIMIT)
    return [
        ReceivedItem(
            doc_id=item.delivery.id,
            message_type=kind.value,
            from_=item.document.sender,
            to=organ_id,
            created_time=item.document.received_at.isoformat(),
            updated_time=(item.delivery.delivered_at or item.delivery.updated_at).isoformat(),
            status="pending",
            status_desc=item.document.subject or "",
        )
        for item in items
        if item.document.kind is _KIND[kind]
    ]


async def _package(
    delivery_log: DeliveryLog, organ_id: str, doc_id: str, acked_since: datetime
) -> bytes:
    """The package of ``organ_id``'s mailbox item ``doc_id``, unless acknowledged before
    ``acked_since``; anything else is the same 404 (no telling whose it is)."""
    delivery = await delivery_log.get_delivery(doc_id)
    if (
        delivery is None
        or delivery.recipient != organ_id
        or delivery.method is not DeliveryMethod.MAILBOX
        or delivery.state is not DeliveryState.DELIVERED
        or (delivery.acked_at is not None and delivery.acked_at < acked_since)
    ):
        raise NotFoundError(f"no document {doc_id} for you", code="national.no_such_doc")
    view = await delivery_log.get_document(delivery.document)
    assert view is not None  # a delivery always has its document (foreign key)
    return await delivery_log.get_package(view.document.package_sha256)


async def _acknowledge(delivery_log: DeliveryLog, organ_id: str, signed: SignedRequest) -> None:
    doc_id = required(signed, Param.ACK_DOC_ID.value)
    status = required(signed, Param.STATUS.value).strip().lower()
    if status not in (AckStatus.DONE, AckStatus.FAIL):
        raise PackageError(
            f"status must be done or fail, not {status!r}", code="national.bad_status"
        )
    try:
        if status == AckStatus.DONE:
            await delivery_log.ack_inbox(organ_id, doc_id)
        else:
            await delivery_log.ack_inbox(
                organ_id,
                doc_id,
                outcome="failed",
                reason="updateStatus fail from the recipient's system",
            )
    except NotFoundError as exc:
        raise NotFoundError(f"no document {doc_id} for you", code="national.no_such_doc") from exc


def _agency(participant: Participant) -> Agency:
    return Agency(
        code=participant.organ_id,
        name=participant.name,
        pcode=participant.parent or "",
        id=participant.organ_id,
    )


_SOUTHBOUND = web.AppKey("southbound", Southbound)


def setup_southbound(app: web.Application) -> None:
    """Serve the protocol under ``/XrdAdapter/adapter/<operation>`` (needs ``app[SETTINGS]``)."""
    conf = app[SETTINGS].southbound
    replays = StoredReplayMemory(
        lambda: app[DELIVERY_LOG].engines, retention_s=conf.replay_retention_s
    )
    southbound = Southbound(
        LocalSystems(conf.systems_path, conf.timestamp_window_s),
        replays,
        acked_grace_s=conf.acked_grace_s,
    )
    app[_SOUTHBOUND] = southbound
    app.router.add_post(OPERATION_ROUTE, protocol_handler(SUPPORTED, southbound.handle))
