"""The broker message for one delivery, and its exact AMQP form (properties + ``x-lgsp-*`` headers).

One message per (document, recipient). Small packages travel in the body; large ones travel as a
claim check: an empty body and the package's SHA-256 in ``x-lgsp-claim-check-sha256``, the worker
reading the bytes from the store. ``x-lgsp-attempts-seen`` is the delivery's recorded attempt count
when the message was made (0 at intake): the worker acknowledges without sending a copy whose
count is no longer the log's (a stale copy: another copy's attempt was recorded since), so a
delivery has one retry chain; a message without it (an older publisher's) counts as current.
``from_amqp`` refuses anything that does not hold these rules
with ``InputError`` code ``broker.malformed_message`` (the worker dead-letters such messages).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractMessage, DeliveryMode, HeadersType
from aiormq import spec

from gateway.broker.properties import Properties
from gateway.core.errors import InputError
from gateway.core.methods import DeliveryMethod

METHODS: tuple[str, ...] = tuple(m.value for m in DeliveryMethod)
DEFAULT_CONTENT_TYPE = "application/xml"
PERSISTENT = int(DeliveryMode.PERSISTENT)

H_DOCUMENT_PK = "x-lgsp-document-pk"
H_RECIPIENT = "x-lgsp-recipient"
H_METHOD = "x-lgsp-method"
H_ATTEMPT = "x-lgsp-attempt"
H_ATTEMPTS_SEEN = "x-lgsp-attempts-seen"
H_CLAIM_CHECK = "x-lgsp-claim-check-sha256"
H_PUBLISHED_AT = "x-lgsp-published-at"
H_DEAD_REASON = "x-lgsp-dead-reason"
H_ATTEMPTS = "x-lgsp-attempts"
H_DEAD_AT = "x-lgsp-dead-at"

MALFORMED = "broker.malformed_message"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _malformed(message: str) -> InputError:
    return InputError(message, code=MALFORMED)


@dataclass(frozen=True, slots=True)
class DeliveryMessage:
    """One delivery to one recipient by one method; ``attempt`` counts from 1.

    ``attempts_seen``: the delivery's ``attempts`` in the log when this message was made (None:
    not known, as from a publisher older than the field; the worker then takes it as current).
    """

    delivery_id: str
    document_pk: str
    recipient: str  # the recipient's OrganId, e.g. 000.00.01.H56
    method: str  # one of METHODS
    attempt: int = 1
    body: bytes | None = field(default=None, repr=False)
    claim_check_sha256: str | None = None
    content_type: str = DEFAULT_CONTENT_TYPE
    published_at: datetime = field(default_factory=_utc_now)
    attempts_seen: int | None = None

    def __post_init__(self) -> None:
        problem = _problem_of(self)
        if problem:
            raise _malformed(problem)

    @property
    def routing_key(self) -> str:
        """``<method>.<OrganId>`` on the deliveries exchange (OrganIds contain dots)."""
        return f"{self.method}.{self.recipient}"

    def amqp_headers(self) -> HeadersType:
        """The ``x-lgsp-*`` headers (the claim check only when there is one)."""
        headers: HeadersType = {
            H_DOCUMENT_PK: self.document_pk,
            H_RECIPIENT: self.recipient,
            H_METHOD: self.method,
            H_ATTEMPT: self.attempt,
            H_PUBLISHED_AT: self.published_at.isoformat(),
        }
        if self.claim_check_sha256 is not None:
            headers[H_CLAIM_CHECK] = self.claim_check_sha256
        if self.attempts_seen is not None:
            headers[H_ATTEMPTS_SEEN] = self.attempts_seen
        return headers

    def amqp_properties(self) -> spec.Basic.Properties:
        """The AMQP properties of ``to_amqp()``, built without an aio-pika message (the
        broker's publishing path): persistent, ``message_id`` = delivery_id, headers. They
        marshal to pamqp's bytes without pamqp's generic walk (``broker.properties``)."""
        return Properties(
            content_type=self.content_type,
            delivery_mode=PERSISTENT,
            message_id=self.delivery_id,
            timestamp=self.published_at,
            headers=self.amqp_headers(),
        )

    def to_amqp(self) -> aio_pika.Message:
        """The persistent AMQP message as aio-pika builds it (``amqp_properties``' reference)."""
        return aio_pika.Message(
            self.body or b"",
            headers=self.amqp_headers(),
            content_type=self.content_type,
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=self.delivery_id,
            timestamp=self.published_at,
        )

    @classmethod
    def from_amqp(cls, incoming: AbstractMessage) -> DeliveryMessage:
        """Read a received message; ``InputError`` (``broker.malformed_message``) if invalid."""
        headers = incoming.headers or {}
        claim = _optional_text(headers, H_CLAIM_CHECK)
        body = bytes(incoming.body)
        return cls(
            delivery_id=incoming.message_id or "",
            document_pk=_text(headers, H_DOCUMENT_PK),
            recipient=_text(headers, H_RECIPIENT),
            method=_text(headers, H_METHOD),
            attempt=_integer(headers, H_ATTEMPT),
            body=body if claim is None else (body or None),
            claim_check_sha256=claim,
            content_type=incoming.content_type or DEFAULT_CONTENT_TYPE,
            published_at=_timestamp(headers, H_PUBLISHED_AT),
            attempts_seen=_optional_integer(headers, H_ATTEMPTS_SEEN),
        )


def _problem_of(msg: DeliveryMessage) -> str | None:
    """Why this message breaks the rules, or None (the first rule broken; each reason is
    formatted only for a message that breaks its rule)."""
    return _identity_problem(msg) or _count_problem(msg) or _content_problem(msg)


def _identity_problem(msg: DeliveryMessage) -> str | None:
    if not msg.delivery_id:
        return "delivery_id (message_id) is empty"
    if not msg.document_pk:
        return "document_pk is empty"
    if not msg.recipient:
        return "recipient is empty"
    if msg.method not in METHODS:
        return f"method {msg.method!r} is not one of {METHODS}"
    return None


def _count_problem(msg: DeliveryMessage) -> str | None:
    if isinstance(msg.attempt, bool) or msg.attempt < 1:
        return f"attempt {msg.attempt!r} < 1"
    seen = msg.attempts_seen
    if seen is not None and (isinstance(seen, bool) or seen < 0):
        return f"attempts_seen {seen!r} < 0"
    return None


def _content_problem(msg: DeliveryMessage) -> str | None:
    claim = msg.claim_check_sha256
    if msg.published_at.tzinfo is None:
        return "published_at has no timezone"
    if claim is None:
        return None if msg.body else "the body is empty and there is no claim check"
    if msg.body is not None:
        return "a claim-check message must have an empty body"
    if not _SHA256_HEX.fullmatch(claim):
        return "claim check is not a lowercase hex SHA-256"
    return None


def _optional_text(headers: Mapping[str, object], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _malformed(f"header {name} is not UTF-8") from exc
    if not isinstance(value, str):
        raise _malformed(f"header {name} is not text")
    return value


def _text(headers: Mapping[str, object], name: str) -> str:
    value = _optional_text(headers, name)
    if value is None:
        raise _malformed(f"header {name} is missing")
    return value


def _integer(headers: Mapping[str, object], name: str) -> int:
    value = _optional_integer(headers, name)
    if value is None:
        raise _malformed(f"header {name} is missing or not an integer")
    return value


def _optional_integer(headers: Mapping[str, object], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _malformed(f"header {name} is not an integer")
    return value


def _timestamp(headers: Mapping[str, object], name: str) -> datetime:
    text = _text(headers, name)
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise _malformed(f"header {name} is not an ISO 8601 timestamp") from exc
