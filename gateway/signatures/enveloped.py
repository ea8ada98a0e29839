"""Where the edXML profile's enveloped Signature sits, and the digest of the document around it.

Shared by the verifier (``xmldsig``) and the signer (``xmldsig_signer``). ``URI=""`` with the
enveloped-signature transform digests the canonical document without the Signature element.

lxml canonicalises a huge text node (a 20 MB ``ContentTransferEncoded``) into an escaped copy plus
an output buffer, and is slower at it than hashing. So leaf texts of at least ``LARGE_TEXT_CHARS``
are lifted out first: each is swapped for a random marker, the now-small tree is canonicalised, and
the hash gets the canonical bytes up to a marker, then that text c14n-escaped, then the rest. The
digest is the plain c14n digest (the tests compare both paths); the tree is restored exactly.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from typing import cast

from cryptography.hazmat.primitives import hashes
from lxml import etree

from gateway.core.errors import SignatureError
from gateway.edxml.model import EDXML_NS, XMLDSIG_NS
from gateway.signatures.algorithms import C14nMethod, DigestAlgorithm

SIGNATURE_TAGS = (f"{{{XMLDSIG_NS}}}Signature", f"{{{EDXML_NS}}}Signature")
ROOT_TAG, ENVELOPE_TAG, HEADER_TAG = (
    f"{{{EDXML_NS}}}{n}" for n in ("edXML", "edXMLEnvelope", "edXMLHeader")
)
SIGNED_BEFORE = frozenset(f"{{{EDXML_NS}}}{n}" for n in ("MessageHeader", "TraceHeaderList"))
"""The header parts the Signature follows."""

LARGE_TEXT_CHARS = 64 * 1024
"""Leaf texts this long are hashed beside lxml's c14n, not through it (measured: from about this
size on it is faster; lxml's escaping runs at ~3 ns a character, its text setter at ~1.2 ns)."""

HASH_SLICE_CHARS = 64 * 1024
"""A lifted text is encoded (and escaped if it must be) and hashed this many characters at a time.

Small on purpose: a whole 361 KB text encoded at once is a second buffer of that size beside the
text, and glibc hands such buffers back to the kernel when freed (its heap trim), so every package
paid page faults for them again (measured: 144 faults, 0.45 ms, against 0.05 ms in slices)."""

# C14N 1.0 writes these four characters of a text node as references ("&" goes first).
_TEXT_ESCAPES = ((b"&", b"&amp;"), (b"<", b"&lt;"), (b">", b"&gt;"), (b"\r", b"&#xD;"))
_TEXT_SPECIALS = "&<>\r"


@dataclass(frozen=True, slots=True)
class _Lifted:
    """A leaf element whose text is, for now, ``marker``; ``text`` is its own text."""

    element: etree._Element
    marker: bytes
    text: bytes | str  # bytes: an ASCII text to put back (lxml's text setter takes them as they
    # are, and the hash takes them whole); otherwise the str, hashed in slices (``_hash_text``)


def _canonicalization_failed(message: str) -> SignatureError:
    return SignatureError(message, code="signature.canonicalization_failed")


def c14n(element: etree._Element, method: C14nMethod) -> bytes:
    """lxml's c14n without comments: of the whole document if ``element`` is its root."""
    try:
        exclusive = method.exclusive
        return etree.tostring(element, method="c14n", exclusive=exclusive, with_comments=False)
    except etree.LxmlError as exc:
        raise _canonicalization_failed(f"lxml cannot canonicalise: {exc}") from exc


def subtree_c14n(
    element: etree._Element, method: C14nMethod, *, document_bytes: int | None = None
) -> bytes:
    """C14n of a subtree (SignedInfo), as the W3C specifies it.

    lxml's inclusive c14n of a non-root element emits a spurious ``xmlns=""`` two levels down
    when the default namespace is declared above it (so ``Reference/Transforms`` of a
    default-namespace Signature come out in no namespace). Serialising the subtree first declares
    every in-scope namespace on it; canonicalising that copy gives the correct result
    (``copied_subtree_c14n``), unless libxml2 refuses to parse the copy (a name of 50,000
    characters, a text of 10 MB: ``signature.canonicalization_failed``).

    Exclusive c14n renders only the namespaces each element and attribute uses, compared by URI,
    and lxml gets it right in place, in a third of the time. It is taken when ``document_bytes``
    (the size of the document the tree was parsed from) is under ``IN_PLACE_C14N_BYTES``: no name
    or text of such a document reaches libxml2's limits, so the copy could not have been refused.
    ``tests/signatures/test_subtree_c14n.py`` holds the two to the same bytes.
    """
    if method.exclusive and document_bytes is not None and document_bytes < IN_PLACE_C14N_BYTES:
        return c14n(element, method)
    return copied_subtree_c14n(element, method)


