"""``lgsp verify-push``: check a pushed delivery's ``X-LGSP-Signature`` as a receiver would.

The signature is a compact JWS with a detached payload (the request body). The algorithm is taken
from the JWS header, but only among the asymmetric ones that fit a key the receiver trusts:
``none`` and HMAC (``HS*``) are refused, and the key is one of the certificates or public keys
the receiver gave (pinned), chosen by the header's ``x5t#S256`` when it names a certificate.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from joserfc.registry import HeaderParameter

from adapters.http_push import (
    DELIVERY_ID_HEADER,
    DELIVERY_ID_PARAM,
    SIGNATURE_HEADER,
    certificate_thumbprint,
    checked_claims,
)
from gateway.core.errors import ConfigError, SignatureError

PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
DEFAULT_MAX_AGE_S = 300.0
_HEADERS = {
    "iat": HeaderParameter("signing time, seconds since the epoch", "int", required=True),
    DELIVERY_ID_PARAM: HeaderParameter("the LGSP delivery id", "str", required=True),
}


@dataclass(frozen=True, slots=True)
class Trusted:
    """A key the receiver trusts for pushes: from a certificate (with its thumbprint) or bare."""

    key: PublicKey
    thumbprint: str | None  # x5t#S256 of the certificate, None for a bare public key
    label: str


@dataclass(frozen=True, slots=True)
class VerifiedPush:
    """What a verified ``X-LGSP-Signature`` says, and which trusted key verified it."""

    delivery_id: str
    issued_at: datetime
    algorithm: str
    signer: str


def load_trusted(paths: Sequence[Path]) -> list[Trusted]:
    """Certificates and public keys from PEM files (a file may hold several certificates)."""
    trusted: list[Trusted] = []
    for path in paths:
        data = path.read_bytes()
        if b"-----BEGIN CERTIFICATE-----" in data:
            for cert in x509.load_pem_x509_certificates(data):
                trusted.append(
                    Trusted(
                        _public(cert.public_key(), path),
                        certificate_thumbprint(cert),
                        cert.subject.rfc4514_string(),
                    )
                )
            continue
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise ConfigError(
                f"{path}: neither a PEM certificate nor a PEM public key",
                code="config.bad_argument",
            ) from exc
        trusted.append(Trusted(_public(key, path), None, f"public key {path.name}"))
    if not trusted:
        raise ConfigError("no trusted certificate or key given", code="config.bad_argument")
    return trusted


def _public(key: object, path: Path) -> PublicKey:
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ConfigError(
            f"{path}: only RSA and EC keys can verify pushes", code="config.bad_argument"
        )
    return key


def _fits(key: PublicKey, alg: str) -> bool:
    if alg in RSA_ALGORITHMS:
        return isinstance(key, rsa.RSAPublicKey)
    return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == EC_ALGORITHMS.get(alg)


def _header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3 or parts[1]:
        raise SignatureError(
            f"{SIGNATURE_HEADER} is not a compact JWS with a detached payload", code="jws.malformed"
        )
    try:
        header = jws.extract_compact(token.encode("ascii"), b"").headers()
    except (JoseError, ValueError, UnicodeError) as exc:
        raise SignatureError(
            f"{SIGNATURE_HEADER} is unreadable: {exc}", code="jws.malformed"
        ) from exc
    return dict(header)


def verify_push(
    headers: Mapping[str, str],
    body: bytes,
    trusted: Sequence[Trusted],
    *,
    max_age_s: float = DEFAULT_MAX_AGE_S,
    now: float | None = None,
) -> VerifiedPush:
    """Check a push: signed by a trusted key over exactly ``body``, for the delivery id in the
    ``X-LGSP-Delivery-Id`` header, within ``max_age_s`` of ``now``.

    Raises ``SignatureError``: ``jws.malformed``, ``jws.algorithm_refused`` (``none``, HMAC or
    unknown), ``jws.unknown_key`` (no trusted key fits), ``jws.invalid`` (body or header
    changed), ``jws.delivery_mismatch``, ``jws.stale``.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    token = lowered.get(SIGNATURE_HEADER.lower(), "").strip()
    if not token:
        raise SignatureError(f"no {SIGNATURE_HEADER} header", code="jws.malformed")
    header = _header(token)
    alg = str(header.get("alg", ""))
    if alg not in RSA_ALGORITHMS and alg not in EC_ALGORITHMS:
        raise SignatureError(
            f"algorithm {alg!r} is refused: only RSA and EC signatures",
            code="jws.algorithm_refused",
        )
    named = header.get("x5t#S256")
    candidates = [
        t
        for t in trusted
        if _fits(t.key, alg) and (t.thumbprint is None or named is None or t.thumbprint == named)
    ]
    if not candidates:
        raise SignatureError(
            f"no trusted key fits this signature ({alg}, x5t#S256 {named})", code="jws.unknown_key"
        )
    registry = jws.JWSRegistry(header_registry=_HEADERS, algorithms=[alg])
    for candidate in candidates:
        jwk = (
            RSAKey.import_key(candidate.key)
            if isinstance(candidate.key, rsa.RSAPublicKey)
            else ECKey.import_key(candidate.key)
        )
        try:
            jws.deserialize_compact(token, jwk, algorithms=[alg], registry=registry, payload=body)
        except (JoseError, ValueError):
            continue
        checked = checked_claims(header, lowered, max_age_s, time.time() if now is None else now)
        return VerifiedPush(checked.delivery_id, checked.issued_at, alg, candidate.label)
    raise SignatureError(
        f"{SIGNATURE_HEADER} does not verify over this body with a trusted key", code="jws.invalid"
    )


