"""National delivery: relay a package to a recipient outside the province through ``sendEdoc``.

The package goes as received (the sender's signed bytes), with ``to`` = the one recipient of the
delivery, ``from`` = the package's sender and ``messagetype`` ``status`` for status packages,
``edoc`` otherwise; the client adds the ``hash-file`` header and the HMAC signature.

Outcome: the platform's ``DocId`` is the delivery's detail. Failures:

- unreachable, timeout, 5xx/429, an unusable answer, a FAIL whose code is ``unavailable.*``, or
  our credentials refused (an operator can fix the secret without losing the deliveries)
  -> ``TransientDeliveryError`` (retried);
- any other FAIL answer (unknown recipient, bad package…) and packages the platform cannot carry
  (not edXML, unreadable) -> ``PermanentDeliveryError`` with the platform's words.

A retried ``sendEdoc`` whose first answer was lost reaches the recipient twice; the receiving
gateway's intake deduplicates it (same sender, DocumentId and bytes), so it is recorded once.
"""

from __future__ import annotations

from adapters.base import (
    Adapter,
    DeliveryOutcome,
    OutboundDelivery,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from adapters.national.client import NationalClient, PlatformRefusedError
from adapters.national.protocol import MessageType
from gateway.core.errors import AuthError, InputError, UnavailableError
from gateway.edxml.model import PackageKind
from gateway.edxml.peek import peek_package

XML_TYPES = frozenset({"application/xml", "text/xml", "application/edxml+xml"})
AUTH_RETRY_AFTER_S = 60.0


class NationalAdapter(Adapter):
    """Delivers through the national platform with ``client`` (closed by :meth:`aclose`)."""

    def __init__(self, client: NationalClient) -> None:
        self._client = client

    async def deliver(self, delivery: OutboundDelivery) -> DeliveryOutcome:
        sender, messagetype = _describe(delivery)
        try:
            doc_id = await self._client.send_edoc(
                delivery.package, from_=sender, to=[delivery.organ_id], messagetype=messagetype
            )
        except PlatformRefusedError as exc:
            if exc.error_code.startswith("unavailable."):
                raise TransientDeliveryError(
                    exc.message,
                    code="delivery.national_unavailable",
                    status_code=exc.answer_http_status,
                ) from exc
            raise PermanentDeliveryError(
                exc.message, code="delivery.national_refused", status_code=exc.answer_http_status
            ) from exc
        except AuthError as exc:
            raise TransientDeliveryError(
                exc.message, code="delivery.national_auth", retry_after_s=AUTH_RETRY_AFTER_S
            ) from exc
        except UnavailableError as exc:
            raise TransientDeliveryError(exc.message, code="delivery.national_unavailable") from exc
        return DeliveryOutcome(True, f"national DocId {doc_id}")

    async def aclose(self) -> None:
        await self._client.aclose()


def _describe(delivery: OutboundDelivery) -> tuple[str, MessageType]:
    """The package's sender and its ``messagetype``; packages the platform cannot carry: refused."""
    media_type = delivery.content_type.split(";", 1)[0].strip().lower()
    if media_type not in XML_TYPES:
        raise PermanentDeliveryError(
            f"the national platform carries edXML only, not {media_type}",
            code="delivery.national_format",
        )
    try:
        headline = peek_package(delivery.package)  # a stored, verified package: its header only
    except InputError as exc:
        raise PermanentDeliveryError(
            f"unreadable package: {exc}", code="delivery.national_format"
        ) from exc
    kind = MessageType.STATUS if headline.kind is PackageKind.STATUS else MessageType.EDOC
    return headline.sender, kind