IN_PLACE_C14N_BYTES = 50_000
"""libxml2's shortest limit without ``huge_tree``: a name of more than 50,000 bytes is refused
(``XML_MAX_NAME_LENGTH``); a document under this size holds none (nor a text of 10 MB)."""


def copied_subtree_c14n(element: etree._Element, method: C14nMethod) -> bytes:
    """C14n of a serialised copy of the subtree, parsed again as a document."""
    try:
        copy = etree.fromstring(etree.tostring(element), _thread_parser())
    except etree.XMLSyntaxError as exc:  # a text over libxml2's 10 MB limit, say
        _THREAD.parser = None  # never reuse a parser that failed
        raise _canonicalization_failed(f"cannot copy {element.tag} for c14n: {exc}") from exc
    return c14n(copy, method)


_THREAD = threading.local()


def _thread_parser() -> etree.XMLParser:
    """This thread's parser for SignedInfo copies (reused: faster than a new one each time)."""
    parser: etree.XMLParser | None = getattr(_THREAD, "parser", None)
    if parser is None:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        _THREAD.parser = parser
    return parser


def enveloped_digest(
    root: etree._Element,
    signature: etree._Element,
    method: C14nMethod,
    digest: DigestAlgorithm,
    *,
    lift_chars: int = LARGE_TEXT_CHARS,
    restore: bool = True,
    text_chars_at_most: int | None = None,
) -> bytes:
    """Digest of the document without the Signature element (its tail text stays), per URI="".

    Detaching the element would make lxml rewrite its namespace declarations, so instead two random
    markers bracket it in the surrounding text, and the bytes between them are left out of the hash.
    Leaf texts of at least ``lift_chars`` characters are hashed beside the c14n (see the module).

    ``restore=False``: the lifted texts are not put back (setting a 361 KB text costs ~0.4 ms), so
    the tree no longer holds the document; only for a caller that reads nothing of it afterwards.

    ``text_chars_at_most``: a bound on the length of every text, such as the size of the parsed
    document in bytes (each character took at least one). Under ``lift_chars`` no text can be
    lifted, and the tree is not walked for one (a Python walk: 25 µs for a 4 KB package).
    """
    markers = _Markers()
    start, end = markers.next(), markers.next()
    lifted: list[_Lifted] = []
    try:
        if text_chars_at_most is None or text_chars_at_most >= lift_chars:
            _lift_texts(root, lift_chars, markers, lifted, as_bytes=restore)
        with _Bracketed(signature, start, end):
            canonical = c14n(root, method)
    finally:
        for item in lifted if restore else ():  # the texts stay readable in ``lifted``
            item.element.text = cast("str", item.text)  # lxml takes ASCII bytes too
    hasher = hashes.Hash(digest.hash_algorithm())
    _hash_canonical(hasher, canonical, _signature_span(canonical, start, end), lifted)
    return hasher.finalize()


class _Markers:
    """Unguessable markers: a random 128-bit token, then ``n<number>z`` (none prefixes another)."""

    __slots__ = ("count", "token")

    def __init__(self) -> None:
        self.token, self.count = f"lgsp{secrets.token_hex(16)}", 0

    def next(self) -> bytes:
        self.count += 1
        return f"{self.token}n{self.count}z".encode("ascii")


def _lift_texts(
    root: etree._Element,
    lift_chars: int,
    markers: _Markers,
    lifted: list[_Lifted],
    *,
    as_bytes: bool,
) -> None:
    """Swap each leaf text of at least ``lift_chars`` characters for a marker, in document order.

    ``as_bytes``: keep an ASCII text as bytes (one encoded copy, for putting it back)."""
    for element in root.iter(etree.Element):
        if len(element) == 0:
            text = element.text
            if text is not None and len(text) >= lift_chars:
                marker = markers.next()
                element.text = marker.decode("ascii")  # frees the node before the copy below
                kept = text.encode() if as_bytes and text.isascii() else text
                lifted.append(_Lifted(element, marker, kept))
            del text  # no str copy of a text outlives this iteration (memory)


