"""HTTP push delivery: POST the package to the recipient's URL, signed by the gateway (JWS).

Every request carries ``X-LGSP-Signature``, a compact JWS with detached payload (RFC 7515
Appendix F): the payload is the request body itself, so the signature covers exactly the bytes
delivered (RS256/ES256 hash them with SHA-256), and the protected header carries the delivery id
(``lgsp-delivery-id``) and the signing time (``iat``), both marked ``crit``. The algorithm follows
the gateway key: ES256 for a P-256 key, RS256 for an RSA key. The header names the
gateway certificate by ``x5t#S256``; receivers pin that certificate and check the signature with
:func:`verify_push_signature` (or any JOSE library that supports detached content).

Outcome: 2xx delivered; 408, 429, 5xx, timeouts and connection errors are transient (429/503
``Retry-After`` is honoured); other statuses (4xx, and 3xx: redirects are not followed) are
permanent, with the status and the start of the response body as the reason.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
import pybase64
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.registry import HeaderParameter
from yarl import URL

from adapters.base import (
    Adapter,
    DeliveryOutcome,
    OutboundDelivery,
    PermanentDeliveryError,
    TransientDeliveryError,
    request_body,
)
from adapters.push_targets import TargetPolicy, guarded_session
from gateway.core.errors import SignatureError
from gateway.signatures.jws import PrivateKey, alg_for_key, public_jwk, signature_of_digest

SigningKey = PrivateKey  # the gateway identity's key: RSA (RS256) or P-256 (ES256)
SIGNATURE_HEADER = "X-LGSP-Signature"
DELIVERY_ID_HEADER = "X-LGSP-Delivery-Id"
DOCUMENT_ID_HEADER = "X-LGSP-Document-Id"
ATTEMPT_HEADER = "X-LGSP-Attempt"
DELIVERY_ID_PARAM = "lgsp-delivery-id"
ALGORITHMS = ("RS256", "ES256")
MAX_REASON_CHARS = 300
SIGN_IN_THREAD_BYTES = 1024 * 1024  # sign larger bodies off the event loop
MAX_TARGETS_KEPT = 4096  # parsed push URLs kept by an adapter
_REGISTRY = jws.JWSRegistry(
    header_registry={
        "iat": HeaderParameter("signing time, seconds since the epoch", "int", required=True),
        DELIVERY_ID_PARAM: HeaderParameter("the LGSP delivery id", "str", required=True),
    },
    algorithms=list(ALGORITHMS),
)


@dataclass(frozen=True, slots=True)
class PushSignature:
    """What a verified ``X-LGSP-Signature`` says."""

    delivery_id: str
    issued_at: datetime
    algorithm: str


def certificate_thumbprint(certificate: x509.Certificate) -> str:
    """``x5t#S256``: base64url (unpadded) SHA-256 of the certificate's DER."""
    digest = certificate.fingerprint(hashes.SHA256())
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class PushSigner:
    """The gateway's key, prepared once: its algorithm (from the key type: RS256 for RSA, ES256
    for P-256), and the thumbprint of its certificate, which receivers pin.

    The compact JWS is built here with ``cryptography`` (RFC 7515 section 7.1 and RFC 7518
    sections 3.3/3.4: ``BASE64URL(header) '.' BASE64URL(payload)`` signed, an ES256 signature
    as R || S of 32 bytes each), not through a JOSE library: the signing input is hashed in
    pieces, so the payload's base64 is made once and never copied again (most of a large
    package's cost), by ``pybase64`` (SIMD; the standard library's encoder took 0.8 ms of a
    361 KB package's 2.7 ms). ``verify_push_signature`` checks it with joserfc, as receivers do,
    and the tests hold ``pybase64`` to the standard library's encoding."""

    algorithm: str
    key: SigningKey = field(repr=False)
    thumbprint: str

    @classmethod
    def of(cls, key: SigningKey, certificate: x509.Certificate) -> PushSigner:
        """Raises ``SignatureError`` (``jws.unsupported_algorithm``) for a key of another curve."""
        return cls(alg_for_key(key), key, certificate_thumbprint(certificate))

    def sign(self, body: bytes, delivery_id: str, *, now: float | None = None) -> str:
        """The ``X-LGSP-Signature`` value for ``body``: compact JWS, payload detached."""
        protected = {
            "alg": self.algorithm,
            "x5t#S256": self.thumbprint,
            "iat": int(time.time() if now is None else now),
            DELIVERY_ID_PARAM: delivery_id,
            "crit": ["iat", DELIVERY_ID_PARAM],
        }
        header = _b64url(json.dumps(protected, separators=(",", ":")).encode())
        payload = pybase64.urlsafe_b64encode(body)
        digest = hashlib.sha256(header)
        digest.update(b".")
        digest.update(memoryview(payload)[: len(payload) - payload[-2:].count(b"=")])
        signature = signature_of_digest(self.key, digest.digest())
        return f"{header.decode('ascii')}..{_b64url(signature).decode()}"


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def sign_push(
    body: bytes,
    delivery_id: str,
    key: SigningKey,
    certificate: x509.Certificate,
    *,
    now: float | None = None,
) -> str:
    """The ``X-LGSP-Signature`` value for ``body``, signed with ``key``."""
    return PushSigner.of(key, certificate).sign(body, delivery_id, now=now)


