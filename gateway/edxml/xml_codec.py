"""edXML codec: a loaded lxml root -> frozen records, and records -> edXML bytes in the wire layout.

Reading is namespace-aware and lenient: any child order, edXML namespace under any prefix or none,
comments ignored, nested ``<From><From>`` = the inner one, ``StatusCode`` "1" = "01". Text rule: a
leaf keeps its text exactly (``""`` empty, ``None`` absent); whitespace between the children of a
container is layout. Unknown children of ``MessageHeader``, ``OtherInfo`` and ``Bussiness`` go to
``extras`` verbatim; elsewhere the model has no place for them and they are dropped. Fragments
(``extras``, ``signature_xml``) are stored self-contained, without unused declarations of the
standard ``xmlns``/``xmlns:edXML`` bindings, so they read back identically after writing.

Writing emits the prefix layout and VNPT element order real systems expect; fragments are spliced
in at processing-instruction placeholders so that lxml cannot rewrite their prefixes.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from lxml import etree

from gateway.edxml import model as m
from gateway.edxml.hardened import load_xml
from gateway.edxml.limits import DEFAULT_LIMITS, ParseLimits
from gateway.errors import PackageError

_Element = etree._Element
_T = TypeVar("_T")
_Table = tuple[tuple[str, str], ...]  # (element local name, record attribute), in wire order

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_NS = f"{{{m.EDXML_NS}}}"
_DSIG_SIGNATURE = f"{{{m.XMLDSIG_NS}}}Signature"
_XLINK_NS = "http://www.w3.org/1999/xlink"
_PI_TARGET = "lgsp-verbatim"
_NON_ELEMENTS = (etree._Comment, etree._ProcessingInstruction, etree._Entity)


def _table(names: str) -> _Table:
    """``"OrganId OrganName"`` -> ``(("OrganId", "organ_id"), ("OrganName", "organ_name"))``."""
    snake = [
        re.sub(r"(?<!^)(?=[A-Z])", "_", n).lower().replace("bussi", "busi") for n in names.split()
    ]
    return tuple(zip(names.split(), snake, strict=True))


def _names(names: str) -> frozenset[str]:
    return frozenset(names.split())


ORGANIZATION = _table("OrganId OrganizationInCharge OrganName OrganAdd Email Telephone Fax Website")
CODE = _table("CodeNumber CodeNotation")
PROMULGATION = _table("Place PromulgationDate")
DOCUMENT_TYPE = _table("Type TypeDetail TypeName")
SIGNER = _table("Competence Position FullName")
RESPONSE_FOR = _table("OrganId Code PromulgationDate DocumentId")
STAFF = _table("Department DepartmentId Staff StaffId Email Mobile")
OTHER_INFO = _table("Priority SphereOfPromulgation TyperNotation PromulgationAmount PageAmount")
DIRECTION = _table("Direction")
TRACE_HEADER = _table("OrganId Timestamp")
RECEIVER = _table("OrganId ReceiverType")
DOCUMENT_INFO = _table("DocumentInfo DocumentReceiver")
BUSINESS = _table("DocumentId BussinessDocType BussinessDocReason Paper")
REFERENCE = _table("ContentId ContentType Description AttachmentName")
ATTACHMENT = _table("ContentId AttachmentName Description FieldName MimeType ContentType")
STATUS_HEADER = _table("StatusCode Description Timestamp")
MESSAGE_HEADER_NAMES = _names(
    "From To DocumentId Code PromulgationInfo DocumentType Subject Content SignerInfo DueDate "
    "OtherInfo ResponseFor SteeringType ResponseForTask ApplicationType ToPlaces"
)
STATUS_HEADER_NAMES = _names("From ResponseFor StaffInfo StatusCode Description Timestamp")
BUSINESS_NAMES = _names(
    "DocumentId BussinessDocType BussinessDocReason Paper BussinessDocumentInfo "
    "ReplacementInfoList StaffInfo"
)
OTHER_INFO_NAMES = _names(
    "Priority SphereOfPromulgation TyperNotation PromulgationAmount PageAmount Direction Appendixes"
)


def parse_package(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> m.Package:
    """Load untrusted bytes with the hardened loader and read them into a record."""
    return read_package(load_xml(data, limits))


# --------------------------------------------------------------------------------------- reading


def _edxml_local(tag: str) -> str | None:
    """The local name of a tag in the edXML namespace or in no namespace; None for others."""
    if tag.startswith(_NS):
        return tag[len(_NS) :]
    return None if tag.startswith("{") else tag


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
    """The element children of one container, by local name, with the container's path."""

    __slots__ = ("el", "named", "order", "path")

    def __init__(self, el: _Element, path: str) -> None:
        self.el = el
        self.path = path
        self.named: dict[str, list[_Element]] = {}
        self.order: list[tuple[str | None, _Element]] = []
        for child in el:
            if not isinstance(child, _NON_ELEMENTS):
                local = _edxml_local(child.tag)
                self.order.append((local, child))
                if local is not None:
                    self.named.setdefault(local, []).append(child)

    def at(self, name: str, index: int | None = None) -> str:
        return f"{self.path}/{name}" + ("" if index is None else f"[{index}]")

    def one(self, name: str) -> _Element | None:
        found = self.named.get(name, [])
        if len(found) > 1:
            raise _error(f"<{name}> appears {len(found)} times", "duplicate_element", self.at(name))
        return found[0] if found else None

    def require(self, name: str) -> _Kids:
        el = self.one(name)
        if el is not None:
            return _Kids(el, self.at(name))
        if any(local is None and etree.QName(c).localname == name for local, c in self.order):
            raise _error(f"<{name}> is in another namespace", "wrong_namespace", self.at(name))
        raise _error(f"<{name}> is required", "missing_field", self.at(name))

    def text(self, name: str) -> str | None:
        el = self.one(name)
        return None if el is None else _text(el)

    def texts(self, container: str, item: str) -> tuple[str, ...] | None:
        """``<ToPlaces><Place>a</Place>…</ToPlaces>`` -> ``("a", …)``; None if no container."""
        el = self.one(container)
        return None if el is None else tuple(_text(i) for i in _Kids(el, "").named.get(item, []))

    def opt(self, name: str, reader: Callable[[_Kids], _T]) -> _T | None:
        el = self.one(name)
        return None if el is None else reader(_Kids(el, self.at(name)))

    def each(self, name: str) -> list[_Kids]:
        return [_Kids(el, self.at(name, i)) for i, el in enumerate(self.named.get(name, []), 1)]

    def leaves(self, table: _Table, *skip: str) -> dict[str, str | None]:
        return {attr: self.text(name) for name, attr in table if attr not in skip}

    def extras(self, known: frozenset[str]) -> tuple[str, ...]:
        return tuple(_fragment(c) for local, c in self.order if local not in known)


