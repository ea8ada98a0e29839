"""The verifier: bytes in, a ``VerifiedDocument`` out (signature, algorithm policy, trust, binding).

Order, so that the error code names the first thing that failed: parse (hardened, once) ->
signature -> records read from the *same* verified tree (read before the signature check, their
refusal raised once the signature holds) -> the sender's algorithm policy -> certificate trust ->
signer-to-sender binding -> semantic validation (errors refuse, warnings are kept). The bytes
handed on (``signed_bytes``) are exactly the bytes that were verified.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from cryptography import x509

from gateway.core.errors import PackageError, SignatureError
from gateway.edxml import json_codec
from gateway.edxml.hardened import load_xml
from gateway.edxml.issues import Issue, Severity
from gateway.edxml.limits import DEFAULT_LIMITS, ParseLimits
from gateway.edxml.model import EDXML_NS, Package
from gateway.edxml.validate import validate_package
from gateway.edxml.xml_codec import read_package
from gateway.signatures.algorithms import ALL_SUPPORTED, DEFAULT_ALLOWED, SignatureAlgorithm
from gateway.signatures.binding import signer_of
from gateway.signatures.jws import verify_jws
from gateway.signatures.truststore import TrustStore
from gateway.signatures.xmldsig import verify_xml_signature

AlgorithmPolicy = Callable[[str], frozenset[SignatureAlgorithm]]
FingerprintDirectory = Callable[[str], frozenset[str]]
Clock = Callable[[], dt.datetime]

JWS_ALGORITHMS: Final = {
    "RS256": SignatureAlgorithm.RSA_SHA256,
    "RS512": SignatureAlgorithm.RSA_SHA512,
    "ES256": SignatureAlgorithm.ECDSA_SHA256,
}
WEAK_ALGORITHMS: Final = frozenset({SignatureAlgorithm.RSA_SHA1})
SIGNATURE_PATH: Final = "/edXML/edXMLEnvelope/edXMLHeader/Signature"
JWS_HEADROOM_BYTES: Final = 64 * 1024


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _default_algorithms(_sender: str) -> frozenset[SignatureAlgorithm]:
    return DEFAULT_ALLOWED


def _no_fingerprints(_sender: str) -> frozenset[str]:
    return frozenset()


@dataclass(frozen=True, slots=True)
class VerifiedDocument:
    """A package whose signature holds, whose signer is trusted and may speak for its sender."""

    sender: str
    signer_subject: str
    certificate_fingerprint: str  # SHA-256, lowercase hex
    algorithm: str  # SignatureAlgorithm short name, e.g. "rsa-sha256" (for JWS too)
    signed_bytes: bytes = field(repr=False)  # exactly what was verified: hand these on
    package: Package = field(repr=False)
    chain: tuple[x509.Certificate, ...] = field(repr=False)  # leaf first, ends at the anchor
    bound_by: str  # "certificate" or "directory"
    format: str  # "xml" or "jws"
    warnings: tuple[Issue, ...]
    verified_at: dt.datetime


@dataclass(frozen=True, slots=True)
class _Signed:
    """What a format-specific check established, before the common policy checks."""

    package: Package
    algorithm: SignatureAlgorithm
    leaf: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]
    signed_bytes: bytes
    format: str
    warnings: tuple[Issue, ...] = ()


class Verifier:
    """Verifies signed packages against one trust store and the participants' policies."""

    def __init__(
        self,
        trust: TrustStore,
        *,
        limits: ParseLimits = DEFAULT_LIMITS,
        algorithms_for: AlgorithmPolicy = _default_algorithms,
        bound_fingerprints: FingerprintDirectory = _no_fingerprints,
        clock: Clock = _utc_now,
    ) -> None:
        """``algorithms_for(sender)``: the signature algorithms that sender may use (default
        RSA-SHA256 and ECDSA-SHA256); ``bound_fingerprints(sender)``: certificate fingerprints the
        directory binds to that sender."""
        self.trust = trust
        self.limits = limits
        self._algorithms_for = algorithms_for
        self._bound_fingerprints = bound_fingerprints
        self._clock = clock

    def verify_xml(self, data: bytes) -> VerifiedDocument:
        """Verify an enveloped-XML-DSig edXML package; the tree is parsed once and read as
        verified.

        The records are read from the tree before the digest, which then need not put the large
        texts it lifts back into a tree nobody reads again. A package the reader refuses is
        refused with that reason only once its signature holds (the signature's refusal first).
        The record keeps no copy of the ``<Signature>`` element (``signature_xml`` is None): it
        is not part of what was signed, and the signed bytes travel as ``signed_bytes``.
        """
        root = load_xml(data, self.limits)
        try:
            package: Package | None = read_package(root, source=data, keep_signature=False)
            unreadable: PackageError | None = None
        except PackageError as exc:
            package, unreadable = None, exc
        check = verify_xml_signature(
            root, allowed=ALL_SUPPORTED, keep_tree=False, document_bytes=len(data)
        )
        if unreadable is not None:
            raise unreadable
        assert package is not None
        warnings = []
        if check.signature_namespace == EDXML_NS:
            warnings.append(
                _warning(
                    "signature.edxml_namespace",
                    "the Signature element is in the edXML namespace, not xmldsig",
                )
            )
        return self._finish(
            _Signed(
                package=package,
                algorithm=check.algorithm,
                leaf=check.signer_certificate,
                intermediates=check.certificates[1:],
                signed_bytes=data,
                format="xml",
                warnings=tuple(warnings),
            )
        )

    def verify_jws(self, token: bytes) -> VerifiedDocument:
        """Verify a compact JWS whose payload is the package's JSON encoding."""
        max_bytes = self.limits.max_bytes * 4 // 3 + JWS_HEADROOM_BYTES
        check = verify_jws(token, allowed_algs=frozenset(JWS_ALGORITHMS), max_bytes=max_bytes)
        package = json_codec.loads(check.payload, self.limits)
        return self._finish(
            _Signed(
                package=package,
                algorithm=JWS_ALGORITHMS[check.algorithm],
                leaf=check.signer_certificate,
                intermediates=check.certificates[1:],
                signed_bytes=check.payload,
                format="jws",
            )
        )

    def _finish(self, signed: _Signed) -> VerifiedDocument:
        """The checks common to both formats: algorithm policy, trust, binding, validation."""
        sender = signed.package.sender
        self._check_algorithm(sender, signed.algorithm)
        verified_at = self._clock()
        chain = self.trust.validate(signed.leaf, signed.intermediates, at=verified_at)
        signer = signer_of(signed.leaf)
        bound_by = signer.binding_to(sender, self._bound_fingerprints(sender))
        report = validate_package(signed.package)
        report.raise_for_errors()
        warnings = signed.warnings + report.warnings
        if signed.algorithm in WEAK_ALGORITHMS:
            message = f"signed with {signed.algorithm.short_name}, allowed for {sender} by policy"
            warnings += (_warning("signature.weak_algorithm", message),)
        return VerifiedDocument(
            sender=sender,
            signer_subject=signer.subject,
            certificate_fingerprint=signer.fingerprint,
            algorithm=signed.algorithm.short_name,
            signed_bytes=signed.signed_bytes,
            package=signed.package,
            chain=chain,
            bound_by=bound_by,
            format=signed.format,
            warnings=warnings,
            verified_at=verified_at,
        )

    def _check_algorithm(self, sender: str, algorithm: SignatureAlgorithm) -> None:
        if algorithm not in self._algorithms_for(sender):
            raise SignatureError(
                f"{sender} may not sign with {algorithm.short_name}",
                code="signature.algorithm_not_allowed",
            )


def _warning(code: str, message: str) -> Issue:
    return Issue(code, SIGNATURE_PATH, message, Severity.WARNING)
