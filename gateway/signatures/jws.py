"""RFC 7515 compact JWS (joserfc): sign with the certificate chain in ``x5c``, verify with its leaf.

Verification parses the protected header before any cryptography and refuses what a gateway must
never honour: ``alg: none``, HMAC algorithms, algorithms outside ``allowed_algs``, key or chain
references to fetch (``jku``, ``x5u``, ``jwk``), ``crit`` and ``b64`` extensions, and any header
this module does not know. The signature is checked with the public key of the ``x5c`` leaf only;
whether that certificate is trusted is the trust store's question, not this module's.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature
from joserfc import jwk
from joserfc import jws as rfc_jws
from joserfc.errors import BadSignatureError, JoseError

from gateway.core.errors import LimitError, SignatureError
from gateway.signatures.certificates import load_untrusted_der

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

DEFAULT_ALLOWED_ALGS: Final = frozenset({"RS256", "ES256"})
DEFAULT_MAX_JWS_BYTES: Final = 96 * 1024 * 1024
MAX_HEADER_BYTES: Final = 64 * 1024
MAX_SIGNATURE_BYTES: Final = 2048
MAX_CHAIN_LENGTH: Final = 8
ALLOWED_HEADERS: Final = frozenset({"alg", "typ", "cty", "kid", "x5c", "x5t", "x5t#S256"})
FORBIDDEN_HEADERS: Final = frozenset({"jku", "x5u", "jwk", "crit", "b64"})


@dataclass(frozen=True, slots=True)
class JwsCheck:
    """What a verified JWS says: the payload, its algorithm and the signer's chain (leaf first)."""

    payload: bytes
    algorithm: str
    signer_certificate: x509.Certificate
    certificates: tuple[x509.Certificate, ...]


def sign_jws(
    payload: bytes,
    key: PrivateKey,
    certificates: Sequence[x509.Certificate],
    *,
    alg: str | None = None,
) -> str:
    """Compact JWS of ``payload``; ``x5c`` carries ``certificates`` (leaf first, base64 DER).

    ``alg`` defaults to RS256 for an RSA key and ES256 for a P-256 key.
    """
    if not certificates:
        raise SignatureError("a JWS needs the signer certificate", code="jws.no_certificate")
    algorithm = alg or alg_for_key(key)
    x5c, x5t = _x5_headers(tuple(certificates))
    header: dict[str, Any] = {"alg": algorithm, "x5c": list(x5c), "x5t#S256": x5t}
    try:
        return rfc_jws.serialize_compact(
            header, payload, private_jwk(key), registry=_registry(algorithm, len(payload))
        )
    except JoseError as exc:
        raise SignatureError(
            f"cannot sign JWS with {algorithm}: {exc}", code="jws.unsupported_algorithm"
        ) from exc


@dataclass(frozen=True, slots=True)
class CompactSigner:
    """A key and its chain prepared once for many compact JWS (the intake's receipts).

    The token is ``sign_jws``'s, built with ``cryptography`` (RFC 7515 section 7.1, RFC 7518
    sections 3.3/3.4: ``BASE64URL(header) '.' BASE64URL(payload)`` signed; an ES256 signature is
    R || S of 32 bytes each): the protected header (``alg``, ``x5c``, ``x5t#S256``) is encoded
    once, as joserfc encodes it, instead of once per token with the key exported to a JWK each
    time. RS256 and ES256 only; the tests hold it to joserfc (same header and payload segments,
    the same RS256 token, verified by ``verify_jws``)."""

    algorithm: str
    key: PrivateKey = field(repr=False)
    header_segment: bytes  # BASE64URL(UTF8(protected header))

    @classmethod
    def of(
        cls, key: PrivateKey, certificates: Sequence[x509.Certificate], *, alg: str | None = None
    ) -> CompactSigner:
        """Raises ``SignatureError``: ``jws.no_certificate``, ``jws.unsupported_algorithm`` (an
        algorithm other than RS256 and ES256, or one that does not fit the key)."""
        if not certificates:
            raise SignatureError("a JWS needs the signer certificate", code="jws.no_certificate")
        algorithm = alg or alg_for_key(key)
        fits = (algorithm == "RS256" and isinstance(key, rsa.RSAPrivateKey)) or (
            algorithm == "ES256"
            and isinstance(key, ec.EllipticCurvePrivateKey)
            and isinstance(key.curve, ec.SECP256R1)
        )
        if not fits:
            raise SignatureError(
                f"cannot sign JWS with {algorithm} and this key", code="jws.unsupported_algorithm"
            )
        x5c, x5t = _x5_headers(tuple(certificates))
        header = {"alg": algorithm, "x5c": list(x5c), "x5t#S256": x5t}
        text = json.dumps(header, ensure_ascii=True, separators=(",", ":"))
        return cls(algorithm, key, _b64url(text.encode("ascii")).encode("ascii"))

    def sign(self, payload: bytes) -> str:
        """The compact JWS of ``payload``."""
        signing_input = b"%b.%b" % (self.header_segment, _b64url_bytes(payload))
        signature = signature_of_digest(self.key, hashlib.sha256(signing_input).digest())
        return (b"%b.%b" % (signing_input, _b64url_bytes(signature))).decode("ascii")


