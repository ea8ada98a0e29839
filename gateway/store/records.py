"""Frozen records and str enums of the delivery log: documents, deliveries, events, filters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from gateway.core.errors import LgspError
from gateway.core.methods import DeliveryMethod
from gateway.edxml.formats import PackageFormat
from gateway.edxml.model import BusinessDocType, PackageKind, StatusCode


class DeliveryState(StrEnum):
    """Where one delivery (one document to one recipient) stands."""

    ACCEPTED = "accepted"  # recorded; not yet confirmed on the broker (the outbox)
    QUEUED = "queued"  # the broker confirmed the message
    DELIVERED = "delivered"  # the adapter handed it over (for a mailbox: stored in the mailbox)
    RETRYING = "retrying"  # an attempt failed; another is scheduled
    FAILED = "failed"  # refused for good by the recipient side
    DEAD_LETTERED = "dead_lettered"  # retries exhausted; waits for an admin to replay it


class EventKind(StrEnum):
    """What happened, in the append-only event trail of a document."""

    RECEIVED = "received"
    PUBLISHED = "published"
    REPUBLISHED = "republished"
    ATTEMPT = "attempt"
    DELIVERED = "delivered"
    RETRY_SCHEDULED = "retry_scheduled"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"
    BUSINESS_STATUS = "business_status"
    INBOX_ACKED = "inbox_acked"
    REPLAYED = "replayed"


@dataclass(frozen=True, slots=True, kw_only=True)
class NewDocument:
    """What intake knows about an accepted package, before the log gives it an id.

    ``dedup_key`` is chosen by intake (e.g. sender + DocumentId + BussinessDocType): the same key
    with the same package bytes is a harmless resubmission, with other bytes a conflict.
    """

    dedup_key: str
    kind: PackageKind
    sender: str
    document_id: str | None
    format: PackageFormat
    signer_fingerprint: str
    signer_subject: str
    algorithm: str
    caller: str
    received_at: datetime  # timezone-aware
    business_doc_type: BusinessDocType | None = None
    status_code: StatusCode | None = None
    subject: str | None = None
    in_reply_to: str | None = None  # documents.id of the original, for status packages


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentRecord(NewDocument):
    """A recorded document: the intake fields plus its id and its stored package."""

    id: str
    package_sha256: str
    size_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryRecord:
    """One document on its way to one recipient."""

    id: str
    document: str  # documents.id
    recipient: str  # OrganId
    method: DeliveryMethod
    state: DeliveryState
    attempts: int
    last_error: str | None  # the adapter's message (remote text, URL): for admins only
    business_status: StatusCode | None
    business_status_at: datetime | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    acked_at: datetime | None
    last_error_code: str | None = None  # the stable code of last_error, for every audience


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRecord:
    """One line of the append-only trail; ``id`` grows with every event written."""

    id: int
    document: str
    delivery: str | None
    at: datetime
    kind: EventKind
    outcome: str
    detail: Mapping[str, object]
    actor: str


@dataclass(frozen=True, slots=True)
class DeliveryItem:
    """A delivery with its document: what the outbox relay, a mailbox or a replay works on."""

    delivery: DeliveryRecord
    document: DocumentRecord


@dataclass(frozen=True, slots=True)
class DocumentView:
    """A document with all its deliveries and its whole event trail (oldest first)."""

    document: DocumentRecord
    deliveries: tuple[DeliveryRecord, ...]
    events: tuple[EventRecord, ...]


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """``created`` is False when the same package had already been recorded under its key."""

    created: bool
    document: DocumentRecord
    deliveries: tuple[DeliveryRecord, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentFilter:
    """Admin search over documents, newest first. Delivery criteria must hold for one delivery."""

    sender: str | None = None
    recipient: str | None = None
    document_id: str | None = None
    kind: PackageKind | None = None
    state: DeliveryState | None = None
    business_status: StatusCode | None = None
    since: datetime | None = None  # received_at >= since
    until: datetime | None = None  # received_at < until
    text: str | None = None  # in the subject, ignoring case and Vietnamese diacritics
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusAnswer:
    """A status package's reference to the document it answers (its sender and DocumentId)."""

    organ_id: str
    document_id: str
    code: StatusCode


@dataclass(frozen=True, slots=True)
class NationalDoc:
    """The national platform's docId a package was fetched under: its ``national_inbox`` row
    (outcome ``done``) is written in the intake's own transaction."""

    doc_id: str
    message_type: str  # edoc | status


@dataclass(frozen=True, slots=True)
class IntakeWrite:
    """One intake to record: its document, its bytes, one route per recipient."""

    new: NewDocument  # in_reply_to is filled in here when ``answers`` finds the original
    package: bytes = field(repr=False)  # up to megabytes: never in a log line or a repr
    sha256: str
    routes: tuple[tuple[str, DeliveryMethod], ...]
    answers: StatusAnswer | None = None
    national: NationalDoc | None = None


Outcome = IntakeResult | LgspError  # a request's own refusal: conflict, not_a_recipient
