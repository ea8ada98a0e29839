"""A stored package read back for the document page: its records, attachments and signer chain.

The package was verified at intake; here it is only parsed again (hardened, with the gateway's
limits) to show it. The chain comes from the package itself: ``KeyInfo/X509Data`` of an XML
signature, or the ``x5c`` header of a JWS.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from lxml import etree

from gateway.core.errors import LgspError, NotFoundError
from gateway.edxml import json_codec
from gateway.edxml.attachments import decode_attachment
from gateway.edxml.formats import PackageFormat, jws_payload
from gateway.edxml.hardened import load_xml
from gateway.edxml.limits import ParseLimits
from gateway.edxml.model import DocumentPackage, Package
from gateway.edxml.xml_codec import read_package
from gateway.signatures.binding import fingerprint
from gateway.signatures.certificates import load_untrusted_der
from gateway.signatures.jws import verify_jws
from gateway.signatures.verify import JWS_ALGORITHMS

_JWS_ALGS = frozenset(JWS_ALGORITHMS)


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    subject: str
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime
    fingerprint: str


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    index: int
    name: str
    content_type: str | None
    description: str | None
    size_bytes: int | None  # None: the base64 does not decode


@dataclass(frozen=True, slots=True)
class PackageDetail:
    """What the page shows of the stored package; ``error`` when it cannot be read."""

    package: Package | None
    attachments: tuple[AttachmentInfo, ...] = ()
    chain: tuple[CertificateInfo, ...] = ()
    error: str | None = None


def _read(
    data: bytes, fmt: PackageFormat, limits: ParseLimits
) -> tuple[Package, tuple[x509.Certificate, ...]]:
    if fmt is PackageFormat.XML:
        root = load_xml(data, limits)
        return read_package(root), _xml_certificates(root)
    if data.lstrip().startswith(b"{"):  # logged as its JSON payload by older releases
        return json_codec.loads(data, limits), ()
    try:
        check = verify_jws(data, allowed_algs=_JWS_ALGS, max_bytes=len(data) + 1)
    except LgspError:
        return json_codec.loads(jws_payload(data), limits), ()
    return json_codec.loads(check.payload, limits), check.certificates


def _xml_certificates(root: etree._Element) -> tuple[x509.Certificate, ...]:
    """Every ``X509Certificate`` inside a ``Signature`` element, in document order."""
    found = []
    for element in root.iter():
        if not isinstance(element.tag, str) or etree.QName(element).localname != "X509Certificate":
            continue
        parent = element.getparent()
        while parent is not None and etree.QName(parent).localname != "Signature":
            parent = parent.getparent()
        if parent is None:
            continue
        try:
            der = base64.b64decode("".join((element.text or "").split()), validate=True)
            found.append(load_untrusted_der(der))
        except (binascii.Error, ValueError):
            continue
    return tuple(found)


def _certificate_info(cert: x509.Certificate) -> CertificateInfo:
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint=fingerprint(cert),
    )


def _attachment_infos(package: Package) -> tuple[AttachmentInfo, ...]:
    if not isinstance(package, DocumentPackage):
        return ()
    infos = []
    for i, att in enumerate(package.attachments):
        try:
            size: int | None = len(att.data())
        except (binascii.Error, ValueError):
            size = None
        infos.append(
            AttachmentInfo(
                i,
                att.attachment_name or att.content_id,
                att.content_type or att.mime_type,
                att.description,
                size,
            )
        )
    return tuple(infos)


def package_detail(data: bytes, fmt: PackageFormat, limits: ParseLimits) -> PackageDetail:
    """The stored package as the page shows it; a package that cannot be read gives ``error``."""
    try:
        package, chain = _read(data, fmt, limits)
    except LgspError as exc:
        return PackageDetail(None, error=f"{exc.code}: {exc.message}")
    return PackageDetail(
        package, _attachment_infos(package), tuple(_certificate_info(c) for c in chain)
    )


def attachment_file(
    data: bytes, fmt: PackageFormat, index: int, limits: ParseLimits
) -> tuple[str, bytes]:
    """``(file name, decoded bytes)`` of attachment ``index``; ``NotFoundError`` if none."""
    package, _ = _read(data, fmt, limits)
    if not isinstance(package, DocumentPackage) or not 0 <= index < len(package.attachments):
        raise NotFoundError(f"no attachment {index}", code="not_found.attachment")
    att = package.attachments[index]
    return att.attachment_name or att.content_id, decode_attachment(att, limits)