# cryptography's parameter objects hold no state: made once, not per signature
_PREHASHED_SHA256 = Prehashed(hashes.SHA256())
_PKCS1V15 = padding.PKCS1v15()
_ECDSA_PREHASHED = ec.ECDSA(_PREHASHED_SHA256)


def signature_of_digest(key: PrivateKey, digest: bytes) -> bytes:
    """The JWS signature (RS256: PKCS#1 v1.5; ES256: R || S, 32 bytes each) of a signing input
    whose SHA-256 is ``digest`` (so a large input can be hashed in pieces)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(digest, _PKCS1V15, _PREHASHED_SHA256)
    r, s = decode_dss_signature(key.sign(digest, _ECDSA_PREHASHED))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@functools.lru_cache(maxsize=64)
def _x5_headers(certificates: tuple[x509.Certificate, ...]) -> tuple[tuple[str, ...], str]:
    """``x5c`` (base64 DER, leaf first) and ``x5t#S256`` of a chain: the same for every token a
    signer makes, so derived once per chain."""
    leaf_der = certificates[0].public_bytes(serialization.Encoding.DER)
    x5c = tuple(
        base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode("ascii")
        for c in certificates
    )
    return x5c, _b64url(hashlib.sha256(leaf_der).digest())


def verify_jws(
    token: str | bytes,
    *,
    allowed_algs: frozenset[str] = DEFAULT_ALLOWED_ALGS,
    max_bytes: int = DEFAULT_MAX_JWS_BYTES,
) -> JwsCheck:
    """Check a compact JWS against the leaf of its ``x5c`` chain, or raise ``SignatureError``."""
    raw = _as_ascii(token, max_bytes)
    header = _parse_header(raw)
    algorithm = _check_header(header, allowed_algs)
    chain = _chain_from(header)
    public_key = public_jwk(chain[0], algorithm)
    try:
        verified = rfc_jws.deserialize_compact(
            raw, public_key, registry=_registry(algorithm, len(raw))
        )
    except BadSignatureError as exc:
        raise SignatureError("the JWS signature does not verify", code="jws.invalid") from exc
    except JoseError as exc:
        raise SignatureError(f"malformed JWS: {exc}", code="jws.malformed") from exc
    return JwsCheck(
        payload=verified.payload,
        algorithm=algorithm,
        signer_certificate=chain[0],
        certificates=chain,
    )


def _registry(algorithm: str, max_payload_bytes: int) -> rfc_jws.JWSRegistry:
    """joserfc's registry for one algorithm, with size bounds fitting x5c headers and packages."""
    registry = rfc_jws.JWSRegistry(algorithms=[algorithm])
    registry.max_header_length = MAX_HEADER_BYTES
    registry.max_payload_length = max(max_payload_bytes, 1)
    registry.max_signature_length = MAX_SIGNATURE_BYTES
    return registry


