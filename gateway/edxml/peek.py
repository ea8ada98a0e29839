"""A stored package's sender and kind, read from its header alone (hardened, streamed, stops early).

For packages the intake accepted (so ``structure.check_structure`` held: one ``MessageHeader``,
first in ``edXMLEnvelope/edXMLHeader``, one ``From`` first in it, one ``OrganId`` in that), what
``peek_package`` reads is what ``xml_codec.read_package`` reads: ``From/OrganId`` as written, and
the kind by the presence of ``StatusCode`` in ``MessageHeader``. The bytes pass the hardened
loader's byte checks (no DOCTYPE, UTF-8, XML 1.0) and its parser options; parsing stops at the end
of ``MessageHeader``, so a 361 KB document costs what its first few kilobytes cost.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

from lxml import etree

from gateway.core.errors import PackageError
from gateway.edxml.hardened import PARSER_OPTIONS
from gateway.edxml.limits import DEFAULT_LIMITS, ParseLimits, check_size
from gateway.edxml.model import EDXML_NS, PackageKind
from gateway.edxml.prolog import check_bytes

__all__ = ["Headline", "peek_package"]

PEEK_CHUNK_BYTES = 8 * 1024
"""Bytes fed to the parser at a time: the header of a package sits in its first few kilobytes."""

_NS = f"{{{EDXML_NS}}}"
_PATH = tuple(_NS + name for name in ("edXML", "edXMLEnvelope", "edXMLHeader", "MessageHeader"))
_FROM, _ORGAN_ID, _STATUS_CODE = (_NS + n for n in ("From", "OrganId", "StatusCode"))


@dataclass(frozen=True, slots=True)
class Headline:
    """What a stored package says about itself on its first lines."""

    sender: str
    kind: PackageKind


def peek_package(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> Headline:
    """The sender and kind of ``data``; ``PackageError`` (``LimitError``) if it is not readable."""
    check_size(len(data), limits)
    check_bytes(data)
    parser = etree.XMLPullParser(events=("start", "end"), **PARSER_OPTIONS)
    events = cast("Iterator[tuple[str, etree._Element]]", parser.read_events())
    open_tags: list[object] = []  # the tags of the open elements, the root first
    try:
        for offset in range(0, len(data), PEEK_CHUNK_BYTES):
            parser.feed(data[offset : offset + PEEK_CHUNK_BYTES])
            for event, element in events:
                if event == "start":
                    open_tags.append(element.tag)
                elif len(open_tags) == len(_PATH) and tuple(open_tags) == _PATH:
                    return _headline(element)
                else:
                    open_tags.pop()
        parser.close()
    except etree.XMLSyntaxError as exc:
        raise PackageError(f"malformed XML: {exc}", code="edxml.malformed") from exc
    raise PackageError("no edXMLEnvelope/edXMLHeader/MessageHeader", code="edxml.missing_field")


def _headline(header: etree._Element) -> Headline:
    """From ``MessageHeader``: ``From/OrganId`` as written (comments skipped), and the kind."""
    organ_id = header.find(f"{_FROM}/{_ORGAN_ID}")
    if organ_id is None:
        raise PackageError("no MessageHeader/From/OrganId", code="edxml.missing_field")
    sender = "".join(str(t) for t in organ_id.itertext()) if len(organ_id) else organ_id.text or ""
    status = header.find(_STATUS_CODE) is not None
    return Headline(sender, PackageKind.STATUS if status else PackageKind.DOCUMENT)
