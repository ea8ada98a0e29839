"""Intake: verify a package, authorise the caller, route, record durably, publish, then receipt.

The order is the contract (each step refuses with its own error code):

    1. verify        signature, trust, signer-to-sender binding  (signature.*, trust.*, binding.*)
    2. speak-for     the caller may submit for the sender            (acl.cannot_speak_for, 403)
    3. route         every recipient is known, allowed, and its delivery method enabled here
                                                          (acl.*, routing.no_adapter, 422 listing
                                                           them all)
    4. record        package + one delivery per recipient, deduplicated (200 same / 409 other bytes,
                                                          with a hint naming the DocumentId)
    5. publish       one confirmed message per delivery             (503 if unconfirmed; the outbox
                                                                     relay publishes it later)
    Concurrent requests share step 4's transaction (the log's group commit) and step 5's
    pipelined publish; each hears only its own outcome.
    6. receipt       a JWS signed by the gateway

Status packages go to the sender of the document they answer and set that recipient's business
status in the log; one that answers a known document comes only from one of its recipients
(``acl.not_a_recipient``, 403). Nothing here knows HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog

from gateway.core.directory import DirectoryHolder, Participant, ParticipantKind
from gateway.core.errors import ConflictError, ForbiddenError
from gateway.core.methods import DeliveryMethod
from gateway.core.metrics import Metrics
from gateway.dispatch.publishing import Dispatcher
from gateway.edxml.formats import PackageFormat
from gateway.edxml.model import DocumentPackage, StatusPackage
from gateway.intake.receipts import Receipt, ReceiptSigner
from gateway.intake.routing import Refusal, RefusalReason, route
from gateway.intake.routing import may_speak_for as caller_may_speak_for
from gateway.signatures.verify import VerifiedDocument, Verifier
from gateway.store import DeliveryLog
from gateway.store.records import (
    DeliveryRecord,
    DeliveryState,
    DocumentRecord,
    IntakeResult,
    NationalDoc,
    NewDocument,
    StatusAnswer,
)

log = structlog.get_logger(__name__)

VERIFY_IN_THREAD_BYTES = 64 * 1024  # verify larger packages off the event loop


class RecipientsRefusedError(ForbiddenError):
    """Some recipients are unknown, disabled or denied by the ACL: the whole package is refused."""

    http_status = 422
    default_code = "acl.recipients_refused"

    def __init__(self, refusals: Sequence[Refusal]) -> None:
        listed = ", ".join(f"{r.organ_id} ({r.reason.value})" for r in refusals)
        # Only dead routes (no enabled delivery for the method): the code says so directly.
        dead = all(r.reason is RefusalReason.NO_ADAPTER for r in refusals)
        message = "; ".join(r.detail for r in refusals) if dead else f"refused recipients: {listed}"
        super().__init__(message, code="routing.no_adapter" if dead else None)
        self.refusals = tuple(refusals)

    def to_problem(self) -> dict[str, object]:
        problem = super().to_problem()
        problem["recipients"] = [
            {"organ_id": r.organ_id, "reason": r.reason.value, "code": r.code, "detail": r.detail}
            for r in self.refusals
        ]
        return problem


class DuplicateDocumentError(ConflictError):
    """The sender already sent this DocumentId with other content (409): it needs a new number."""

    default_code = "conflict.duplicate_document"

    def __init__(self, sender: str, document_id: str | None, accepted_as: str | None) -> None:
        where = f" (accepted as document {accepted_as})" if accepted_as else ""
        super().__init__(
            f"{sender} already sent DocumentId {document_id or '-'} with other content{where}"
        )
        self.document_id = document_id
        self.accepted_as = accepted_as
        self.hint = (
            "give this document a new number (CodeNumber; `lgsp new-document` picks a new one "
            "unless --number is given): a DocumentId is the sender, the date and the "
            "number/notation. Resending the very same bytes is not a conflict"
        )

    def to_problem(self) -> dict[str, object]:
        problem = super().to_problem()
        problem["document_id"] = self.document_id
        problem["hint"] = self.hint
        if self.accepted_as:
            problem["accepted_as"] = self.accepted_as
        return problem


@dataclass(frozen=True, slots=True)
class IntakeOutcome:
    """What the caller is told: the record, its deliveries, whether it is new, and the receipt."""

    created: bool
    document: DocumentRecord
    deliveries: tuple[DeliveryRecord, ...]
    receipt: str


class Intake:
    """The intake pipeline over the verifier, the directory, the delivery log and dispatch."""

    def __init__(
        self,
        *,
        verifier: Verifier,
        directory: DirectoryHolder,
        delivery_log: DeliveryLog,
        dispatcher: Dispatcher,
        receipts: ReceiptSigner,
        metrics: Metrics,
        national_fallback: bool = False,
        delivery_methods: Collection[DeliveryMethod] | None = None,
    ) -> None:
        self._verifier = verifier
        self._national_fallback = national_fallback  # unknown recipients go to the national
        self._methods = delivery_methods  # None: every method has a delivery (no dead routes)
        self._directory = directory
        self._log = delivery_log
        self._dispatcher = dispatcher
        self._receipts = receipts
        self._metrics = metrics

    async def submit(
        self,
        caller: Participant,
        body: bytes,
        fmt: PackageFormat,
        *,
        national: NationalDoc | None = None,
    ) -> IntakeOutcome:
        """``national``: the platform docId a polled package came under, recorded with it."""
        verified = await self._verify(body, fmt)
        if not caller_may_speak_for(caller, verified.sender):
            raise ForbiddenError(
                f"{caller.organ_id} may not submit packages for {verified.sender}",
                code="acl.cannot_speak_for",
            )
        result = await self._record(caller, verified, fmt, body, national)
        structlog.contextvars.bind_contextvars(document=result.document.id)
        log.info(
            "document_recorded",
            created=result.created,
            kind=result.document.kind.value,
            sender=result.document.sender,
            recipients=len(result.deliveries),
        )
        deliveries = result.deliveries
        if result.created:  # (a status's business status was set in the same transaction)
            await self._dispatcher.publish_accepted(result.document, deliveries, body)
            deliveries = tuple(_queued(d) for d in deliveries)
        return IntakeOutcome(
            created=result.created,
            document=result.document,
            deliveries=deliveries,
            receipt=self._receipt(result.document),
        )

    async def _verify(self, body: bytes, fmt: PackageFormat) -> VerifiedDocument:
        verifier = self._verifier
        verify = verifier.verify_xml if fmt is PackageFormat.XML else verifier.verify_jws
        started = asyncio.get_running_loop().time()
        if len(body) > VERIFY_IN_THREAD_BYTES:
            verified = await asyncio.to_thread(verify, body)
        else:
            verified = verify(body)
        elapsed_s = asyncio.get_running_loop().time() - started
        self._metrics.verify_latency_s.labels(fmt.value).observe(elapsed_s)
        return verified

    async def _record(
        self,
        caller: Participant,
        verified: VerifiedDocument,
        fmt: PackageFormat,
        body: bytes,
        national: NationalDoc | None = None,
    ) -> IntakeResult:
        """Log the bytes as received (a JWS stays the token), so every reader gets the same.

        A status package names the document it answers: the log finds it (``in_reply_to``),
        refuses the status unless its sender is a recipient of that document
        (``acl.not_a_recipient``), and sets that delivery's business status, all in the intake's
        transaction.
        """
        package = verified.package
        decision = route(
            package.sender,
            package.recipients,
            self._directory.current,
            national_fallback=self._national_fallback,
            methods=self._methods,
        )
        if not decision.ok:
            raise RecipientsRefusedError(decision.refusals)
        new = _new_document(caller, verified, fmt)
        # What the national platform delivered here is not sent back to it (it reaches the
        # other recipients itself): only the local recipients get deliveries.
        from_national = caller.kind is ParticipantKind.NATIONAL
        routes = [
            (r.organ_id, r.method.value)
            for r in decision.routes
            if not (from_national and r.method is DeliveryMethod.NATIONAL)
        ]
        try:
            return await self._log.record_intake(
                new, body, routes, answers=_answers(package), national=national
            )
        except ConflictError as exc:
            if exc.code != DuplicateDocumentError.default_code:
                raise
            known = (
                await self._log.find_document(new.sender, new.document_id, new.kind)
                if new.document_id
                else None
            )
            raise DuplicateDocumentError(
                new.sender, new.document_id, known.id if known else None
            ) from exc

    def _receipt(self, document: DocumentRecord) -> str:
        return self._receipts.sign(Receipt.of(document))


def _queued(delivery: DeliveryRecord) -> DeliveryRecord:
    """The state the log moved a just-published delivery to."""
    if delivery.state is DeliveryState.ACCEPTED:
        return replace(delivery, state=DeliveryState.QUEUED)
    return delivery


def dedup_key(verified: VerifiedDocument) -> str:
    """Same sender and DocumentId (and kind of business) is the same submission."""
    package = verified.package
    doc_id = package.document_id or hashlib.sha256(verified.signed_bytes).hexdigest()
    if isinstance(package, StatusPackage):
        header = package.header
        return f"status|{package.sender}|{doc_id}|{header.status_code.value}|{header.timestamp}"
    business = package.business_doc_type
    return f"document|{package.sender}|{doc_id}|{business.value if business else '-'}"


def _answers(package: DocumentPackage | StatusPackage) -> StatusAnswer | None:
    """What a status package answers (the original's sender and DocumentId) and its code."""
    if not isinstance(package, StatusPackage):
        return None
    ref = package.header.response_for
    if not ref.organ_id or not ref.document_id:
        return None
    return StatusAnswer(
        organ_id=ref.organ_id, document_id=ref.document_id, code=package.header.status_code
    )


def _new_document(
    caller: Participant, verified: VerifiedDocument, fmt: PackageFormat
) -> NewDocument:
    package = verified.package
    document = package if isinstance(package, DocumentPackage) else None
    status = package if isinstance(package, StatusPackage) else None
    return NewDocument(
        dedup_key=dedup_key(verified),
        kind=package.kind,
        sender=package.sender,
        document_id=package.document_id,
        format=fmt,
        signer_fingerprint=verified.certificate_fingerprint,
        signer_subject=verified.signer_subject,
        algorithm=verified.algorithm,
        caller=caller.organ_id,
        received_at=datetime.now(UTC),
        business_doc_type=document.business_doc_type if document else None,
        status_code=status.header.status_code if status else None,
        subject=document.header.subject if document else None,
    )
