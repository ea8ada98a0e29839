"""Demo PKI: a root CA, its CRL and certificates naming the demo participants' OrganIds.

Layout under ``dir`` (``TrustStore.from_dir`` reads the ``trust/`` half):

    trust/ca/root.pem                  the root CA certificate (the trust anchor)
    trust/crl/root.crl.pem             the root CA's CRL (initially empty)
    ca/root.key.pem                    the root CA key (0600)
    participants/<OrganId>/key.pem     a participant's key (0600)
    participants/<OrganId>/cert.pem    its certificate (SAN URI ``urn:lgsp:organ-id:<OrganId>``)
    participants/<OrganId>/chain.pem   its chain, leaf first, up to and including the root
    gateway/{key,cert,chain}.pem       the gateway's own identity: always P-256 (ES256), whatever
                                       the participants' key type (``signatures.identity``)

Only for demos and tests: the keys are unencrypted on disk.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gateway.core.directory import ParticipantKind, ParticipantLevel
from gateway.core.errors import ConfigError
from gateway.signatures.binding import ORGAN_ID_URI_PREFIX
from gateway.signatures.identity import GATEWAY_DIR, Identity, PrivateKey, load_identity_dir

KeyType: TypeAlias = Literal["rsa", "ec"]

ROOT_CA_NAME = "LGSP Demo Root CA"
GATEWAY_ID = GATEWAY_DIR
GATEWAY_KEY_TYPE: KeyType = "ec"  # the gateway signs receipts and push requests with ES256
ROOT_VALID_DAYS = 3650
CRL_VALID_DAYS = 7
CLOCK_SKEW = dt.timedelta(minutes=5)
SIGNING_KEY_USAGE = frozenset({"digital_signature", "content_commitment"})
_KEY_USAGE_FIELDS = (  # x509.KeyUsage flags, without encipher_only / decipher_only
    *("digital_signature", "content_commitment", "key_encipherment", "data_encipherment"),
    *("key_agreement", "key_cert_sign", "crl_sign"),
)


@dataclass(frozen=True, slots=True)
class DemoParticipant:
    """One demo participant: OrganId (or tax code), display name, kind, level and parent."""

    organ_id: str
    name: str
    kind: ParticipantKind
    level: ParticipantLevel
    parent: str | None = None
    tax_code: str | None = None  # businesses: the certificate carries UID ``MST:<tax code>``


# OrganIds follow ``LLL.KK.JJ.XNN`` (Thông tư 10/2016/TT-BTTTT): H56 = Thanh Hóa; the level-2
# units (departments, districts) take the third group, level-3 units (communes) the second.
# The Party code ``000.00.00.A56`` is a documented demo assumption: letter A = Đảng is a
# recollection, not confirmed, and 56 mirrors the province number. Replace with the province's
# published code list before production use.
_P, _K, _L = DemoParticipant, ParticipantKind, ParticipantLevel
DEMO_PARTICIPANTS: tuple[DemoParticipant, ...] = (
    _P("000.00.00.H56", "UBND tỉnh Thanh Hóa", _K.STATE, _L.PROVINCE),
    _P("000.00.04.H56", "Sở Nội vụ tỉnh Thanh Hóa", _K.STATE, _L.PROVINCE, "000.00.00.H56"),
    _P("000.00.15.H56", "UBND huyện Quảng Xương", _K.STATE, _L.DISTRICT, "000.00.00.H56"),
    _P("000.01.15.H56", "UBND xã Quảng Nham", _K.STATE, _L.COMMUNE, "000.00.15.H56"),
    _P("000.00.00.A56", "Tỉnh ủy Thanh Hóa", _K.PARTY, _L.PROVINCE),
    _P("0101234567", "Công ty Cổ phần Phần mềm Demo", _K.BUSINESS, _L.PROVINCE, None, "0101234567"),
    _P("000.00.00.G22", "Văn phòng Chính phủ", _K.NATIONAL, _L.NATIONAL),
)


@dataclass(frozen=True, slots=True)
class PkiLayout:
    """Where ``init_pki`` put things; ``created`` is False when an existing CA was reused."""

    dir: Path
    created: bool = True

    @property
    def trust_dir(self) -> Path:
        return self.dir / "trust"

    @property
    def ca_cert_path(self) -> Path:
        return self.dir / "trust" / "ca" / "root.pem"

    @property
    def crl_path(self) -> Path:
        return self.dir / "trust" / "crl" / "root.crl.pem"

    @property
    def ca_key_path(self) -> Path:
        return self.dir / "ca" / "root.key.pem"

    @property
    def participants_dir(self) -> Path:
        return self.dir / "participants"

    def identity_dir(self, organ_id: str) -> Path:
        """``participants/<OrganId>``, or ``gateway/`` for :data:`GATEWAY_ID`."""
        if organ_id == GATEWAY_ID:
            return self.dir / GATEWAY_DIR
        if not organ_id or "/" in organ_id or "\\" in organ_id or organ_id.startswith("."):
            raise ConfigError(f"not a usable OrganId: {organ_id!r}", code="config.pki_organ_id")
        return self.participants_dir / organ_id


def init_pki(
    dir: Path,
    *,
    key_type: KeyType = "rsa",
    force: bool = False,
    participants: Iterable[DemoParticipant] = DEMO_PARTICIPANTS,
) -> PkiLayout:
    """Create the demo root CA, an empty CRL, the participants and the gateway identity.

    Idempotent: an existing CA is never overwritten unless ``force`` is set (then the whole
    layout is recreated); missing participants are issued under the existing CA.
    """
    layout = PkiLayout(dir)
    created = force or not layout.ca_key_path.exists()
    if created:
        for sub in ("trust", "ca", "participants", "gateway"):
            shutil.rmtree(dir / sub, ignore_errors=True)
        _create_root(layout, key_type)
    for participant in participants:
        if not (layout.identity_dir(participant.organ_id) / "cert.pem").exists():
            issue(
                dir,
                participant.organ_id,
                name=participant.name,
                key_type=key_type,
                uid=f"MST:{participant.tax_code}" if participant.tax_code else None,
            )
    if not (layout.identity_dir(GATEWAY_ID) / "cert.pem").exists():
        issue(dir, GATEWAY_ID, name="LGSP Thanh Hóa gateway", key_type=GATEWAY_KEY_TYPE, san=False)
    return PkiLayout(dir, created=created)


def issue(
    dir: Path,
    organ_id: str,
    *,
    name: str | None = None,
    key_type: KeyType = "rsa",
    valid_from: dt.datetime | None = None,
    valid_days: int = 825,
    key_usage: frozenset[str] | None = SIGNING_KEY_USAGE,
    not_after: dt.datetime | None = None,
    uid: str | None = None,
    san: bool = True,
    save: bool = True,
    issuer: Identity | None = None,
) -> Identity:
    """Issue a certificate for ``organ_id`` under the CA in ``dir`` (or under ``issuer``).

    ``key_usage`` names ``x509.KeyUsage`` flags (None = no KeyUsage extension); ``uid`` adds a
    subject UID such as ``MST:0101234567``; ``san=False`` leaves out the OrganId SAN URI;
    ``save=False`` returns the identity without writing it (cheap variants for tests);
    ``issuer`` is an intermediate CA from :func:`issue_ca`.
    """
    layout = PkiLayout(dir)
    ca = issuer or load_ca(dir)
    ca_key, ca_cert = ca.key, ca.certificate
    key = _new_key(key_type)
    start = valid_from or (_now() - CLOCK_SKEW)
    end = not_after or (start + dt.timedelta(days=valid_days))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_subject(organ_id, name, uid))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if key_usage is not None:
        builder = builder.add_extension(_key_usage(key_usage), critical=True)
    if san:
        uri = x509.UniformResourceIdentifier(ORGAN_ID_URI_PREFIX + organ_id)
        builder = builder.add_extension(x509.SubjectAlternativeName([uri]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    identity = Identity(key=key, certificate=cert, chain=(cert, *ca.chain))
    if save:
        _save_identity(layout.identity_dir(organ_id), identity)
    return identity


def issue_ca(
    dir: Path,
    name: str,
    *,
    key_type: KeyType = "rsa",
    valid_from: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    issuer: Identity | None = None,
) -> Identity:
    """An intermediate CA named ``name`` under the root in ``dir`` (or ``issuer``); not saved."""
    parent = issuer or load_ca(dir)
    key = _new_key(key_type)
    start = valid_from or (_now() - CLOCK_SKEW)
    end = not_after or min(start + dt.timedelta(days=1825), parent.certificate.not_valid_after_utc)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.COMMON_NAME, name[:64]),
        ]
    )
    cert = (
        _ca_builder(subject, parent.certificate.subject, key, start, end)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()),
            critical=False,
        )
        .sign(parent.key, hashes.SHA256())
    )
    return Identity(key=key, certificate=cert, chain=(cert, *parent.chain))


def sign_crl(
    ca: Identity,
    revoked: Iterable[int | x509.RevokedCertificate] = (),
    *,
    last_update: dt.datetime | None = None,
    next_update: dt.datetime | None = None,
    number: int = 1,
) -> x509.CertificateRevocationList:
    """A CRL of ``ca`` listing ``revoked`` (serials or entries); e.g. a stale one in tests."""
    start = last_update or _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(start)
        .next_update(next_update or start + dt.timedelta(days=CRL_VALID_DAYS))
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for entry in revoked:
        builder = builder.add_revoked_certificate(
            entry
            if isinstance(entry, x509.RevokedCertificate)
            else x509.RevokedCertificateBuilder()
            .serial_number(entry)
            .revocation_date(start)
            .build()
        )
    return builder.sign(ca.key, hashes.SHA256())


def revoke(dir: Path, organ_id: str) -> x509.CertificateRevocationList:
    """Add the saved certificate of ``organ_id`` to the CRL and re-sign the CRL."""
    return revoke_certificate(dir, load_identity(dir, organ_id).certificate)


def revoke_certificate(dir: Path, cert: x509.Certificate) -> x509.CertificateRevocationList:
    """Add ``cert``'s serial to the CRL of the CA in ``dir`` and re-sign the CRL."""
    layout = PkiLayout(dir)
    current = x509.load_pem_x509_crl(layout.crl_path.read_bytes())
    revoked: list[int | x509.RevokedCertificate] = list(current)
    if current.get_revoked_certificate_by_serial_number(cert.serial_number) is None:
        revoked.append(cert.serial_number)
    number = current.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
    crl = sign_crl(load_ca(dir), revoked, number=number)
    _write(layout.crl_path, crl.public_bytes(serialization.Encoding.PEM))
    return crl


