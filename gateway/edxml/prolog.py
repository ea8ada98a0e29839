"""Checks on a package's bytes before any parsing: UTF-8 only, not empty, not binary or another
text format, an XML 1.0 declaration if any, and no ``<!DOCTYPE`` (so no entity is ever declared).
"""

from __future__ import annotations

import codecs
import re

from gateway.core.errors import PackageError

_UTF8_BOM = codecs.BOM_UTF8
_WIDE_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_EBCDIC_DECL = b"\x4c\x6f\xa7\x94"  # "<?xm" in EBCDIC
_UTF8_NAMES = frozenset({"utf-8", "utf8"})
_SNIFF_BYTES = 512
_MARKUP_START = b"< \t\r\n"

_WHITESPACE = re.compile(rb"[ \t\r\n]*")
_PROLOG = re.compile(rb"(?:[ \t\r\n]+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)
_DECLARATION = re.compile(
    rb"<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*([\"'])([^\"']*)\1"
    rb"(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*([\"'])([^\"']*)\3)?"
)
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r") + b"\x7f"
_NOT_CONTROL = bytes(b for b in range(256) if b not in _CONTROL_BYTES)


def check_bytes(data: bytes) -> None:
    """Encoding, emptiness, binary content, the XML declaration and the absence of a DOCTYPE."""
    if data.startswith(_WIDE_BOMS) or data.startswith(_EBCDIC_DECL) or _is_wide_text(data[:4]):
        raise PackageError(
            "the package is not UTF-8 (UTF-16/UTF-32/EBCDIC detected)", code="edxml.bad_encoding"
        )
    start = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    first = _skip_whitespace(data, start)
    if first == len(data):
        raise PackageError("the package is empty", code="edxml.empty")
    if data[first] != ord("<"):
        _refuse_non_xml(data[first : first + _SNIFF_BYTES])
    _check_declaration(data, start)
    prolog_end = _PROLOG.match(data, start)
    assert prolog_end is not None  # the pattern matches the empty string
    if data[prolog_end.end() : prolog_end.end() + 9].upper() == b"<!DOCTYPE":
        raise PackageError("DOCTYPE declarations are not allowed", code="edxml.dtd_forbidden")


def _is_wide_text(head: bytes) -> bool:
    """UTF-16/UTF-32 without a BOM: ``<`` or whitespace as a 2- or 4-byte code unit."""
    if len(head) < 4:
        return False
    little = head[0] in _MARKUP_START and head[1] == 0
    big = head[1] in _MARKUP_START and head[0] == 0
    big32 = head[:3] == b"\x00\x00\x00" and head[3] in _MARKUP_START
    return little or big or big32


def _skip_whitespace(data: bytes, start: int) -> int:
    match = _WHITESPACE.match(data, start)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _refuse_non_xml(head: bytes) -> None:
    """The first significant byte is not ``<``: binary garbage or some other text format."""
    try:
        codecs.utf_8_decode(head, "strict", False)
    except UnicodeDecodeError as exc:
        raise PackageError("binary data, not an XML document", code="edxml.binary") from exc
    if head.translate(None, _NOT_CONTROL):
        raise PackageError("binary data, not an XML document", code="edxml.binary")
    raise PackageError("not an XML document (it does not start with '<')", code="edxml.not_xml")


def _check_declaration(data: bytes, start: int) -> None:
    """An XML declaration, if present, must say version 1.0 and (if anything) UTF-8."""
    match = _DECLARATION.match(data, start)
    if match is None:
        return  # no declaration, or one libxml2 will refuse as malformed
    version, encoding = match.group(2), match.group(4)
    if version != b"1.0":
        raise PackageError(
            f"XML version {version.decode('ascii', 'replace')!r} is not supported (1.0 only)",
            code="edxml.bad_version",
        )
    if encoding is not None and encoding.decode("ascii", "replace").lower() not in _UTF8_NAMES:
        raise PackageError(
            f"declared encoding {encoding.decode('ascii', 'replace')!r}: packages must be UTF-8",
            code="edxml.bad_encoding",
        )
