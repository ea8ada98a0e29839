"""RFC 3161 time-stamps: asking a Time-Stamping Authority over HTTP, and checking its tokens.

The request and the response are built and read by ``rfc3161-client`` (ASN.1, CMS signature,
chain to the given roots, the ``timeStamping`` key purpose, nonce, message imprint); this module
only carries them over HTTP (``application/timestamp-query`` -> ``application/timestamp-reply``)
and turns their failures into our errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    TimestampRequestBuilder,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from gateway.core.errors import ConfigError, SignatureError, UnavailableError

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
MAX_REPLY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class TimeStamp:
    """A TSA's answer (the DER ``TimeStampResp``, kept whole) and the time it vouches for."""

    response: bytes
    gen_time: datetime


def load_certificates(path: Path) -> tuple[x509.Certificate, ...]:
    """The PEM certificates in ``path`` (a TSA's CA, a trust directory's files)."""
    try:
        certs = tuple(x509.load_pem_x509_certificates(path.read_bytes()))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read certificates from {path}: {exc}", code="config.pki"
        ) from exc
    return certs


def check_token(
    response: bytes,
    message: bytes,
    roots: tuple[x509.Certificate, ...],
    intermediates: tuple[x509.Certificate, ...] = (),
    *,
    nonce: int | None = None,
) -> datetime:
    """The time a TSA response vouches ``message`` existed at, or ``SignatureError``: bad
    encoding, not granted, signature or chain not valid to ``roots``, another message."""
    if not roots:
        raise SignatureError("no TSA root to check the time-stamp against", code="tsa.untrusted")
    try:
        decoded = decode_timestamp_response(response)
        builder = VerifierBuilder(roots=list(roots), intermediates=list(intermediates))
        if nonce is not None:
            builder = builder.nonce(nonce)
        builder.build().verify_message(decoded, message)
    except VerificationError as exc:
        raise SignatureError(f"the time-stamp does not verify: {exc}", code="tsa.invalid") from exc
    except ValueError as exc:
        raise SignatureError(f"not a time-stamp response: {exc}", code="tsa.malformed") from exc
    return _gen_time(decoded)


def _gen_time(decoded: TimeStampResponse) -> datetime:
    at = decoded.tst_info.gen_time
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


class TsaClient:
    """Asks one TSA for time-stamps; its tokens must chain to ``roots``."""

    def __init__(self, url: str, roots: tuple[x509.Certificate, ...], *, timeout_s: float) -> None:
        self.url = url
        self.roots = roots
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def stamp(self, message: bytes) -> TimeStamp:
        """A checked time-stamp of ``message`` (SHA-256 imprint, a nonce, the TSA's certificate
        asked for); ``UnavailableError`` when the TSA cannot be reached or answers an error."""
        request = (
            TimestampRequestBuilder()
            .data(message)
            .hash_algorithm(HashAlgorithm.SHA256)
            .nonce(nonce=True)
            .cert_request(cert_request=True)
            .build()
        )
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.post(
                    self.url, data=request.as_bytes(), headers={"Content-Type": QUERY_TYPE}
                ) as reply,
            ):
                body = await reply.content.read(MAX_REPLY_BYTES + 1)
                status = reply.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UnavailableError(
                f"the time-stamping authority {self.url} cannot be reached: {exc!r}",
                code="unavailable.tsa",
            ) from exc
        if status != 200 or len(body) > MAX_REPLY_BYTES:
            raise UnavailableError(
                f"the time-stamping authority {self.url} answered HTTP {status}",
                code="unavailable.tsa",
            )
        gen_time = check_token(body, message, self.roots, nonce=request.nonce)
        return TimeStamp(body, gen_time)
