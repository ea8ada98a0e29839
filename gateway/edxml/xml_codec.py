"""edXML codec: a loaded lxml root -> frozen records, and records -> edXML bytes in the wire layout.

Reading is namespace-aware and lenient: any child order, the edXML namespace under any prefix (or
as the default namespace), comments ignored, ``StatusCode`` "1" = "01". Before anything is read,
``structure.check_structure`` refuses trees whose header readers could read differently (nested
or duplicated elements, look-alikes in other namespaces) and whatever ``schemas/edxml.xsd``
refuses, so every consumer of ``read_package`` reads the one header. Text rule: a
leaf keeps its text exactly (``""`` empty, ``None`` absent); whitespace between the children of a
container is layout. Unknown children of ``MessageHeader``, ``OtherInfo`` and ``Bussiness`` go to
``extras`` verbatim; elsewhere the model has no place for them and they are dropped. Fragments
(``extras``, ``signature_xml``) are stored self-contained, without unused declarations of the
standard ``xmlns``/``xmlns:edXML`` bindings, so they read back identically after writing.

Writing (``serialize_package``) lives in ``xml_layout`` with the element tables; it is re-exported
here, the codec's public face.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TypeVar

from lxml import etree

from gateway.core.errors import PackageError
from gateway.edxml import model as m
from gateway.edxml.hardened import load_xml
from gateway.edxml.limits import DEFAULT_LIMITS, ParseLimits
from gateway.edxml.structure import ChildIndex, check_structure
from gateway.edxml.xml_layout import (
    ATTACHMENT,
    BUSINESS,
    BUSINESS_NAMES,
    CODE,
    DIRECTION,
    DOCUMENT_INFO,
    DOCUMENT_TYPE,
    MESSAGE_HEADER_NAMES,
    NS,
    ORGANIZATION,
    OTHER_INFO,
    OTHER_INFO_NAMES,
    PROMULGATION,
    REFERENCE,
    RESPONSE_FOR,
    SIGNER,
    STAFF,
    STATUS_HEADER_NAMES,
    Table,
    serialize_package,
)

__all__ = ["parse_package", "read_package", "serialize_package"]

_Element = etree._Element
_T = TypeVar("_T")
_DSIG_SIGNATURE = f"{{{m.XMLDSIG_NS}}}Signature"
_EDXML_ANY = f"{NS}*"  # lxml's tag filter: any element in the edXML namespace
_NS_LEN = len(NS)
_NONE: list[_Element] = []  # never appended to: ``named.get(name, _NONE)`` without a new list


def parse_package(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> m.Package:
    """Load untrusted bytes with the hardened loader and read them into a record."""
    return read_package(load_xml(data, limits), source=data)


# --------------------------------------------------------------------------------------- reading


def _edxml_local(tag: str) -> str | None:
    """The local name of a tag in the edXML namespace; None for others (and for no namespace)."""
    if tag.startswith(NS):
        return tag[len(NS) :]
    return None


def _text(el: _Element) -> str:
    """A leaf's text exactly as written (comments inside it are skipped)."""
    if len(el) == 0:
        return el.text or ""
    return "".join(str(t) for t in el.itertext())


def _fragment(el: _Element) -> str:
    """An element serialized self-contained, minus unused standard namespace declarations."""
    dup = copy.deepcopy(el)
    dup.tail = None
    standard = ("edXML", m.EDXML_NS)
    keep = [p for p, uri in dup.nsmap.items() if p is not None and (p, uri) != standard]
    etree.cleanup_namespaces(dup, keep_ns_prefixes=keep)
    return etree.tostring(dup, encoding="unicode")


def _error(message: str, code: str, path: str) -> PackageError:
    return PackageError(message, code=f"edxml.{code}", path=path)


