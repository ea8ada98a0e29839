"""Who is calling: a Bearer API key, or a client certificate when TLS asks for one.

Every check counts against the rate limits: a failed one against the caller's address (an
address over its limit is refused at once, before any key is looked up), a successful one
against the participant (429 ``rate.*`` with ``Retry-After``).
"""

from __future__ import annotations

import hashlib
import hmac
import ssl

from aiohttp import web

from gateway.core.directory import Participant, hash_api_key
from gateway.core.errors import AuthError, NotFoundError
from gateway.web.keys import DIRECTORY, RATE_LIMITS, SETTINGS


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _client_cert_fingerprint(request: web.Request) -> str | None:
    transport = request.transport
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest() if der else None


async def authenticate(request: web.Request) -> Participant:
    """The enabled participant behind this request, or ``AuthError`` (401) / ``RateLimitError``
    (429). The request's body is never read here."""
    limits = request.app[RATE_LIMITS]
    limits.check_address(request.remote)
    try:
        participant = _identify(request)
    except AuthError:
        await limits.failed(request.remote)
        raise
    await limits.request(f"participant:{participant.organ_id}")
    return participant


def _identify(request: web.Request) -> Participant:
    directory = request.app[DIRECTORY].current
    token = _bearer(request)
    if token is not None:
        participant = directory.by_api_key(token)
        if participant is None:
            raise AuthError("unknown or disabled API key", code="auth.invalid_api_key")
        return participant
    fingerprint = _client_cert_fingerprint(request)
    if fingerprint is not None:
        participant = directory.by_client_cert(fingerprint)
        if participant is None:
            raise AuthError("unknown client certificate", code="auth.unknown_client_cert")
        return participant
    raise AuthError(
        "send 'Authorization: Bearer <API key>' or a client certificate", code="auth.required"
    )


async def require_admin(request: web.Request) -> str:
    """Check the admin token; returns a short actor name for the audit trail."""
    limits = request.app[RATE_LIMITS]
    limits.check_address(request.remote)
    try:
        return _admin_actor(request, request.app[SETTINGS].admin.api_token_hashes, "admin")
    except AuthError:
        await limits.failed(request.remote)
        raise


async def require_metrics_token(request: web.Request) -> None:
    """``/metrics`` on the API port: only with a ``[metrics] token_hashes`` token; without any
    configured, it is not served there (404) and lives on the ``[metrics]`` listener only."""
    hashes = request.app[SETTINGS].metrics.token_hashes
    if not hashes:
        raise NotFoundError("/metrics is served on the metrics listener", code="not_found.route")
    limits = request.app[RATE_LIMITS]
    limits.check_address(request.remote)
    try:
        _admin_actor(request, hashes, "metrics")
    except AuthError:
        await limits.failed(request.remote)
        raise


def _admin_actor(request: web.Request, hashes: tuple[str, ...], name: str) -> str:
    token = _bearer(request)
    if token is None:
        raise AuthError(f"{name} token required", code="auth.required")
    given = hash_api_key(token)
    if not any(hmac.compare_digest(given, h) for h in hashes):
        raise AuthError(
            f"invalid {name} token",
            code="auth.invalid_admin_token" if name == "admin" else "auth.invalid_metrics_token",
        )
    return f"{name}:{given[:8]}"
