"""One reading of a package: the structure of ``edxml.xsd``, plus what keeps readers agreeing.

``check_structure(root)`` refuses (``PackageError``) every tree whose envelope the XSD refuses, so
intake applies the schema's structure without running a schema validator (a walk over the loaded
tree, tens of microseconds for a status package). Codes that mirror the XSD:

* ``edxml.wrong_root`` / ``edxml.wrong_namespace``: the root is not ``{edXML ns}edXML``, or a
  required element exists only in another namespace;
* ``edxml.missing_field``: a required element (envelope, header, ``MessageHeader``, ``From``);
* ``edxml.unexpected_element``: an element the content model does not allow where it stands (an
  unknown edXML element in a closed container, an element inside a text field, a no-namespace
  element where only edXML or foreign ones may be, the envelope's children out of order);
* ``edxml.unexpected_text``: text in an element-only container.

And the rules the XSD cannot say (it is open where producers vary), so that what the gateway reads
as sender, recipients, DocumentId, ResponseFor and status is what any reader of the bytes reads:

* ``edxml.duplicate_element``: an element more often than QCVN 102:2016 allows (two ``From``, two
  ``DocumentId``, two ``StatusCode``, two ``OrganId`` in a ``To``, two ``TraceHeaderList``…);
* ``edxml.foreign_lookalike``: beside or instead of an edXML element, an element of the same local
  name in another namespace or in none (a namespace-unaware reader cannot tell them apart);
* ``edxml.misplaced_element``: a header name (``From``, ``To``, ``ResponseFor``, ``StatusCode``,
  ``DocumentId``, ``MessageHeader``…) anywhere but its one place (``From`` inside ``From``, a ``To``
  inside an extension), or one a status package has no place for (``To``, ``DocumentId``,
  ``TraceHeaderList``);
* ``edxml.xsi_attribute``: ``xsi:type`` / ``xsi:nil``, which would make the schema read an element
  as another type.

Leniency is kept where producers vary: child order inside containers, unknown elements in the open
containers (``MessageHeader``, ``OtherInfo``, ``Bussiness``) and elements of other namespaces in any
container, comments, a ``Signature`` in the edXML or the XMLDSig namespace, ``Code`` as text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from lxml import etree

from gateway.core.errors import PackageError
from gateway.edxml.content_model import (
    DOCUMENT_HEADER,
    GLOBALS,
    STATUS_HEADER,
    TYPES,
    UNBOUNDED,
    Content,
    ElementType,
)
from gateway.edxml.model import EDXML_NS, XMLDSIG_NS
from gateway.edxml.xsi import has_type_override, may_name_xsi

__all__ = [
    "ONE_READING_CODES",
    "XSD_CODES",
    "ChildIndex",
    "check_structure",
]

_NS: Final = f"{{{EDXML_NS}}}"
_NS_LEN: Final = len(_NS)
_DSIG_SIGNATURE: Final = f"{{{XMLDSIG_NS}}}Signature"
_ROOT: Final = f"{_NS}edXML"
_WHITESPACE: Final = " \t\r\n"

XSD_CODES: Final = frozenset({
    "edxml.wrong_root", "edxml.wrong_namespace", "edxml.missing_field",
    "edxml.unexpected_element", "edxml.unexpected_text",
})  # fmt: skip
"""Refusals that ``schemas/edxml.xsd`` makes too."""
ONE_READING_CODES: Final = frozenset({
    "edxml.duplicate_element", "edxml.foreign_lookalike", "edxml.misplaced_element",
    "edxml.xsi_attribute",
})  # fmt: skip
"""Refusals stricter than the XSD: a package the XSD accepts may still be ambiguous."""

RESERVED: Final = frozenset({
    "edXML", "edXMLEnvelope", "edXMLHeader", "edXMLBody", "MessageHeader", "TraceHeaderList",
    "Bussiness", "AttachmentEncoded", "From", "To", "ResponseFor", "StatusCode", "DocumentId",
})  # fmt: skip
"""Names that carry the routing and identity of a package: each has its places in the typed
structure and nowhere else (not inside an extension, in no namespace)."""


_NOT_IN_STATUS: Final = frozenset({"To", "DocumentId"})

ChildIndex = dict[etree._Element, dict[str, list[etree._Element]]]
"""Container -> its edXML children by local name, in order (``iterchildren("{edXML ns}*")``)."""

_LAX_SUSPECTS: Final = (*(f"{{*}}{name}" for name in RESERVED), f"{_NS}*")
"""Below an element, the tags ``_Walk.lax`` may act on: reserved names in any namespace or none,
and any edXML element (a superset of the global ones it checks). If none is there, there is
nothing to check or refuse; if one is, the walk decides. lxml builds its tag matcher on every
call: 14 tags cost a third of the 46 that the reserved and global names spell out."""


def check_structure(root: etree._Element, *, source: bytes | None = None) -> ChildIndex:
    """Refuse a tree whose structure the XSD refuses or that readers could read differently; return
    the children of the containers walked (root to header, typed ones), for the reader to reuse.

    ``source``: the bytes ``hardened.load_xml`` parsed ``root`` from, if the caller has them; the
    attributes are then searched for ``xsi:type``/``xsi:nil`` only if the bytes can name the XSI
    namespace (``may_name_xsi``)."""
    if root.tag != _ROOT:  # the root is read as a QName only to be refused
        name = etree.QName(root)
        if name.localname != "edXML":
            raise _error(
                f"the root is <{name.localname}>, not <edXML>", "wrong_root", f"/{name.localname}"
            )
        raise _error(f"the root is in namespace {name.namespace!r}", "wrong_namespace", "/edXML")
    if may_name_xsi(source) and has_type_override(root):
        raise _error("xsi:type and xsi:nil are not allowed", "xsi_attribute", "/edXML")
    walk = _Walk()
    walk.root(root)
    return walk.index


def _error(message: str, code: str, path: str) -> PackageError:
    return PackageError(message, code=f"edxml.{code}", path=path)


def _split(tag: str) -> tuple[str | None, str]:
    """(namespace, local name); namespace ``""`` for edXML, None for no namespace."""
    if tag.startswith(_NS):
        return "", tag[len(_NS) :]
    if tag.startswith("{"):
        uri, _, local = tag[1:].partition("}")
        return uri, local
    return None, tag


def _has_child(el: etree._Element, tag: str) -> bool:
    """Whether ``el`` has a child ``tag`` (``el.find(tag)`` without ElementPath's parsing)."""
    return next(el.iterchildren(tag), None) is not None


def _blank(text: str | None) -> bool:
    return not text or not text.strip(_WHITESPACE)


class _Walk:
    """One pass over the tree; raises at the first refusal."""

    __slots__ = ("index",)

    def __init__(self) -> None:
        self.index: ChildIndex = {}

    # -- the sequences at the top: edXML, edXMLEnvelope, edXMLHeader ------------------------------

    def root(self, root: etree._Element) -> None:
        first, second = self._sequence(root, "/edXML", "edXMLEnvelope", "AttachmentEncoded")
        self.envelope(first, "/edXML/edXMLEnvelope")
        if second is not None:
            self.typed(second, "AttachmentEncoded", "/edXML/AttachmentEncoded")

    def envelope(self, envelope: etree._Element, path: str) -> None:
        first, second = self._sequence(envelope, path, "edXMLHeader", "edXMLBody")
        self.header(first, f"{path}/edXMLHeader")
        if second is not None:
            self.typed(second, "Body", f"{path}/edXMLBody")

    def _sequence(
        self, el: etree._Element, path: str, first: str, second: str
    ) -> tuple[etree._Element, etree._Element | None]:
        """XSD ``sequence(first, second?, ##other*)``: foreign elements only after the two."""
        self._element_only(el, path)
        self._refuse_missing(el, first, path)
        found: list[etree._Element] = []
        foreign_seen = False
        for child in el:
            tag: object = child.tag  # a comment's tag is the Comment factory
            if not isinstance(tag, str):
                continue
            uri, local = _split(tag)
            if uri == "" and local in (first, second):
                if any(f.tag == tag for f in found):
                    raise _error(
                        f"<{local}> appears more than once", "duplicate_element", f"{path}/{local}"
                    )
                if foreign_seen or (local == second) != bool(found):
                    raise _error(
                        f"<{local}> is out of order", "unexpected_element", f"{path}/{local}"
                    )
                found.append(child)
            else:  # never in the edXML namespace: ``_other`` refuses those
                if not found and uri != "" and local not in (first, second, *RESERVED):
                    raise _error(
                        f"<{local}> before <{first}>", "unexpected_element", f"{path}/{local}"
                    )
                self._other(child, uri, local, path, (first, second))
                foreign_seen = True
        self.index[el] = {f.tag[_NS_LEN:]: [f] for f in found}
        return found[0], found[1] if len(found) > 1 else None

    def header(self, header: etree._Element, path: str) -> bool:
        """MessageHeader first, then TraceHeaderList, Signature and foreign elements."""
        self._element_only(header, path)
        self._refuse_missing(header, "MessageHeader", path)
        elements = [c for c in header if isinstance(c.tag, str)]
        mh_path = f"{path}/MessageHeader"
        if elements[0].tag != f"{_NS}MessageHeader":
            uri, local = _split(elements[0].tag)
            if uri != "" and local not in (
                "MessageHeader",
                "TraceHeaderList",
                "Signature",
                *RESERVED,
            ):
                raise _error("<MessageHeader> must come first", "unexpected_element", mh_path)
        status = False
        signatures = traces = headers = 0
        for child in elements:
            uri, local = _split(child.tag)
            if uri == "" and local == "MessageHeader":
                headers += 1
                if headers > 1:
                    raise _error(
                        "<MessageHeader> appears more than once", "duplicate_element", mh_path
                    )
                if child is not elements[0]:
                    raise _error("<MessageHeader> must come first", "unexpected_element", mh_path)
                status = self.message_header(child, mh_path)
            elif uri == "" and local == "TraceHeaderList":
                traces += 1
                where = f"{path}/TraceHeaderList"
                if traces > 1:
                    raise _error(
                        "<TraceHeaderList> appears more than once", "duplicate_element", where
                    )
                self.typed(child, "TraceHeaderList", where)
            elif local == "Signature" and (uri == "" or child.tag == _DSIG_SIGNATURE):
                signatures += 1
                if signatures > 1:
                    raise _error(
                        "more than one <Signature>", "duplicate_element", f"{path}/Signature"
                    )
                self.lax(child, f"{path}/Signature")
            else:
                self._other(
                    child, uri, local, path, ("MessageHeader", "TraceHeaderList", "Signature")
                )
        named = {c.tag[_NS_LEN:]: [c] for c in elements if c.tag.startswith(_NS)}
        self.index[header] = named  # one each: any other edXML child was refused above
        if status and traces:
            raise _error(
                "a status package has no <TraceHeaderList>",
                "misplaced_element",
                f"{path}/TraceHeaderList",
            )
        return status

    def message_header(self, mh: etree._Element, path: str) -> bool:
        """From first (the XSD's only order rule here), then known children by kind, extras."""
        first = next((c for c in mh if isinstance(c.tag, str)), None)
        if first is None or first.tag != f"{_NS}From":
            self._refuse_missing(mh, "From", path)
            if first is not None and _split(first.tag)[1] == "From":
                raise _error(
                    "<From> of another namespace before the edXML one",
                    "foreign_lookalike",
                    f"{path}/From",
                )
            raise _error(
                "<From> must be the first child of <MessageHeader>",
                "unexpected_element",
                f"{path}/From",
            )
        status = _has_child(mh, f"{_NS}StatusCode")
        model = STATUS_HEADER if status else DOCUMENT_HEADER
        if status:
            for name in _NOT_IN_STATUS:
                if _has_child(mh, _NS + name):
                    raise _error(
                        f"a status package has no <{name}> in <MessageHeader>",
                        "misplaced_element",
                        f"{path}/{name}",
                    )
        self.children(mh, model, path)
        return status

    # -- typed content -------------------------------------------------------------------------

    def typed(self, el: etree._Element, type_name: str, path: str) -> None:
        model = TYPES[type_name]
        if model.content is Content.TEXT:
            for child in el:
                if isinstance(child.tag, str):
                    raise _error(
                        "an element inside a text field",
                        "unexpected_element",
                        f"{path}/{_split(child.tag)[1]}",
                    )
        elif model.content is Content.OPAQUE:
            self.lax(el, path)
        else:
            self.children(el, model, path)

    def children(self, el: etree._Element, model: ElementType, path: str) -> None:
        element_only = not model.mixed
        if element_only and not _blank(el.text):
            raise _text_error(path)
        kids = model.children
        named: dict[str, list[etree._Element]] = {}
        self.index[el] = named  # filled as the children are read; complete unless refused
        for child in el:
            if element_only:
                tail = child.tail
                if tail and tail.strip(_WHITESPACE):
                    raise _text_error(path)
            tag: object = child.tag  # a comment's tag is the Comment factory
            if not isinstance(tag, str):
                continue
            uri: str | None
            if tag.startswith(_NS):
                uri, local = "", tag[_NS_LEN:]
                known = kids.get(local)
                named.setdefault(local, []).append(child)
            else:
                uri, local = _split(tag)
                known = None
            if known is not None:
                type_name, most = known
                count = len(named[local])  # this one included
                if most != UNBOUNDED and count > most:
                    raise _error(
                        f"<{local}> appears more than {most} time(s)",
                        "duplicate_element",
                        f"{path}/{local}",
                    )
                if type_name == "Text" and not len(child):
                    continue  # a leaf with text only: nothing more to check
                where = f"{path}/{local}" + (f"[{count}]" if most == UNBOUNDED else "")
                self.typed(child, type_name, where)
            elif uri == "" and model.content is Content.OPEN and local not in RESERVED:
                self._lax_element(child, uri, local, f"{path}/{local}")
            else:
                self._other(child, uri, local, path, kids, open_=model.content is Content.OPEN)

    def _other(
        self,
        child: etree._Element,
        uri: str | None,
        local: str,
        path: str,
        known: Mapping[str, object] | tuple[str, ...],
        *,
        open_: bool = False,
    ) -> None:
        """A child that is not one of the container's own edXML children."""
        where = f"{path}/{local}"
        if uri != "" and local in known:
            raise _error(
                f"<{local}> of namespace {uri or 'none'!r} where edXML has its own",
                "foreign_lookalike",
                where,
            )
        if local in RESERVED:
            raise _error(f"<{local}> may not appear here", "misplaced_element", where)
        if uri == "":
            raise _error(f"<{local}> is not allowed here", "unexpected_element", where)
        if uri is None and not open_:
            raise _error(
                f"<{local}> in no namespace is not allowed here", "unexpected_element", where
            )
        self.lax(child, where)

    def _refuse_missing(self, el: etree._Element, name: str, path: str) -> None:
        """A required child that is absent (or present only in another namespace)."""
        if _has_child(el, _NS + name):
            return
        for child in el:
            if isinstance(child.tag, str) and _split(child.tag)[1] == name:
                raise _error(
                    f"<{name}> is in another namespace", "wrong_namespace", f"{path}/{name}"
                )
        raise _error(f"<{name}> is required", "missing_field", f"{path}/{name}")

    # -- lax content: extensions, foreign elements, the edXML-namespace Signature ---------------

    def lax(self, el: etree._Element, path: str) -> None:
        """Children of an undeclared element: global edXML elements are checked, names that
        carry the header may not appear."""
        if next(el.iterdescendants(*_LAX_SUSPECTS), None) is None:
            return  # nothing below to check or refuse (lxml filters the tags in C)
        for child in el:
            tag = child.tag
            if isinstance(tag, str):
                uri, local = _split(tag)
                self._lax_element(child, uri, local, f"{path}/{local}")

    def _lax_element(self, el: etree._Element, uri: str | None, local: str, path: str) -> None:
        if local in RESERVED:
            raise _error(f"<{local}> may not appear here", "misplaced_element", path)
        if uri == "" and local in GLOBALS:
            self.typed(el, GLOBALS[local], path)
        else:
            self.lax(el, path)

    @staticmethod
    def _element_only(el: etree._Element, path: str) -> None:
        if not _blank(el.text):
            raise _text_error(path)
        for child in el:
            tail = child.tail
            if tail and tail.strip(_WHITESPACE):
                raise _text_error(path)


def _text_error(path: str) -> PackageError:
    return _error("text is not allowed here (element content only)", "unexpected_text", path)