def verify_push_signature(
    headers: Mapping[str, str],
    body: bytes,
    trusted_cert: x509.Certificate,
    *,
    max_age_s: float = 300.0,
    now: float | None = None,
) -> PushSignature:
    """Check a pushed request came from the gateway holding ``trusted_cert``, unchanged and fresh.

    Raises ``SignatureError``: ``jws.malformed`` (missing or unreadable), ``jws.unknown_key``
    (signed with another certificate), ``jws.invalid`` (body or header changed),
    ``jws.delivery_mismatch`` (the delivery id header differs), ``jws.stale`` (too old or new).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    token = lowered.get(SIGNATURE_HEADER.lower())
    if not token:
        raise SignatureError(f"no {SIGNATURE_HEADER} header", code="jws.malformed")
    if not isinstance(trusted_cert.public_key(), rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise SignatureError("the trusted certificate has no RSA or EC key", code="jws.unknown_key")
    try:
        header = jws.extract_compact(token.encode("ascii"), None, _REGISTRY).headers()
    except (JoseError, ValueError, UnicodeError) as exc:
        raise SignatureError(
            f"{SIGNATURE_HEADER} is unreadable: {exc}", code="jws.malformed"
        ) from exc
    if header.get("x5t#S256") != certificate_thumbprint(trusted_cert):
        raise SignatureError("signed with another certificate", code="jws.unknown_key")
    jwk = public_jwk(trusted_cert, str(header.get("alg")))  # jws.invalid if the types differ
    try:
        jws.deserialize_compact(token, jwk, registry=_REGISTRY, payload=body)
    except (JoseError, ValueError) as exc:
        raise SignatureError(
            f"{SIGNATURE_HEADER} does not verify: {exc}", code="jws.invalid"
        ) from exc
    return checked_claims(header, lowered, max_age_s, time.time() if now is None else now)


def checked_claims(
    header: Mapping[str, object], lowered: Mapping[str, str], max_age_s: float, now: float
) -> PushSignature:
    """The signed delivery id and time of a verified push's JWS header, checked against the
    request's ``X-LGSP-Delivery-Id`` header (``lowered``: names in lower case) and ``now``."""
    delivery_id, iat = header.get(DELIVERY_ID_PARAM), header.get("iat")
    if not isinstance(delivery_id, str) or not isinstance(iat, int):
        raise SignatureError(
            "the signature carries no delivery id or signing time", code="jws.malformed"
        )
    if lowered.get(DELIVERY_ID_HEADER.lower()) != delivery_id:
        raise SignatureError(
            f"{DELIVERY_ID_HEADER} is not the signed delivery id", code="jws.delivery_mismatch"
        )
    if abs(now - iat) > max_age_s:
        raise SignatureError(
            f"signed {now - iat:.0f} s ago, outside ±{max_age_s:.0f} s", code="jws.stale"
        )
    return PushSignature(delivery_id, datetime.fromtimestamp(iat, UTC), str(header["alg"]))