# --- the command ---------------------------------------------------------------------------------


def register(commands: argparse._SubParsersAction[Any]) -> None:
    verify = commands.add_parser(
        "verify-push",
        help="verify a pushed delivery's X-LGSP-Signature (for receivers)",
        description="Check that a request the gateway pushed is signed by a trusted gateway key "
        "over exactly BODY, for its delivery id, and recent. Exit 0 when it holds, "
        "1 with the reason's code otherwise.",
    )
    verify.add_argument(
        "--trust",
        type=Path,
        action="append",
        required=True,
        metavar="PEM",
        help="the gateway's certificate (or public key) to trust; repeatable, "
        "e.g. the current and the next one during a key rollover",
    )
    verify.add_argument(
        "--body",
        type=Path,
        required=True,
        metavar="FILE",
        help="the request body exactly as received",
    )
    verify.add_argument(
        "--headers",
        type=Path,
        default=None,
        metavar="FILE",
        help="the request headers as received, one 'Name: value' a line",
    )
    verify.add_argument(
        "--signature",
        default=None,
        metavar="JWS",
        help=f"the {SIGNATURE_HEADER} value (instead of --headers)",
    )
    verify.add_argument(
        "--delivery-id",
        default=None,
        metavar="ID",
        help=f"the {DELIVERY_ID_HEADER} value (instead of --headers)",
    )
    verify.add_argument(
        "--max-age-s",
        type=float,
        default=DEFAULT_MAX_AGE_S,
        metavar="S",
        help=f"accept signatures at most S seconds old (default "
        f"{DEFAULT_MAX_AGE_S:.0f}); 0 for any age",
    )
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(handler=_verify_push)


def read_headers(text: str) -> dict[str, str]:
    """``Name: value`` lines (an HTTP/1.1 head, a status line and blank lines skipped)."""
    headers: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() and " " not in name.strip():
            headers[name.strip()] = value.strip()
    return headers


def _verify_push(args: argparse.Namespace) -> int:
    headers = read_headers(args.headers.read_text(encoding="utf-8")) if args.headers else {}
    if args.signature is not None:
        headers[SIGNATURE_HEADER] = args.signature
    if args.delivery_id is not None:
        headers[DELIVERY_ID_HEADER] = args.delivery_id
    max_age_s = args.max_age_s if args.max_age_s > 0 else float("inf")
    result = verify_push(
        headers, args.body.read_bytes(), load_trusted(args.trust), max_age_s=max_age_s
    )
    if args.json:
        print(
            json.dumps(
                {
                    "ok": True,
                    "delivery_id": result.delivery_id,
                    "issued_at": result.issued_at.isoformat(),
                    "algorithm": result.algorithm,
                    "signer": result.signer,
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return 0
    print(
        f"OK: signed by {result.signer} ({result.algorithm}) at "
        f"{result.issued_at.isoformat(timespec='seconds')}, delivery {result.delivery_id}"
    )
    return 0
