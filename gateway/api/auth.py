"""Who is calling: a Bearer API key, or a client certificate when TLS asks for one."""

from __future__ import annotations

import hashlib
import hmac
import ssl

from aiohttp import web

from gateway.core.directory import Participant, hash_api_key
from gateway.core.errors import AuthError
from gateway.web.keys import DIRECTORY, SETTINGS


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


def authenticate(request: web.Request) -> Participant:
    """The enabled participant behind this request, or ``AuthError`` (401)."""
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
    raise AuthError("send 'Authorization: Bearer <API key>' or a client certificate",
                    code="auth.required")


def require_admin(request: web.Request) -> str:
    """Check the admin token; returns a short actor name for the audit trail."""
    token = _bearer(request)
    hashes = request.app[SETTINGS].admin.api_token_hashes
    if token is None:
        raise AuthError("admin token required", code="auth.required")
    given = hash_api_key(token)
    if not any(hmac.compare_digest(given, h) for h in hashes):
        raise AuthError("invalid admin token", code="auth.invalid_admin_token")
    return f"admin:{given[:8]}"