def _as_ascii(token: str | bytes, max_bytes: int) -> bytes:
    raw = token.encode("utf-8") if isinstance(token, str) else bytes(token)
    if len(raw) > max_bytes:
        raise LimitError(f"the JWS exceeds {max_bytes} bytes", code="jws.too_large")
    raw = raw.strip()
    if not raw or not raw.isascii() or raw.count(b".") != 2:
        raise SignatureError("not a compact JWS (three base64url parts)", code="jws.malformed")
    return raw


def _parse_header(raw: bytes) -> dict[str, Any]:
    encoded = raw.split(b".", 1)[0]
    if len(encoded) > MAX_HEADER_BYTES:
        raise SignatureError("the JWS header is too large", code="jws.malformed")
    try:
        header = json.loads(base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("the JWS header is not base64url JSON", code="jws.malformed") from exc
    if not isinstance(header, dict):
        raise SignatureError("the JWS header is not a JSON object", code="jws.malformed")
    return header


def _check_header(header: dict[str, Any], allowed_algs: frozenset[str]) -> str:
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise SignatureError("the JWS header has no alg", code="jws.malformed")
    if alg.lower() == "none" or alg.upper().startswith("HS") or alg not in allowed_algs:
        raise SignatureError(
            f"JWS algorithm {alg!r} is not accepted", code="jws.unsupported_algorithm"
        )
    refused = sorted(set(header) & FORBIDDEN_HEADERS)
    if refused:
        raise SignatureError(f"JWS header parameters {refused} are refused", code="jws.malformed")
    unknown = sorted(set(header) - ALLOWED_HEADERS)
    if unknown:
        raise SignatureError(f"unknown JWS header parameters {unknown}", code="jws.malformed")
    return alg


def _chain_from(header: dict[str, Any]) -> tuple[x509.Certificate, ...]:
    x5c = header.get("x5c")
    if not x5c:
        raise SignatureError("the JWS carries no x5c certificate", code="jws.no_certificate")
    if not isinstance(x5c, list) or len(x5c) > MAX_CHAIN_LENGTH:
        raise SignatureError("x5c must be a short list of certificates", code="jws.malformed")
    chain = tuple(_certificate(item) for item in x5c)
    thumbprint = header.get("x5t#S256")
    leaf_der = chain[0].public_bytes(serialization.Encoding.DER)
    if thumbprint is not None and thumbprint != _b64url(hashlib.sha256(leaf_der).digest()):
        raise SignatureError("x5t#S256 does not match the x5c leaf", code="jws.malformed")
    return chain


def _certificate(item: object) -> x509.Certificate:
    if not isinstance(item, str):
        raise SignatureError("an x5c entry is not a string", code="jws.malformed")
    try:
        return load_untrusted_der(base64.b64decode(item, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(
            "an x5c entry is not a base64 DER certificate", code="jws.malformed"
        ) from exc


def alg_for_key(key: PrivateKey) -> str:
    """The JWS algorithm of a signing key: RS256 for RSA, ES256 for P-256 (other curves: none)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise SignatureError(
        f"no JWS algorithm for curve {key.curve.name}", code="jws.unsupported_algorithm"
    )


def private_jwk(key: PrivateKey) -> jwk.RSAKey | jwk.ECKey:
    """A signing key as a JWK (for joserfc)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return jwk.RSAKey.import_key(key)
    return jwk.ECKey.import_key(key)


def public_jwk(cert: x509.Certificate, algorithm: str) -> jwk.RSAKey | jwk.ECKey:
    """The leaf's public key as a JWK, if its type fits ``algorithm``."""
    key = cert.public_key()
    if algorithm.startswith(("RS", "PS")) and isinstance(key, rsa.RSAPublicKey):
        return jwk.RSAKey.import_key(key)
    if algorithm.startswith("ES") and isinstance(key, ec.EllipticCurvePublicKey):
        return jwk.ECKey.import_key(key)
    raise SignatureError(
        f"the signer certificate's key does not fit JWS algorithm {algorithm}", code="jws.invalid"
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_bytes(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")