def _plain(cls: Callable[..., _T], table: _Table) -> Callable[[_Kids], _T]:
    """A reader for a record made only of optional leaves."""
    return lambda kids: cls(**kids.leaves(table))


def _read_org(kids: _Kids) -> m.Organization:
    name = kids.path.rsplit("/", 1)[-1].split("[", 1)[0]
    if kids.one(name) is not None:  # <From><From>…</From></From>: the inner one counts
        return _read_org(kids.require(name))
    organ_id = _text(kids.require("OrganId").el)
    return m.Organization(organ_id=organ_id, **kids.leaves(ORGANIZATION, "organ_id"))


def _read_code(kids: _Kids) -> m.Code:
    raw = (kids.el.text or "").strip()
    if not kids.order and raw:  # sloppy <Code>7816/VPCP-TTĐT</Code>
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
    raw = _text(kids.require(name).el).strip()
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


def _read_signature(header: _Kids) -> str | None:
    found = header.named.get("Signature", [])
    found = found + [c for local, c in header.order if c.tag == _DSIG_SIGNATURE and not local]
    if len(found) > 1:
        raise _error("more than one <Signature>", "duplicate_element", header.at("Signature"))
    return _fragment(found[0]) if found else None


def _check_root(root: _Element) -> None:
    name = etree.QName(root)
    if name.localname != "edXML":
        raise _error(
            f"the root is <{name.localname}>, not <edXML>", "wrong_root", f"/{name.localname}"
        )
    if name.namespace != m.EDXML_NS:
        raise _error(f"the root is in namespace {name.namespace!r}", "wrong_namespace", "/edXML")


