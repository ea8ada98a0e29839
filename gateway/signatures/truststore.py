"""Trust store: trusted CAs and their CRLs; validates a signer certificate's chain to a root.

Chain building and signature checks are cryptography's X.509 verifier (``PolicyBuilder``), with
the web-PKI end-entity rules relaxed (document-signing certificates carry no serverAuth/clientAuth
EKU or DNS SAN); CA certificates keep the web-PKI CA rules (basicConstraints cA, keyCertSign)
except that a CA's EKU is not restricted. On top of that this module checks, with specific codes:
validity periods, the leaf's key usage (digitalSignature or nonRepudiation, extension required)
and CRL revocation of the leaf and every intermediate.

CRL policy: a CRL is used only if it is signed by the certificate's issuer in the validated
chain (a CRL with the right issuer name but a bad signature is ignored; if no good one remains,
``trust.crl_invalid``). A CRL past its nextUpdate is still used and logged as stale, unless the
store was built with ``refuse_stale_crl`` (then ``trust.crl_stale``). Any serial listed on the
CRL counts as revoked, whatever its revocation date. A CA without a CRL is not checked for
revocation unless ``require_crl`` is set (then ``trust.crl_missing``).

Decisions are cached (``trust_cache``): the same chain is validated again only once the store's
files changed, a certificate of the chain expired, or a CRL it was checked against went stale.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TypeGuard, get_args

import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPublicKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from gateway.core.errors import ConfigError, TrustError
from gateway.signatures.trust_cache import (
    DEFAULT_MAX_ENTRIES,
    CacheInfo,
    ChainKey,
    TrustCache,
    TrustDecision,
)

log = structlog.get_logger(__name__)

Clock = Callable[[], dt.datetime]
CA_PATTERNS = ("*.pem", "*.crt", "*.cer", "*.der")
CRL_PATTERNS = ("*.pem", "*.crl")
# The keys a CRL's signature can be checked with: cryptography's own list, not ours, so that no
# name of a deprecated kind is read here (cryptography 51 warns on ``dsa.DSAPublicKey``, and the
# tests turn warnings into errors).
_ISSUER_KEY_TYPES: tuple[type, ...] = get_args(CertificateIssuerPublicKeyTypes)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class CachedCrl:
    """A CRL as loaded, with where it came from and when it goes stale."""

    crl: x509.CertificateRevocationList
    source: Path | None
    mtime_ns: int
    next_update: dt.datetime | None

    def is_stale(self, at: dt.datetime) -> bool:
        return self.next_update is not None and self.next_update < at


@dataclass(frozen=True, slots=True)
class _CachedCerts:
    certs: tuple[x509.Certificate, ...]
    mtime_ns: int


class TrustStore:
    """Trusted CA certificates (anchors and configured intermediates) and their CRLs."""

    def __init__(
        self,
        cas: Sequence[x509.Certificate] = (),
        crls: Sequence[x509.CertificateRevocationList] = (),
        *,
        ca_paths: Sequence[Path] = (),
        crl_paths: Sequence[Path] = (),
        require_crl: bool = False,
        refuse_stale_crl: bool = False,
        reload_interval_s: float | None = 60.0,
        clock: Clock = _utc_now,
        cache_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        """``cas``/``crls`` are fixed; ``ca_paths``/``crl_paths`` (files or directories) are
        read now and re-read by :meth:`reload` when their mtime changes. :meth:`validate`
        reloads by itself at most every ``reload_interval_s`` (None: only when asked or when a
        cached CRL has gone stale). Up to ``cache_entries`` decisions are cached (0: none)."""
        self._static_cas = tuple(cas)
        self._static_crls = tuple(CachedCrl(c, None, 0, c.next_update_utc) for c in crls)
        self._ca_paths = tuple(ca_paths)
        self._crl_paths = tuple(crl_paths)
        self.require_crl = require_crl
        self.refuse_stale_crl = refuse_stale_crl
        self.reload_interval_s = reload_interval_s
        self._clock = clock
        self._loaded_at_s = 0.0
        self._ca_cache: dict[Path, _CachedCerts] = {}
        self._crl_cache: dict[Path, CachedCrl] = {}
        self._anchors: tuple[x509.Certificate, ...] = ()
        self._intermediates: tuple[x509.Certificate, ...] = ()
        self._files_state: object = None
        self._cache = TrustCache(cache_entries) if cache_entries > 0 else None
        self.reload()

    @classmethod
    def from_dir(
        cls,
        path: Path,
        *,
        require_crl: bool = False,
        refuse_stale_crl: bool = False,
        reload_interval_s: float | None = 60.0,
        clock: Clock = _utc_now,
        cache_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> TrustStore:
        """Read ``<path>/trust/ca/*.pem`` and ``<path>/trust/crl/*.{pem,crl}``."""
        ca_dir = path / "trust" / "ca"
        if not ca_dir.is_dir():
            raise ConfigError(f"no trusted CA directory at {ca_dir}", code="config.trust_missing")
        return cls(
            ca_paths=(ca_dir,),
            crl_paths=(path / "trust" / "crl",),
            require_crl=require_crl,
            refuse_stale_crl=refuse_stale_crl,
            reload_interval_s=reload_interval_s,
            clock=clock,
            cache_entries=cache_entries,
        )

    @property
    def anchors(self) -> tuple[x509.Certificate, ...]:
        return self._anchors

    @property
    def crls(self) -> tuple[CachedCrl, ...]:
        return self._static_crls + tuple(self._crl_cache.values())

    def reload(self) -> None:
        """Re-read configured CA and CRL files whose mtime changed; forget deleted ones."""
        self._loaded_at_s = time.monotonic()
        self._ca_cache = {
            p: self._ca_cache[p] if _unchanged(self._ca_cache.get(p), p) else _load_certs(p)
            for p in _files(self._ca_paths, CA_PATTERNS)
        }
        self._crl_cache = {
            p: self._crl_cache[p] if _unchanged(self._crl_cache.get(p), p) else _load_crl(p)
            for p in _files(self._crl_paths, CRL_PATTERNS)
        }
        state = (
            [(p, e.mtime_ns) for p, e in self._ca_cache.items()],
            [(p, e.mtime_ns) for p, e in self._crl_cache.items()],
        )
        if state != self._files_state and self._cache is not None:
            self._cache.clear()  # a CA or CRL file came, went or changed: decide afresh
        self._files_state = state
        every = self._static_cas + tuple(c for e in self._ca_cache.values() for c in e.certs)
        self._anchors = tuple(c for c in every if _is_self_signed(c))
        self._intermediates = tuple(c for c in every if not _is_self_signed(c))
        if not self._anchors:
            log.warning("trust.no_anchors", paths=[str(p) for p in self._ca_paths])

    def validate(
        self,
        leaf: x509.Certificate,
        intermediates: Iterable[x509.Certificate] = (),
        *,
        at: dt.datetime | None = None,
    ) -> tuple[x509.Certificate, ...]:
        """The validated chain, leaf first, ending at a trust anchor; or raise ``TrustError``."""
        when = at or self._clock()
        self._maybe_reload(when)
        offered = tuple(intermediates)
        key = ChainKey(leaf, offered)
        if self._cache is not None and (chain := self._cache.get(key, when)) is not None:
            return chain
        _check_period(leaf, when, "the signer certificate")
        _check_key_usage(leaf)
        pool = [*offered, *self._intermediates]
        chain = self._build_chain(leaf, pool, when)
        crls_until = self._check_revocation(chain, when)
        if self._cache is not None:
            self._cache.put(key, TrustDecision.of(chain, crls_until))
        return chain

    def cache_info(self) -> CacheInfo | None:
        """Hits, misses and size of the decision cache (None when caching is off)."""
        return self._cache.info() if self._cache is not None else None

    def _build_chain(
        self, leaf: x509.Certificate, pool: list[x509.Certificate], at: dt.datetime
    ) -> tuple[x509.Certificate, ...]:
        if not self._anchors:
            raise TrustError("the trust store holds no CA", code="trust.unknown_ca")
        verifier = (
            PolicyBuilder()
            .store(Store(list(self._anchors)))
            .time(at)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
            .build_client_verifier()
        )
        try:
            return tuple(verifier.verify(leaf, pool).chain)
        except VerificationError as exc:
            raise self._diagnose(leaf, pool, at, str(exc)) from exc

    def _diagnose(
        self, leaf: x509.Certificate, pool: list[x509.Certificate], at: dt.datetime, why: str
    ) -> TrustError:
        """Name the first reason a chain failed: an expired link, an unknown CA, or other."""
        current, seen = leaf, {leaf}
        while not any(_issued_by(current, a) for a in self._anchors):
            parents = [c for c in pool if c not in seen and _issued_by(current, c)]
            if not parents:
                return TrustError(
                    f"the signer certificate's issuer {current.issuer.rfc4514_string()} "
                    "is not a trusted CA",
                    code="trust.unknown_ca",
                )
            current = parents[0]
            seen.add(current)
            try:
                _check_period(current, at, "an intermediate CA certificate")
            except TrustError as err:
                return err
        for anchor in (a for a in self._anchors if _issued_by(current, a)):
            try:
                _check_period(anchor, at, "the root CA certificate")
            except TrustError as err:
                return err
        return TrustError(f"the certificate chain is invalid: {why}", code="trust.chain_invalid")

    def _check_revocation(
        self, chain: tuple[x509.Certificate, ...], at: dt.datetime
    ) -> dt.datetime | None:
        """Refuse a revoked link; return the earliest nextUpdate of the CRLs consulted."""
        until: dt.datetime | None = None
        for cert, issuer in pairwise(chain):
            crls = self._crls_for(issuer, at)
            for entry in crls:
                if entry.next_update is not None:
                    until = entry.next_update if until is None else min(until, entry.next_update)
                if entry.crl.get_revoked_certificate_by_serial_number(cert.serial_number):
                    raise TrustError(
                        f"certificate {cert.subject.rfc4514_string()} serial "
                        f"{cert.serial_number:x} is revoked",
                        code="trust.revoked",
                    )
        return until

    def _crls_for(self, issuer: x509.Certificate, at: dt.datetime) -> list[CachedCrl]:
        named = [e for e in self.crls if e.crl.issuer == issuer.subject]
        good = [e for e in named if _crl_signed_by(e.crl, issuer)]
        who = issuer.subject.rfc4514_string()
        if len(good) < len(named):
            log.warning("trust.crl_bad_signature", issuer=who, ignored=len(named) - len(good))
            if not good:
                raise TrustError(f"no CRL of {who} has a valid signature", code="trust.crl_invalid")
        if not good and self.require_crl:
            raise TrustError(f"no CRL is configured for {who}", code="trust.crl_missing")
        for entry in good:
            if entry.is_stale(at):
                log.warning("trust.crl_stale", issuer=who, next_update=str(entry.next_update))
                if self.refuse_stale_crl:
                    raise TrustError(
                        f"the CRL of {who} expired at {entry.next_update}", code="trust.crl_stale"
                    )
        return good

    def _maybe_reload(self, at: dt.datetime) -> None:
        """Pick up new CA/CRL files periodically, and at once when a cached CRL went stale."""
        if not (self._ca_paths or self._crl_paths):
            return
        age_s = time.monotonic() - self._loaded_at_s
        due = self.reload_interval_s is not None and age_s >= self.reload_interval_s
        if due or any(c.is_stale(at) for c in self._crl_cache.values()):
            self._reload_quietly()

    def _reload_quietly(self) -> None:
        try:
            self.reload()
        except ConfigError as exc:
            log.warning("trust.reload_failed", error=str(exc))


def _ee_policy() -> ExtensionPolicy:
    return ExtensionPolicy.permit_all()


def _ca_policy() -> ExtensionPolicy:
    return ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None
    )


_EE_POLICY = _ee_policy()
_CA_POLICY = _ca_policy()


def _check_period(cert: x509.Certificate, at: dt.datetime, what: str) -> None:
    name = cert.subject.rfc4514_string()
    if at < cert.not_valid_before_utc:
        raise TrustError(
            f"{what} ({name}) is not valid before {cert.not_valid_before_utc.isoformat()}",
            code="trust.not_yet_valid",
        )
    if at > cert.not_valid_after_utc:
        raise TrustError(
            f"{what} ({name}) expired at {cert.not_valid_after_utc.isoformat()}",
            code="trust.expired",
        )


def _check_key_usage(cert: x509.Certificate) -> None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise TrustError(
            "the signer certificate has no key usage extension", code="trust.bad_key_usage"
        ) from exc
    if not (usage.digital_signature or usage.content_commitment):
        raise TrustError(
            "the signer certificate allows neither digitalSignature nor nonRepudiation",
            code="trust.bad_key_usage",
        )


def _is_self_signed(cert: x509.Certificate) -> bool:
    return _issued_by(cert, cert)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s name and key signed ``cert`` (no other checks)."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _issuer_key(key: PublicKeyTypes) -> TypeGuard[CertificateIssuerPublicKeyTypes]:
    return isinstance(key, _ISSUER_KEY_TYPES)


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    if not _issuer_key(key):
        return False
    try:
        return crl.is_signature_valid(key)
    except (TypeError, ValueError):
        return False


def _files(paths: Iterable[Path], patterns: Sequence[str]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted({f for pattern in patterns for f in path.glob(pattern)}))
        elif path.exists():
            found.append(path)
    return found


def _unchanged(entry: CachedCrl | _CachedCerts | None, path: Path) -> bool:
    return entry is not None and entry.mtime_ns == _mtime_ns(path)


def _mtime_ns(path: Path) -> int:
    return path.stat().st_mtime_ns


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}", code="config.trust_file") from exc


def _load_certs(path: Path) -> _CachedCerts:
    data = _read(path)
    try:
        if b"-----BEGIN" in data:
            certs = tuple(x509.load_pem_x509_certificates(data))
        else:
            certs = (x509.load_der_x509_certificate(data),)
    except ValueError as exc:
        raise ConfigError(f"{path} is not a certificate: {exc}", code="config.trust_file") from exc
    return _CachedCerts(certs, _mtime_ns(path))


def _load_crl(path: Path) -> CachedCrl:
    data = _read(path)
    try:
        if b"-----BEGIN" in data:
            crl = x509.load_pem_x509_crl(data)
        else:
            crl = x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise ConfigError(f"{path} is not a CRL: {exc}", code="config.trust_file") from exc
    return CachedCrl(crl, path, _mtime_ns(path), crl.next_update_utc)