def load_identity(dir: Path, organ_id: str) -> Identity:
    """Load a saved identity (``GATEWAY_ID`` loads the gateway's own)."""
    return load_identity_dir(PkiLayout(dir).identity_dir(organ_id), organ_id)


def load_ca(dir: Path) -> Identity:
    """The root CA's key and certificate (e.g. to build intermediates or foreign CRLs in tests)."""
    layout = PkiLayout(dir)
    try:
        key_pem = layout.ca_key_path.read_bytes()
        cert = x509.load_pem_x509_certificate(layout.ca_cert_path.read_bytes())
    except FileNotFoundError as exc:
        raise ConfigError(
            f"no demo CA under {dir}: run init first", code="config.pki_missing"
        ) from exc
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError("unsupported CA key type", code="config.pki_key_type")
    return Identity(key=key, certificate=cert, chain=(cert,))


def _create_root(layout: PkiLayout, key_type: KeyType) -> None:
    key = _new_key(key_type)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "LGSP Demo"),
            x509.NameAttribute(NameOID.COMMON_NAME, ROOT_CA_NAME),
        ]
    )
    start = _now() - CLOCK_SKEW
    end = start + dt.timedelta(days=ROOT_VALID_DAYS)
    cert = _ca_builder(name, name, key, start, end).sign(key, hashes.SHA256())
    _write_key(layout.ca_key_path, key)
    _write(layout.ca_cert_path, cert.public_bytes(serialization.Encoding.PEM))
    crl = sign_crl(Identity(key=key, certificate=cert, chain=(cert,)))
    _write(layout.crl_path, crl.public_bytes(serialization.Encoding.PEM))


