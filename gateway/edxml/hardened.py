"""Hardened XML loading: no DTDs, no entities, no network, no XInclude, bounded size and shape.

``load_xml`` is the only way untrusted bytes become an lxml tree. Each refusal has its own code
(the catalogue is ``tests/edxml/malicious/EXPECTED.toml``):

* from the bytes, before parsing (``prolog.check_bytes``): size, emptiness, encodings other than
  UTF-8, binary or non-XML input, XML 1.1, and any ``<!DOCTYPE`` (so no entity is declared and
  nothing can be fetched);
* while parsing: packages over ``SINGLE_FEED_MAX_BYTES`` go to libxml2 in chunks and the start
  events are checked between chunks, so a million elements or 10,000 levels are never fully built
  (libxml2 itself stops at 2048 levels; smaller packages cannot hold more than ~130,000 elements);
* on the finished tree, in C: processing instructions, XInclude elements, the exact element count
  and depth, the attachment count and each attachment's estimated decoded size.

libxml2's errors are translated here, once. HTTP intake refuses oversize bodies before buffering
them with ``check_size`` / ``read_limited`` (from ``limits``, re-exported here).
"""

from __future__ import annotations

import codecs
import functools
import threading
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, cast

from lxml import etree

from gateway.core.errors import LimitError, PackageError
from gateway.edxml.limits import (
    DEFAULT_LIMITS,
    ByteStream,
    ParseLimits,
    check_size,
    read_limited,
)
from gateway.edxml.model import EDXML_NS
from gateway.edxml.prolog import check_bytes

__all__ = ["PARSER_OPTIONS", "ByteStream", "check_bytes", "check_size", "load_xml", "read_limited"]

FEED_CHUNK_BYTES = 64 * 1024
"""Bytes handed to libxml2 per feed; the shape limits are checked between feeds. Small chunks
keep memory near the package size plus its tree (libxml2 copies whatever it is fed)."""

SINGLE_FEED_MAX_BYTES = 512 * 1024
"""Packages up to this size are parsed in one piece (fastest; at most ~130,000 elements) and
their shape checked on the finished tree; larger ones are fed in chunks."""

XINCLUDE_NAMESPACES = frozenset(
    {"http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude"}
)

_ATTACHMENTS = etree.XPath("/*/e:AttachmentEncoded/e:Attachment", namespaces={"e": EDXML_NS})
_ENCODED_TAG = f"{{{EDXML_NS}}}ContentTransferEncoded"

# libxml2 error numbers (lxml.etree.ErrorTypes) and the codes they translate to.
_ENTITY_ERRORS = (26, 27, 28, 29, 30, 88, 89, 90)  # undeclared/unparsed/external/loop
_ENCODING_ERRORS = (31, 32, 81)  # unknown/unsupported encoding, invalid UTF-8 bytes
_INVALID_CHAR = 9  # a character XML 1.0 forbids (control characters, &#0;, U+FFFE)
_NAMESPACE_ERRORS = range(200, 300)  # unbound prefix, bad xml/xmlns binding, bad QName
_RESOURCE_LIMIT = 114  # libxml2's own hard limits (depth 2048 with huge_tree)
_CHARACTER_ERRORS = (*_ENCODING_ERRORS, _INVALID_CHAR)
_ENTITY_CODE = "edxml.entity_forbidden"
_CODE_BY_ERROR: dict[int, tuple[str, str]] = {
    **dict.fromkeys(_ENCODING_ERRORS, ("edxml.bad_encoding", "invalid UTF-8")),
    _INVALID_CHAR: ("edxml.invalid_char", "character not allowed in XML"),
    **dict.fromkeys(_NAMESPACE_ERRORS, ("edxml.bad_namespace", "namespace error")),
}
_LEVEL_ERROR, _LEVEL_FATAL = 2, 3  # lxml.etree.ErrorLevels