class _Kids:
    """The element children of one container, by local name, with the container's path.

    ``named`` holds the edXML children: as ``check_structure`` listed them while it walked the
    container (``index``), else picked out by lxml in C; ``order``, every element child in
    document order, is listed only when asked for (extras, error messages)."""

    __slots__ = ("_order", "el", "index", "named", "path")

    def __init__(self, el: _Element, path: str, index: ChildIndex) -> None:
        self.el = el
        self.path = path
        self.index = index
        self._order: list[tuple[str | None, _Element]] | None = None
        listed = index.get(el)
        if listed is not None:
            self.named = listed
            return
        named: dict[str, list[_Element]] = {}
        for child in el.iterchildren(_EDXML_ANY):
            local = child.tag[_NS_LEN:]
            found = named.get(local)
            if found is None:
                named[local] = [child]
            else:
                found.append(child)
        self.named = named

    @property
    def order(self) -> list[tuple[str | None, _Element]]:
        """(edXML local name or None, element) of every element child, in document order."""
        if self._order is None:
            self._order = [
                (_edxml_local(child.tag), child) for child in self.el.iterchildren(etree.Element)
            ]
        return self._order

    def at(self, name: str, index: int | None = None) -> str:
        return f"{self.path}/{name}" + ("" if index is None else f"[{index}]")

    def one(self, name: str) -> _Element | None:
        found = self.named.get(name, _NONE)
        if len(found) > 1:
            raise _error(f"<{name}> appears {len(found)} times", "duplicate_element", self.at(name))
        return found[0] if found else None

    def require(self, name: str) -> _Kids:
        return _Kids(self.require_element(name), self.at(name), self.index)

    def require_element(self, name: str) -> _Element:
        """``require(name).el``, without listing the element's children."""
        el = self.one(name)
        if el is not None:
            return el
        if any(local is None and etree.QName(c).localname == name for local, c in self.order):
            raise _error(f"<{name}> is in another namespace", "wrong_namespace", self.at(name))
        raise _error(f"<{name}> is required", "missing_field", self.at(name))

    def text(self, name: str) -> str | None:
        el = self.one(name)
        return None if el is None else _text(el)

    def texts(self, container: str, item: str) -> tuple[str, ...] | None:
        """``<ToPlaces><Place>a</Place>…</ToPlaces>`` -> ``("a", …)``; None if no container."""
        el = self.one(container)
        return (
            None
            if el is None
            else tuple(_text(i) for i in _Kids(el, "", self.index).named.get(item, []))
        )

    def opt(self, name: str, reader: Callable[[_Kids], _T]) -> _T | None:
        el = self.one(name)
        return None if el is None else reader(_Kids(el, self.at(name), self.index))

    def each(self, name: str) -> list[_Kids]:
        index = self.index
        return [
            _Kids(el, self.at(name, i), index) for i, el in enumerate(self.named.get(name, []), 1)
        ]

    def leaves(self, table: Table, *skip: str) -> dict[str, str | None]:
        return {attr: self.text(name) for name, attr in table if attr not in skip}

    def extras(self, known: frozenset[str]) -> tuple[str, ...]:
        named = self.named
        if named.keys() <= known and len(self.el) == sum(map(len, named.values())):
            return ()  # every child is a known edXML element (no comment, no foreign element)
        return tuple(_fragment(c) for local, c in self.order if local not in known)


def _plain(cls: Callable[..., _T], table: Table) -> Callable[[_Kids], _T]:
    """A reader for a record made only of optional leaves."""
    return lambda kids: cls(**kids.leaves(table))


def _read_org(kids: _Kids) -> m.Organization:
    organ_id = _text(kids.require_element("OrganId"))
    return m.Organization(organ_id=organ_id, **kids.leaves(ORGANIZATION, "organ_id"))


def _read_code(kids: _Kids) -> m.Code:
    raw = (kids.el.text or "").strip()
    if raw and not kids.order:  # sloppy <Code>7816/VPCP-TTĐT</Code>
        number, slash, notation = raw.partition("/")
        return m.Code(code_number=number, code_notation=notation if slash else None)
    return m.Code(**kids.leaves(CODE))