def _signature_span(canonical: bytes, start: bytes, end: bytes) -> tuple[int, int]:
    head = canonical.find(start)
    tail = canonical.find(end, head + len(start))
    if head < 0 or tail < 0:  # cannot happen: both markers are in the text lxml serialises
        raise _canonicalization_failed("could not locate the Signature in the c14n output")
    return head, tail + len(end)


def _hash_canonical(
    hasher: hashes.Hash, canonical: bytes, left_out: tuple[int, int], lifted: list[_Lifted]
) -> None:
    """Hash ``canonical`` without the ``left_out`` span, each lifted text in place of its marker."""
    view = memoryview(canonical)
    if not lifted:  # the usual case: what the loop below does with the one cut
        hasher.update(view[: left_out[0]])
        hasher.update(view[left_out[1] :])
        return
    cuts: list[tuple[int, int, _Lifted | None]] = [(*left_out, None)]
    for lift in lifted:
        at = canonical.find(lift.marker)
        if at < 0:  # cannot happen: the marker was the text of an element of the document
            raise _canonicalization_failed("a lifted text is missing from the c14n output")
        cuts.append((at, at + len(lift.marker), lift))
    cuts.sort(key=lambda cut: cut[0])
    cursor = 0
    for start, end, item in cuts:
        if start < cursor:  # a text inside the Signature: left out with it
            continue
        hasher.update(view[cursor:start])
        if item is not None:
            _hash_text(hasher, item.text)
        cursor = end
    hasher.update(view[cursor:])


def _hash_text(hasher: hashes.Hash, text: bytes | str) -> None:
    """Hash ``text`` as c14n writes a text node: UTF-8, with ``& < > CR`` as references.

    Slice by slice (``HASH_SLICE_CHARS``): each character is escaped and encoded on its own, so
    the slices' bytes put together are the whole text's."""
    if isinstance(text, bytes):
        plain = not any(char in text for char, _ in _TEXT_ESCAPES)
        if plain:
            hasher.update(text)  # ASCII, nothing to escape: no copy
            return
    else:
        plain = not any(char in text for char in _TEXT_SPECIALS)  # base64: nothing to escape
    for offset in range(0, len(text), HASH_SLICE_CHARS):
        piece = text[offset : offset + HASH_SLICE_CHARS]
        encoded = piece.encode() if isinstance(piece, str) else piece
        if not plain:
            for char, reference in _TEXT_ESCAPES:
                encoded = encoded.replace(char, reference)
        hasher.update(encoded)


class _Bracketed:
    """Put ``start`` just before and ``end`` just after ``signature``; restore the text on exit.

    A class rather than a ``contextmanager`` generator: the generator's machinery was about 1 %
    of a small package's verification."""

    __slots__ = ("after", "before", "end", "signature", "start")

    def __init__(self, signature: etree._Element, start: bytes, end: bytes) -> None:
        self.signature, self.start, self.end = signature, start, end

    def __enter__(self) -> None:
        signature = self.signature
        self.before, self.after = text_before(signature), signature.tail
        try:
            set_text_before(signature, (self.before or "") + self.start.decode("ascii"))
            signature.tail = self.end.decode("ascii") + (self.after or "")
        except BaseException:
            self.__exit__()  # the text as it was, as the ``with`` would not restore it
            raise

    def __exit__(self, *_exc: object) -> None:
        set_text_before(self.signature, self.before)
        self.signature.tail = self.after


def text_before(element: etree._Element) -> str | None:
    """The text just before ``element``: its previous sibling's tail, or its parent's text."""
    previous, parent = element.getprevious(), element.getparent()
    assert parent is not None
    return previous.tail if previous is not None else parent.text


def set_text_before(element: etree._Element, text: str | None) -> None:
    previous, parent = element.getprevious(), element.getparent()
    assert parent is not None
    if previous is not None:
        previous.tail = text
    else:
        parent.text = text