def load_xml(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> etree._Element:
    """Parse untrusted bytes into an lxml root element, or raise ``PackageError``/``LimitError``.

    Comments are kept (real producers write them); CDATA sections become plain text.
    """
    check_size(len(data), limits)
    check_bytes(data)
    root = _parse(data, limits)
    _check_tree(root, len(data), limits)
    return root


# --- parsing: whole (small packages) or in chunks with start events checked between chunks --------


def _parse(data: bytes, limits: ParseLimits) -> etree._Element:
    _clear_error_log()
    if len(data) <= SINGLE_FEED_MAX_BYTES:
        return _parse_whole(data)
    return _parse_in_chunks(data, limits)


def _parse_whole(data: bytes) -> etree._Element:
    """One feed into this thread's reused parser: as fast as ``etree.fromstring``."""
    parser = _thread_parser()
    at_end = False
    try:
        parser.feed(data)
        at_end = True
        return parser.close()
    except etree.XMLSyntaxError as exc:
        _THREAD.parser = None  # never reuse a parser that failed
        raise _failure(exc, data, at_end=at_end) from exc
    except BaseException:
        _THREAD.parser = None
        raise


def _parse_in_chunks(data: bytes, limits: ParseLimits) -> etree._Element:
    """Chunks into a pull parser; count and open depth are checked after every chunk."""
    parser = etree.XMLPullParser(events=("start",), **PARSER_OPTIONS)
    events = cast("Iterator[tuple[str, etree._Element]]", parser.read_events())
    guard = _ShapeGuard(limits)
    at_end = False
    try:
        for offset in range(0, len(data), FEED_CHUNK_BYTES):
            parser.feed(data[offset : offset + FEED_CHUNK_BYTES])
            guard.consume(events)
        at_end = True
        return parser.close()
    except etree.XMLSyntaxError as exc:
        try:
            guard.consume(events)  # a limit crossed before the error is the better answer
        except LimitError as refusal:
            raise refusal from exc
        raise _failure(exc, data, at_end=at_end) from exc


PARSER_OPTIONS: dict[str, Any] = {
    "encoding": "utf-8",  # the declaration was checked; never let it switch the decoder
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "attribute_defaults": False,
    "huge_tree": True,  # 20+ MB text nodes; our own limits replace libxml2's
    "remove_blank_text": False,
    "remove_comments": False,
    "remove_pis": False,
}
_THREAD = threading.local()


def _thread_parser() -> etree.XMLParser:
    """This thread's parser (lxml parsers are reusable, not shareable between threads)."""
    parser: etree.XMLParser | None = getattr(_THREAD, "parser", None)
    if parser is None:
        parser = _THREAD.parser = etree.XMLParser(**PARSER_OPTIONS)
    return parser


class _ShapeGuard:
    """Element count and the depth of the innermost open element, from start events.

    End events would cost as much again per element; the exact depth is measured on the finished
    tree, and libxml2 itself stops at 2048 levels within a chunk.
    """

    __slots__ = ("elements", "limits")

    def __init__(self, limits: ParseLimits) -> None:
        self.elements = 0
        self.limits = limits

    def consume(self, events: Iterator[tuple[str, etree._Element]]) -> None:
        last: etree._Element | None = None
        for _event, element in events:
            self.elements += 1
            if self.elements > self.limits.max_elements:
                raise _too_many_elements(element, self.limits)
            last = element
        if last is not None and self.elements > self.limits.max_depth:
            depth = 1 + len(list(last.iterancestors()))
            if depth > self.limits.max_depth:
                raise _too_deep(last, self.limits)


def _failure(exc: etree.XMLSyntaxError, data: bytes, *, at_end: bool) -> PackageError:
    at = data.find(b"\x00")  # XML never allows NUL: looked for only once libxml2 has failed
    if at >= 0:
        return PackageError(f"NUL byte at offset {at}: binary data", code="edxml.binary")
    return _translate(exc, data, at_end=at_end)


def _clear_error_log() -> None:
    """Empty lxml's (thread-local) error log so that an exception lists only this parse."""
    etree.clear_error_log()


class _LoggedError(NamedTuple):
    kind: int  # libxml2 error number
    fatal: bool
    message: str
    line: int
    column: int  # in characters, from 1


def _translate(exc: etree.XMLSyntaxError, data: bytes, *, at_end: bool) -> PackageError:
    """One libxml2 failure -> the most specific ``PackageError``.

    ``at_end``: libxml2 gave up in ``close()``. That alone does not mean the input was cut off
    (libxml2 also waits for the ``;`` of ``AT&T`` until the end); it was if no ``>`` follows the
    error (the input stopped inside markup or text), or it ends in the middle of a character.
    """
    errors = _logged_errors(exc)
    for error in errors:
        if error.kind in _ENTITY_ERRORS:
            return PackageError(f"entity reference not allowed: {error.message}", code=_ENTITY_CODE)
    first = errors[0]
    if first.kind == _RESOURCE_LIMIT:
        code = "edxml.too_deep" if "depth" in first.message.lower() else "edxml.too_large"
        return LimitError(f"parser limit: {first.message}", code=code)
    if at_end and (
        _ends_mid_character(data)
        if first.kind in _CHARACTER_ERRORS
        else any(e.fatal and _nothing_closes_after(data, e.line, e.column) for e in errors)
    ):
        return PackageError(
            f"the document ends prematurely: {first.message}", code="edxml.truncated"
        )
    code, what = _CODE_BY_ERROR.get(first.kind, ("edxml.malformed", "malformed XML"))
    return PackageError(f"{what}: {first.message}", code=code)


def _logged_errors(exc: etree.XMLSyntaxError) -> list[_LoggedError]:
    """The errors this parse logged (warnings left out), first first."""
    errors = [
        _LoggedError(
            int(entry.type),
            int(entry.level) >= _LEVEL_FATAL,
            " ".join(str(entry.message).split()),
            int(entry.line),
            int(entry.column),
        )
        for entry in cast("Iterable[Any]", exc.error_log)
        if int(entry.level) >= _LEVEL_ERROR
    ]
    if errors:
        return errors
    line, column = exc.position
    return [_LoggedError(int(getattr(exc, "code", 0)), True, str(exc.msg), line, column)]


def _nothing_closes_after(data: bytes, line: int, column: int) -> bool:
    """Whether no ``>`` follows libxml2's error position (line from 1, column in characters)."""
    end = len(data)
    start = data.rfind(b"\n") + 1
    for _ in range(data.count(b"\n") + 1 - line):  # walk back to the error's line
        if b">" in data[start:end]:
            return False
        end = start - 1
        start = data.rfind(b"\n", 0, end) + 1
    return ">" not in data[start:end].decode("utf-8", "ignore")[column - 1 :]


def _ends_mid_character(data: bytes) -> bool:
    """Whether the last bytes are the start of a UTF-8 sequence that the input cut off."""
    decoder = codecs.getincrementaldecoder("utf-8")("ignore")
    decoder.decode(data[-4:], False)
    pending, _flags = decoder.getstate()
    return bool(pending)


# --- after parsing: the finished tree -----------------------------------------------------------


def _check_tree(root: etree._Element, size_bytes: int, limits: ParseLimits) -> None:
    docinfo = root.getroottree().docinfo
    dtds = cast("tuple[etree.DTD | None, ...]", (docinfo.internalDTD, docinfo.externalDTD))
    if any(dtd is not None for dtd in dtds):
        raise PackageError("DOCTYPE declarations are not allowed", code="edxml.dtd_forbidden")
    _refuse_foreign_nodes(root)
    _check_shape(root, limits)
    _check_attachments(root, size_bytes, limits)


def _refuse_foreign_nodes(root: etree._Element) -> None:
    """Processing instructions anywhere (the XML declaration is none) and XInclude elements."""
    around = [*root.itersiblings(preceding=True), *root.itersiblings()]
    inside = root.iter(etree.PI, *(f"{{{uri}}}*" for uri in XINCLUDE_NAMESPACES))
    for node in (*(n for n in around if isinstance(n, etree._ProcessingInstruction)), *inside):
        if isinstance(node, etree._ProcessingInstruction):
            raise PackageError(
                f"processing instruction <?{node.target!s} ...?> is not allowed",
                code="edxml.pi_forbidden",
                path=f"line {node.sourceline}",
            )
        raise PackageError(
            "XInclude elements are not allowed",
            code="edxml.xinclude_forbidden",
            path=f"line {node.sourceline}",
        )


def _check_shape(root: etree._Element, limits: ParseLimits) -> None:
    """Exact element count and depth, both evaluated in C."""
    elements = int(cast("float", _COUNT_ELEMENTS(root)))
    if elements > limits.max_elements:
        first_extra = cast("list[etree._Element]", _nth_element(limits.max_elements + 1)(root))
        raise _too_many_elements(first_extra[0], limits)
    if elements > limits.max_depth:  # fewer elements cannot nest that deep
        too_deep = cast("list[etree._Element]", _depth_probe(limits.max_depth)(root))
        if too_deep:
            raise _too_deep(too_deep[0], limits)


_COUNT_ELEMENTS = etree.XPath("count(//*)")


@functools.lru_cache(maxsize=8)
def _nth_element(position: int) -> etree.XPath:
    return etree.XPath(f"(//*)[{position}]")


@functools.lru_cache(maxsize=8)
def _depth_probe(max_depth: int) -> etree.XPath:
    """XPath selecting the first element nested deeper than ``max_depth`` (the root is level 1)."""
    return etree.XPath("(/" + "*/" * max_depth + "*)[1]")


def _too_many_elements(element: etree._Element, limits: ParseLimits) -> LimitError:
    return LimitError(
        f"the package has more than {limits.max_elements} elements",
        code="edxml.too_many_elements",
        path=f"line {element.sourceline}",
    )


def _too_deep(element: etree._Element, limits: ParseLimits) -> LimitError:
    return LimitError(
        f"elements nest deeper than {limits.max_depth} levels",
        code="edxml.too_deep",
        path=f"line {element.sourceline}",
    )


def _check_attachments(root: etree._Element, size_bytes: int, limits: ParseLimits) -> None:
    attachments = cast("list[etree._Element]", _ATTACHMENTS(root))
    if len(attachments) > limits.max_attachments:
        raise LimitError(
            f"{len(attachments)} attachments, more than {limits.max_attachments}",
            code="edxml.too_many_attachments",
        )
    if _decoded_upper_bound(size_bytes) <= limits.max_attachment_bytes:
        return  # no attachment of this package can be that large: skip copying their text
    for index, attachment in enumerate(attachments, start=1):
        estimate = _decoded_estimate(attachment)
        if estimate > limits.max_attachment_bytes:
            raise LimitError(
                f"attachment of about {estimate} bytes, more than {limits.max_attachment_bytes}",
                code="edxml.attachment_too_large",
                path=f"AttachmentEncoded/Attachment[{index}]",
            )


def _decoded_upper_bound(encoded_chars: int) -> int:
    return (encoded_chars + 3) // 4 * 3


def _decoded_estimate(attachment: etree._Element) -> int:
    """Decoded size of an attachment, from the length of its base64 text (whitespace excluded)."""
    encoded = attachment.find(_ENCODED_TAG)
    if encoded is None:
        return 0
    chars = 0
    for text in cast("Iterator[str]", encoded.itertext()):
        blanks = text.count(" ") + text.count("\n") + text.count("\r") + text.count("\t")
        chars += len(text) - blanks
    return _decoded_upper_bound(chars)
