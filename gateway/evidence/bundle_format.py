"""The evidence bundle's layout, its deterministic ZIP encoding, and the trust it is checked with.

A bundle is a ZIP of stored (uncompressed) members in a fixed order, with fixed times and
attributes, so that the same members always give the same bytes: the checker rebuilds the file
from the members it read and compares, so no byte of the file (headers included) can change
unnoticed. Its members:

    manifest.jws           the gateway's JWS over {document, store, made_at, files: {name: sha256}}
    receipt.jws            the intake receipt (the claims the sender was given, signed again)
    records.json           every event of the document, its deliveries and status answers, as
                           chained (a received event with the records it covers)
    packages/<sha256>.bin  the packages as received (the document's and its status answers')
    path.json              per checkpoint: the chain from the first of those events to it
    checkpoints/<seq>.jws  the checkpoint statements the paths end at
    checkpoints/<seq>.tsr  their RFC 3161 time-stamp responses
    certificates/*.pem     trust anchors: the province's root CA(s), the TSA's CA
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.core.errors import ConfigError, SignatureError

BUNDLE_TYPE = "lgsp-evidence-bundle+jwt"
BUNDLE_FORMAT = 1
MANIFEST = "manifest.jws"
RECEIPT = "receipt.jws"
RECORDS = "records.json"
PATH = "path.json"
PACKAGES = "packages/"
CHECKPOINTS = "checkpoints/"
CERTIFICATES = "certificates/"
MAX_BUNDLE_BYTES = 1024 * 1024 * 1024
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_zip(members: Mapping[str, bytes]) -> bytes:
    """The bundle's bytes: the manifest first, then the members by name, all stored, with fixed
    times and attributes (the same members always give the same bytes)."""
    out = io.BytesIO()
    names = sorted(members, key=lambda n: (n != MANIFEST, n))
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in names:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.create_system = 3
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, members[name])
    return out.getvalue()


def read_zip(data: bytes) -> dict[str, bytes]:
    """The members of a bundle written by ``write_zip``; ``SignatureError`` for anything else
    (a bad CRC, a changed header, a member added or moved)."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise SignatureError("the bundle is too large", code="evidence.bundle_malformed")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members: dict[str, bytes] = {}
            for info in archive.infolist():
                if info.filename in members or info.file_size > MAX_BUNDLE_BYTES:
                    raise SignatureError(
                        f"bad member {info.filename!r}", code="evidence.bundle_malformed"
                    )
                members[info.filename] = archive.read(info)
    except SignatureError:
        raise
    except Exception as exc:  # any way a changed archive breaks zipfile: CRC, flags, headers
        raise SignatureError(
            f"not a readable bundle: {exc}", code="evidence.bundle_malformed"
        ) from exc
    if write_zip(members) != data:
        raise SignatureError(
            "the bundle's bytes are not the ones its members give (a header or the layout was "
            "changed)",
            code="evidence.bundle_malformed",
        )
    return members


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


@dataclass(frozen=True, slots=True)
class Trust:
    """What a bundle is checked against: anchors (for the gateway's chain and the TSA's) and
    the gateway certificates a signature must come from (none: whichever signed the manifest,
    reported by fingerprint for a person to compare)."""

    anchors: tuple[x509.Certificate, ...]
    gateway_certs: tuple[x509.Certificate, ...]

    @classmethod
    def from_dir(cls, where: Path) -> Trust:
        """``*.pem`` of a directory (``<archive dir>/trust`` as the gateway exports it): the
        self-signed ones are anchors, the others the pinned gateway certificates."""
        if not where.is_dir():
            raise ConfigError(f"no trust directory {where}", code="config.trust_missing")
        certs = [c for p in sorted(where.glob("*.pem")) for c in _certs(p.read_bytes(), p.name)]
        trust = cls(
            tuple(c for c in certs if is_self_signed(c)),
            tuple(c for c in certs if not is_self_signed(c)),
        )
        if not trust.anchors or not trust.gateway_certs:
            raise ConfigError(
                f"{where} needs the anchors (self-signed CA certificates) and the gateway's "
                "certificate, as in the gateway's archive/trust directory",
                code="config.trust_missing",
            )
        return trust

    @classmethod
    def from_members(cls, members: Mapping[str, bytes]) -> Trust:
        """The anchors the bundle carries itself (only as good as a person's check of them)."""
        certs = [
            c
            for name, data in members.items()
            if name.startswith(CERTIFICATES)
            for c in _certs(data, name)
        ]
        return cls(tuple(c for c in certs if is_self_signed(c)), ())


def _certs(data: bytes, name: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise SignatureError(
            f"{name} holds no readable certificate: {exc}", code="evidence.bundle_malformed"
        ) from exc
