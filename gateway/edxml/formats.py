"""Tell the three package encodings apart (edXML, JSON, compact JWS) and open a JWS unverified."""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum

from gateway.core.errors import PackageError

_BOM = b"\xef\xbb\xbf"


class PackageFormat(StrEnum):
    XML = "xml"
    JSON = "json"
    JWS = "jws"

    @property
    def media_type(self) -> str:
        return {"xml": "application/xml", "json": "application/json", "jws": "application/jose"}[
            self.value
        ]


def sniff_format(data: bytes) -> PackageFormat:
    """Guess the encoding from the first significant byte; refuse what is none of the three."""
    head = data[:64].removeprefix(_BOM).lstrip()
    if head.startswith(b"<"):
        return PackageFormat.XML
    if head.startswith(b"{"):
        return PackageFormat.JSON
    if head.startswith(b"eyJ") and data.count(b".") == 2:
        return PackageFormat.JWS
    if not head:
        raise PackageError("the package is empty", code="edxml.empty")
    raise PackageError("not an edXML, JSON or compact JWS package", code="package.unknown_format")


def jws_payload(token: bytes) -> bytes:
    """The payload of a compact JWS, NOT verified: for inspecting and re-signing only."""
    parts = token.strip().split(b".")
    if len(parts) != 3:
        raise PackageError("a compact JWS has three dot-separated parts", code="jws.malformed")
    payload = parts[1]
    try:
        return base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4))
    except (binascii.Error, ValueError) as exc:
        raise PackageError("the JWS payload is not base64url", code="jws.malformed") from exc
