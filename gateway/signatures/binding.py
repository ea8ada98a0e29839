"""Signer-to-sender binding: may this certificate speak for the package's sender OrganId?

A certificate names OrganIds in its subjectAltName (URI ``urn:lgsp:organ-id:<OrganId>``) or in
subject UID attributes ``ORGANID:<id>`` / ``MST:<tax code>``; failing both, the participant
directory may list the certificate's SHA-256 fingerprint for the sender.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from gateway.core.errors import BindingError
from gateway.signatures.certificates import PerCertificate

ORGAN_ID_URI_PREFIX: Final = "urn:lgsp:organ-id:"
UID_PREFIXES: Final = ("ORGANID:", "MST:")
BOUND_BY_CERTIFICATE: Final = "certificate"
BOUND_BY_DIRECTORY: Final = "directory"
CACHED_CERTIFICATES: Final = 1024
"""What is derived from a certificate is kept for this many (a ``Certificate`` never changes, and
the same signers' certificates arrive with every package)."""


def organ_ids_in(cert: x509.Certificate) -> frozenset[str]:
    """Every OrganId (or tax code) the certificate names, from SAN URIs and subject UIDs."""
    return _san_organ_ids(cert) | _uid_organ_ids(cert)


@functools.lru_cache(maxsize=CACHED_CERTIFICATES)
def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex without separators."""
    return cert.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True, slots=True)
class Signer:
    """What the verifier reads of a signer certificate, derived once per certificate."""

    fingerprint: str  # SHA-256 of the DER, lowercase hex
    subject: str  # RFC 4514
    organ_ids: frozenset[str]  # ``organ_ids_in``

    def binding_to(self, sender: str, bound_fingerprints: frozenset[str]) -> str:
        """``check_binding`` for this signer."""
        if sender in self.organ_ids:
            return BOUND_BY_CERTIFICATE
        if self.fingerprint in {_normal_fingerprint(f) for f in bound_fingerprints}:
            return BOUND_BY_DIRECTORY
        carried = ", ".join(sorted(self.organ_ids)) if self.organ_ids else "no OrganId"
        raise BindingError(
            f"the signer certificate ({self.subject}) carries {carried}, "
            f"not the sender {sender}, and the directory does not list it for {sender}",
            code="binding.organ_mismatch",
        )


@functools.lru_cache(maxsize=CACHED_CERTIFICATES)
def _signer_by_equality(cert: x509.Certificate) -> Signer:
    return Signer(fingerprint(cert), cert.subject.rfc4514_string(), organ_ids_in(cert))


signer_of = PerCertificate(_signer_by_equality)
"""The certificate's fingerprint, subject and OrganIds, derived once per certificate object
(``PerCertificate``); an equal certificate that is another object through a cache by equality."""


def check_binding(cert: x509.Certificate, sender: str, bound_fingerprints: frozenset[str]) -> str:
    """How ``cert`` is bound to ``sender`` ("certificate" or "directory"), or ``BindingError``.

    ``bound_fingerprints`` are the SHA-256 fingerprints the directory lists for ``sender``
    (hex, case and ``:`` separators ignored).
    """
    return signer_of(cert).binding_to(sender, bound_fingerprints)


def _san_organ_ids(cert: x509.Certificate) -> frozenset[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset()
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return frozenset(
        uri[len(ORGAN_ID_URI_PREFIX) :].strip()
        for uri in uris
        if uri.lower().startswith(ORGAN_ID_URI_PREFIX) and uri[len(ORGAN_ID_URI_PREFIX) :].strip()
    )


def _uid_organ_ids(cert: x509.Certificate) -> frozenset[str]:
    found: set[str] = set()
    for attribute in cert.subject.get_attributes_for_oid(NameOID.USER_ID):
        value = attribute.value if isinstance(attribute.value, str) else ""
        for prefix in UID_PREFIXES:
            if value.upper().startswith(prefix) and value[len(prefix) :].strip():
                found.add(value[len(prefix) :].strip())
    return frozenset(found)


def _normal_fingerprint(value: str) -> str:
    return value.replace(":", "").strip().lower()