def _read_other_info(kids: _Kids) -> m.OtherInfo:
    return m.OtherInfo(
        **kids.leaves(OTHER_INFO + DIRECTION),
        appendixes=kids.texts("Appendixes", "Appendix"),
        extras=kids.extras(OTHER_INFO_NAMES),
    )


def _read_message_header(mh: _Kids) -> m.MessageHeader:
    to = mh.each("To") or [mh.require("To")]
    return m.MessageHeader(
        from_=_read_org(mh.require("From")),
        to=tuple(_read_org(k) for k in to),
        document_id=mh.text("DocumentId"),
        code=mh.opt("Code", _read_code),
        promulgation_info=mh.opt("PromulgationInfo", _plain(m.PromulgationInfo, PROMULGATION)),
        document_type=mh.opt("DocumentType", _plain(m.DocumentType, DOCUMENT_TYPE)),
        subject=mh.text("Subject"),
        content=mh.text("Content"),
        signer_info=mh.opt("SignerInfo", _plain(m.SignerInfo, SIGNER)),
        due_date=mh.text("DueDate"),
        other_info=mh.opt("OtherInfo", _read_other_info),
        response_for=tuple(_plain(m.ResponseFor, RESPONSE_FOR)(k) for k in mh.each("ResponseFor")),
        steering_type=mh.text("SteeringType"),
        response_for_task=mh.texts("ResponseForTask", "TaskCode"),
        application_type=mh.text("ApplicationType"),
        to_places=mh.texts("ToPlaces", "Place"),
        extras=mh.extras(MESSAGE_HEADER_NAMES),
    )


def _enum(kids: _Kids, name: str, cls: Callable[[str], _T], width: int) -> _T:
    """A required code, digits normalised to ``width`` (``"1"`` -> ``"01"``)."""
    raw = _text(kids.require_element(name)).strip()
    try:
        return cls(f"{int(raw):0{width}d}" if raw.isascii() and raw.isdigit() else raw)
    except ValueError as exc:
        code = "bad_business_doc_type" if name == "BussinessDocType" else "bad_status_code"
        raise _error(f"unknown {name} {raw!r}", code, kids.at(name)) from exc


def _read_business(kids: _Kids) -> m.Business:
    return m.Business(
        business_doc_type=_enum(kids, "BussinessDocType", m.BusinessDocType, 1),
        **kids.leaves(BUSINESS, "business_doc_type"),
        business_document_info=kids.opt("BussinessDocumentInfo", _read_document_info),
        replacement_info_list=kids.opt("ReplacementInfoList", _read_replacements),
        staff_info=kids.opt("StaffInfo", _plain(m.StaffInfo, STAFF)),
        extras=kids.extras(BUSINESS_NAMES),
    )


def _read_receivers(kids: _Kids) -> tuple[m.Receiver, ...]:
    return tuple(
        m.Receiver(organ_id=k.text("OrganId") or "", receiver_type=k.text("ReceiverType"))
        for k in kids.each("Receiver")
    )


def _read_document_info(kids: _Kids) -> m.BusinessDocumentInfo:
    receivers = kids.opt("ReceiverList", _read_receivers)
    return m.BusinessDocumentInfo(**kids.leaves(DOCUMENT_INFO), receivers=receivers)


def _read_replacements(kids: _Kids) -> tuple[m.ReplacementInfo, ...]:
    return tuple(
        m.ReplacementInfo(
            document_id=k.text("DocumentId"), organ_ids=k.texts("OrganIdList", "OrganId") or ()
        )
        for k in kids.each("ReplacementInfo")
    )


def _read_trace_header_list(kids: _Kids) -> m.TraceHeaderList:
    hops = tuple(
        m.TraceHeader(organ_id=k.text("OrganId") or "", timestamp=k.text("Timestamp"))
        for k in kids.each("TraceHeader")
    )
    return m.TraceHeaderList(trace_headers=hops, business=kids.opt("Bussiness", _read_business))