def _ca_builder(
    subject: x509.Name, issuer: x509.Name, key: PrivateKey, start: dt.datetime, end: dt.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(frozenset({"key_cert_sign", "crl_sign"})), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _subject(organ_id: str, name: str | None, uid: str | None) -> x509.Name:
    display = name or organ_id
    attributes = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, display[:64]),  # ub-organization-name
        x509.NameAttribute(NameOID.COMMON_NAME, display[:64]),  # ub-common-name
    ]
    if uid:
        attributes.append(x509.NameAttribute(NameOID.USER_ID, uid))
    return x509.Name(attributes)


def _key_usage(flags: frozenset[str]) -> x509.KeyUsage:
    unknown = flags - set(_KEY_USAGE_FIELDS)
    if unknown:
        raise ConfigError(f"unknown key usage flags {sorted(unknown)}", code="config.key_usage")
    values = {name: name in flags for name in _KEY_USAGE_FIELDS}
    return x509.KeyUsage(**values, encipher_only=False, decipher_only=False)


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _save_identity(where: Path, identity: Identity) -> None:
    _write_key(where / "key.pem", identity.key)
    _write(where / "cert.pem", identity.certificate.public_bytes(serialization.Encoding.PEM))
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in identity.chain)
    _write(where / "chain.pem", chain)


def _write_key(path: Path, key: PrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(path, pem, mode=0o600)


def _write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` atomically (temp file + rename) with ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _serial() -> int:
    return x509.random_serial_number()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