def read_package(root: _Element) -> m.Package:
    """Read a root loaded by ``hardened.load_xml`` into a document or status record.

    A status package if ``MessageHeader`` has ``StatusCode``, else a document package if
    ``edXMLHeader`` has a ``TraceHeaderList`` (old layouts omit ``Bussiness``: ``business`` is then
    None). The tree is not modified. Raises ``PackageError`` (``edxml.wrong_root``,
    ``wrong_namespace``, ``unknown_kind``, ``missing_field``, ``bad_business_doc_type``,
    ``bad_status_code``, ``duplicate_element``) with the element path.
    """
    _check_root(root)
    top = _Kids(root, "/edXML")
    envelope = top.require("edXMLEnvelope")
    header = envelope.require("edXMLHeader")
    mh = header.require("MessageHeader")
    signature = _read_signature(header)
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


# --------------------------------------------------------------------------------------- writing


class _Writer:
    """Builds the tree; verbatim fragments become placeholders, spliced into the bytes after."""

    def __init__(self) -> None:
        self.nonce = uuid.uuid4().hex
        self.fragments: list[bytes] = []

    def verbatim(self, parent: _Element, fragments: Sequence[str]) -> None:
        for xml in fragments:
            element = load_xml(xml.encode("utf-8"))
            self.fragments.append(etree.tostring(element, encoding="UTF-8", xml_declaration=False))
            marker = f"{self.nonce}-{len(self.fragments) - 1}"
            parent.append(etree.ProcessingInstruction(_PI_TARGET, marker))

    def splice(self, body: bytes) -> bytes:
        if not self.fragments:
            return body
        first, *rest = body.split(f"<?{_PI_TARGET} {self.nonce}-".encode("ascii"))
        out = [first]
        for part in rest:
            index, _, tail = part.partition(b"?>")
            out += [self.fragments[int(index)], tail]
        return b"".join(out)


def _sub(parent: _Element, name: str, text: str | None = None) -> _Element:
    el = etree.SubElement(parent, _NS + name)
    if text is not None:
        el.text = text
    return el


def _leaves(parent: _Element, record: Any, table: _Table) -> _Element:
    for name, attr in table:
        value = getattr(record, attr)
        if value is not None:
            _sub(parent, name, getattr(value, "value", value))  # str enums: their value
    return parent


def _texts(parent: _Element, container: str, item: str, values: Sequence[str] | None) -> None:
    if values is not None:
        el = _sub(parent, container)
        for value in values:
            _sub(el, item, value)


def _record(parent: _Element, name: str, record: Any, table: _Table) -> None:
    if record is not None:
        _leaves(_sub(parent, name), record, table)


def _write_other_info(w: _Writer, parent: _Element, info: m.OtherInfo | None) -> None:
    if info is not None:
        el = _leaves(_sub(parent, "OtherInfo"), info, OTHER_INFO + DIRECTION)
        _texts(el, "Appendixes", "Appendix", info.appendixes)
        w.verbatim(el, info.extras)


def _write_message_header(w: _Writer, parent: _Element, h: m.MessageHeader) -> None:
    mh = _sub(parent, "MessageHeader")
    for name, org in [("From", h.from_), *(("To", t) for t in h.to)]:
        _record(mh, name, org, ORGANIZATION)
    _leaves(mh, h, _table("DocumentId"))
    _record(mh, "Code", h.code, CODE)
    _record(mh, "PromulgationInfo", h.promulgation_info, PROMULGATION)
    _record(mh, "DocumentType", h.document_type, DOCUMENT_TYPE)
    _leaves(mh, h, _table("Subject Content"))
    _record(mh, "SignerInfo", h.signer_info, SIGNER)
    _leaves(mh, h, _table("DueDate"))
    _write_other_info(w, mh, h.other_info)
    for ref in h.response_for:
        _record(mh, "ResponseFor", ref, RESPONSE_FOR)
    _leaves(mh, h, _table("SteeringType"))
    _texts(mh, "ResponseForTask", "TaskCode", h.response_for_task)
    _leaves(mh, h, _table("ApplicationType"))
    _texts(mh, "ToPlaces", "Place", h.to_places)
    w.verbatim(mh, h.extras)