def _read_reference(kids: _Kids) -> m.ManifestReference:
    return m.ManifestReference(
        content_id=kids.text("ContentId") or "",
        **kids.leaves(REFERENCE, "content_id"),
        attributes=tuple((str(k), str(v)) for k, v in kids.el.attrib.items()),
    )


def _read_manifest(kids: _Kids) -> m.Manifest:
    refs = tuple(_read_reference(k) for k in kids.each("Reference"))
    return m.Manifest(version=kids.el.get("version"), references=refs)


def _read_attachment(kids: _Kids) -> m.Attachment:
    return m.Attachment(
        content_id=kids.text("ContentId") or "",
        **kids.leaves(ATTACHMENT, "content_id"),
        content_b64=kids.text("ContentTransferEncoded") or "",
    )


def _read_status_header(mh: _Kids) -> m.StatusHeader:
    return m.StatusHeader(
        from_=_read_org(mh.require("From")),
        response_for=_plain(m.ResponseFor, RESPONSE_FOR)(mh.require("ResponseFor")),
        status_code=_enum(mh, "StatusCode", m.StatusCode, 2),
        staff_info=mh.opt("StaffInfo", _plain(m.StaffInfo, STAFF)),
        description=mh.text("Description"),
        timestamp=mh.text("Timestamp"),
        extras=mh.extras(STATUS_HEADER_NAMES),
    )


def _read_signature(header: _Kids, keep: bool) -> str | None:
    found = header.named.get("Signature", [])
    found = found + list(header.el.iterchildren(_DSIG_SIGNATURE))
    if len(found) > 1:
        raise _error("more than one <Signature>", "duplicate_element", header.at("Signature"))
    return _fragment(found[0]) if found and keep else None


def read_package(
    root: _Element, *, source: bytes | None = None, keep_signature: bool = True
) -> m.Package:
    """Read a root loaded by ``hardened.load_xml`` into a document or status record.

    A status package if ``MessageHeader`` has ``StatusCode``, else a document package if
    ``edXMLHeader`` has a ``TraceHeaderList`` (old layouts omit ``Bussiness``: ``business`` is then
    None). The tree is not modified. Raises ``PackageError`` (the codes of
    ``structure.check_structure``, and ``edxml.unknown_kind``, ``missing_field``,
    ``bad_business_doc_type``, ``bad_status_code``) with the element path. ``source``: the bytes
    ``root`` was loaded from, if known (``check_structure``). ``keep_signature=False`` leaves
    ``signature_xml`` None (a second ``<Signature>`` is still refused): the verifier's record,
    whose signature was checked on the tree and whose readers never write the package out again,
    needs no copy of it (serialising the fragment cost about 3 % of the gateway loop's CPU for a
    small package).
    """
    top = _Kids(root, "/edXML", check_structure(root, source=source))
    envelope = top.require("edXMLEnvelope")
    header = envelope.require("edXMLHeader")
    mh = header.require("MessageHeader")
    signature = _read_signature(header, keep_signature)
    if mh.one("StatusCode") is not None:
        return m.StatusPackage(header=_read_status_header(mh), signature_xml=signature)
    traces = header.opt("TraceHeaderList", _read_trace_header_list)
    if traces is None:
        raise _error("neither StatusCode nor TraceHeaderList", "unknown_kind", header.path)
    body = envelope.opt("edXMLBody", lambda k: k)
    attachments = top.opt("AttachmentEncoded", lambda k: k.each("Attachment")) or []
    return m.DocumentPackage(
        header=_read_message_header(mh),
        trace_header_list=traces,
        manifest=body.opt("edXMLManifest", _read_manifest) if body else None,
        attachments=tuple(_read_attachment(k) for k in attachments),
        signature_xml=signature,
    )
