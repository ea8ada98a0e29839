"""Certificates from untrusted bytes, parsed eagerly: a malformed one fails here, as ``ValueError``.

cryptography parses a certificate's parts on first use: a bad version raises ``InvalidVersion`` at
load, a bad key ``ValueError`` and an unknown key type or curve ``UnsupportedAlgorithm`` only at
``public_key()``, a bad extension at ``extensions``, a name attribute of the wrong ASN.1 type
``TypeError`` at ``subject``/``issuer``. The
verifiers would meet those deep inside (a crash the fuzzers found); loading through here touches
every part the gateway reads, so the callers translate one exception type at one place.

The same signers' certificates arrive with every package, so the parsed certificates of the last
``CACHED_CERTIFICATES`` distinct DER encodings are kept (a refused encoding is not): the same bytes
parse to the same certificate, and a ``Certificate`` does not change. Only encodings up to
``CACHED_DER_BYTES`` are kept, so the cache holds at most a few MB whatever certificates arrive
(real ones are 1 to 2 KB; a larger one is parsed every time).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

CACHED_CERTIFICATES = 1024
CACHED_DER_BYTES = 8 * 1024


def load_untrusted_der(der: bytes) -> x509.Certificate:
    """A DER certificate whose key, names, validity and extensions all parse, or ``ValueError``."""
    if len(der) > CACHED_DER_BYTES:
        return _load(der)
    return _load_remembered(der)


@functools.lru_cache(maxsize=CACHED_CERTIFICATES)
def _load_remembered(der: bytes) -> x509.Certificate:
    return _load(der)


def _load(der: bytes) -> x509.Certificate:
    try:
        certificate = x509.load_der_x509_certificate(der)
        certificate.public_key()
        certificate.subject.rfc4514_string()
        certificate.issuer.rfc4514_string()
        _ = certificate.not_valid_before_utc, certificate.not_valid_after_utc
        _ = certificate.extensions
    except (
        x509.InvalidVersion,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
        UnsupportedAlgorithm,
        ValueError,
        TypeError,
    ) as exc:
        raise ValueError(f"malformed certificate: {exc}") from exc
    return certificate


T = TypeVar("T")


class PerCertificate(Generic[T]):
    """A value derived from a certificate, remembered per certificate object.

    Found by the object's identity first (the verifier's certificates come from
    ``load_untrusted_der``'s cache: the same signer's is the same object, package after package),
    without the hash cryptography computes afresh over the DER for every dict lookup (~3 to 5 µs).
    An entry keeps its certificate alive, so its ``id`` is not reused while the entry exists; an
    equal certificate that is another object is derived again, to the same value. At
    ``CACHED_CERTIFICATES`` objects the entries are dropped (crude, and rare: as many distinct
    certificate objects as cached DER encodings)."""

    def __init__(self, derive: Callable[[x509.Certificate], T]) -> None:
        self._derive = derive
        self._entries: dict[int, tuple[x509.Certificate, T]] = {}
        self._lock = threading.Lock()

    def __call__(self, certificate: x509.Certificate) -> T:
        entry = self._entries.get(id(certificate))
        if entry is not None and entry[0] is certificate:
            return entry[1]
        value = self._derive(certificate)
        with self._lock:
            if len(self._entries) >= CACHED_CERTIFICATES:
                self._entries.clear()
            self._entries[id(certificate)] = (certificate, value)
        return value


certificate_hash = PerCertificate(hash)
"""``hash(certificate)``, remembered per certificate object (``PerCertificate``)."""