def _write_business(w: _Writer, parent: _Element, b: m.Business) -> None:
    el = _leaves(_sub(parent, "Bussiness"), b, BUSINESS)
    info = b.business_document_info
    if info is not None:
        info_el = _leaves(_sub(el, "BussinessDocumentInfo"), info, DOCUMENT_INFO)
        if info.receivers is not None:
            listing = _sub(info_el, "ReceiverList")
            for receiver in info.receivers:
                _record(listing, "Receiver", receiver, RECEIVER)
    if b.replacement_info_list is not None:
        listing = _sub(el, "ReplacementInfoList")
        for replaced in b.replacement_info_list:
            item = _leaves(_sub(listing, "ReplacementInfo"), replaced, _table("DocumentId"))
            _texts(item, "OrganIdList", "OrganId", replaced.organ_ids)
    _record(el, "StaffInfo", b.staff_info, STAFF)
    w.verbatim(el, b.extras)


def _write_trace_header_list(w: _Writer, parent: _Element, t: m.TraceHeaderList) -> None:
    el = _sub(parent, "TraceHeaderList")
    for hop in t.trace_headers:
        _record(el, "TraceHeader", hop, TRACE_HEADER)
    if t.business is not None:
        _write_business(w, el, t.business)


def _write_body(parent: _Element, manifest: m.Manifest | None) -> None:
    body = _sub(parent, "edXMLBody")
    if manifest is None:
        return
    el = _sub(body, "edXMLManifest")
    if manifest.version is not None:
        el.set("version", manifest.version)
    for ref in manifest.references:
        xlink = any(name.startswith(f"{{{_XLINK_NS}}}") for name, _ in ref.attributes)
        nsmap = {"xlink": _XLINK_NS} if xlink else None
        item = etree.SubElement(el, _NS + "Reference", nsmap=nsmap)
        for name, value in ref.attributes:
            item.set(name, value)
        _leaves(item, ref, REFERENCE)


def _write_attachments(root: _Element, attachments: Sequence[m.Attachment]) -> None:
    if not attachments:
        return
    encoded = _sub(root, "AttachmentEncoded")  # in the root's default namespace: unprefixed
    for att in attachments:
        el = _leaves(_sub(encoded, "Attachment"), att, ATTACHMENT)
        nsmap = {"edXML": m.EDXML_NS}
        etree.SubElement(el, _NS + "ContentTransferEncoded", nsmap=nsmap).text = att.content_b64


def _write_status_header(w: _Writer, parent: _Element, h: m.StatusHeader) -> None:
    mh = _sub(parent, "MessageHeader")
    _record(mh, "From", h.from_, ORGANIZATION)
    _record(mh, "ResponseFor", h.response_for, RESPONSE_FOR)
    _record(mh, "StaffInfo", h.staff_info, STAFF)
    _leaves(mh, h, STATUS_HEADER)
    w.verbatim(mh, h.extras)


def _indent(el: _Element, depth: int) -> None:
    """Pretty-print containers with 2 spaces; leaf text (and so base64) is never touched."""
    if len(el) == 0:
        return
    inner = "\n" + "  " * (depth + 1)
    el.text = inner
    for child in el:
        _indent(child, depth + 1)
        child.tail = inner
    el[-1].tail = inner[:-2]


def _build(w: _Writer, pkg: m.Package) -> _Element:
    root = etree.Element(_NS + "edXML", nsmap={None: m.EDXML_NS})  # type: ignore[dict-item]
    envelope = etree.SubElement(root, _NS + "edXMLEnvelope", nsmap={"edXML": m.EDXML_NS})
    header = _sub(envelope, "edXMLHeader")
    if isinstance(pkg, m.StatusPackage):
        _write_status_header(w, header, pkg.header)
    else:
        _write_message_header(w, header, pkg.header)
        _write_trace_header_list(w, header, pkg.trace_header_list)
    if pkg.signature_xml is not None:
        w.verbatim(header, [pkg.signature_xml])
    if isinstance(pkg, m.DocumentPackage):
        _write_body(envelope, pkg.manifest)
        _write_attachments(root, pkg.attachments)
    _indent(root, 0)
    return root


def serialize_package(pkg: m.Package) -> bytes:
    """The package as UTF-8 edXML bytes, in the prefix layout and element order of real systems.

    ``None`` fields are omitted, ``""`` fields written as empty elements; attachment base64 is
    written as-is. Raises ``PackageError`` (``edxml.unserializable``) for text XML cannot carry.
    """
    w = _Writer()
    try:
        root = _build(w, pkg)
    except ValueError as exc:  # lxml refuses control characters, invalid names…
        raise PackageError(f"cannot write as XML: {exc}", code="edxml.unserializable") from exc
    return XML_DECLARATION + w.splice(etree.tostring(root, encoding="UTF-8", xml_declaration=False))