class HttpPushAdapter(Adapter):
    """POSTs packages to the recipients' URLs; one connection pool for all recipients.

    Push URLs may only reach public addresses, or hosts named in ``allow_private_hosts``
    (``adapters.push_targets``): a refused one is a permanent ``delivery.forbidden_target``.
    Pass ``session`` to share a ``ClientSession`` (the caller closes it; build it with
    ``guarded_session`` to keep the check on resolved names); otherwise the adapter creates one
    on first use and closes it in :meth:`aclose`.
    """

    def __init__(
        self,
        key: SigningKey,
        certificate: x509.Certificate,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = 30.0,
        allow_private_hosts: Iterable[str] = (),
    ) -> None:
        self._signer = PushSigner.of(key, certificate)
        self._policy = TargetPolicy(allow_private_hosts)
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._targets: dict[str, URL] = {}  # push URLs the policy allowed, parsed

    def _target(self, url: str) -> URL:
        """``url`` parsed and allowed by the policy (an immutable one: the answer is kept, for
        the few URLs of a directory); raises ``ForbiddenTargetError`` (not kept)."""
        parsed = self._targets.get(url)
        if parsed is None:
            parsed = self._policy.check_url(url)
            if len(self._targets) >= MAX_TARGETS_KEPT:
                self._targets.clear()
            self._targets[url] = parsed
        return parsed

    async def deliver(self, delivery: OutboundDelivery) -> DeliveryOutcome:
        if not delivery.url:
            raise PermanentDeliveryError(
                f"no push URL for {delivery.organ_id}", code="delivery.no_url"
            )
        url = self._target(delivery.url)
        headers = await self._headers(delivery)
        try:
            async with self._client().post(
                url,
                data=request_body(delivery.package),
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                return await _outcome(response)
        except TimeoutError as exc:
            raise TransientDeliveryError(
                f"no answer from {delivery.url} in time", code="delivery.timeout"
            ) from exc
        except aiohttp.ClientError as exc:
            raise TransientDeliveryError(
                f"cannot reach {delivery.url}: {exc}", code="delivery.connection"
            ) from exc

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = guarded_session(self._policy)
        return self._session

    async def _headers(self, delivery: OutboundDelivery) -> dict[str, str]:
        args = (delivery.package, delivery.delivery_id)
        if len(delivery.package) > SIGN_IN_THREAD_BYTES:
            signature = await asyncio.to_thread(self._signer.sign, *args)
        else:
            signature = self._signer.sign(*args)
        return {
            "Content-Type": delivery.content_type,
            "Idempotency-Key": delivery.delivery_id,
            DELIVERY_ID_HEADER: delivery.delivery_id,
            DOCUMENT_ID_HEADER: delivery.document_id,
            ATTEMPT_HEADER: str(delivery.attempt),
            SIGNATURE_HEADER: signature,
        }


async def _outcome(response: aiohttp.ClientResponse) -> DeliveryOutcome:
    status = response.status
    if 200 <= status < 300:
        return DeliveryOutcome(True, f"HTTP {status}", status)
    text = (await response.content.read(MAX_REASON_CHARS * 4)).decode("utf-8", "replace")
    reason = f"HTTP {status}: {text[:MAX_REASON_CHARS]}" if text else f"HTTP {status}"
    if status in (408, 429) or status >= 500:
        raise TransientDeliveryError(
            reason,
            code="delivery.http_status",
            status_code=status,
            retry_after_s=_retry_after_s(response.headers),
        )
    raise PermanentDeliveryError(reason, code="delivery.refused", status_code=status)


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    value = headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
