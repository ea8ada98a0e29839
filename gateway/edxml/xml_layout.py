"""The edXML wire layout: element names in VNPT order per record, and the writer (records -> bytes).

Writing emits exactly the prefix layout real systems expect: ``<edXML xmlns="…">`` unprefixed,
``<edXML:edXMLEnvelope xmlns:edXML="…">`` with every envelope descendant prefixed ``edXML:``,
``AttachmentEncoded`` and the ``Attachment`` children unprefixed, except for
``edXML:ContentTransferEncoded``. Verbatim fragments (``extras``, ``signature_xml``) are spliced
into the bytes at processing-instruction placeholders, so that lxml cannot rewrite their prefixes.
Leaf text, attachment base64 included, is written as-is; containers are indented by two spaces.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from lxml import etree

from gateway.core.errors import PackageError
from gateway.edxml import model as m
from gateway.edxml.hardened import load_xml

_Element = etree._Element
Table = tuple[tuple[str, str], ...]  # (element local name, record attribute), in wire order

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
NS = f"{{{m.EDXML_NS}}}"  # Clark prefix of edXML names
_XLINK_NS = "http://www.w3.org/1999/xlink"
_PI_TARGET = "lgsp-verbatim"


def table(words: str) -> Table:
    """``"OrganId OrganName"`` -> ``(("OrganId", "organ_id"), ("OrganName", "organ_name"))``."""
    snake = [
        re.sub(r"(?<!^)(?=[A-Z])", "_", w).lower().replace("bussi", "busi") for w in words.split()
    ]
    return tuple(zip(words.split(), snake, strict=True))


def names(words: str) -> frozenset[str]:
    """The element names a container knows (others are kept as ``extras``)."""
    return frozenset(words.split())


ORGANIZATION = table("OrganId OrganizationInCharge OrganName OrganAdd Email Telephone Fax Website")
CODE = table("CodeNumber CodeNotation")
PROMULGATION = table("Place PromulgationDate")
DOCUMENT_TYPE = table("Type TypeDetail TypeName")
SIGNER = table("Competence Position FullName")
RESPONSE_FOR = table("OrganId Code PromulgationDate DocumentId")
STAFF = table("Department DepartmentId Staff StaffId Email Mobile")
OTHER_INFO = table("Priority SphereOfPromulgation TyperNotation PromulgationAmount PageAmount")
DIRECTION = table("Direction")
TRACE_HEADER = table("OrganId Timestamp")
RECEIVER = table("OrganId ReceiverType")
DOCUMENT_INFO = table("DocumentInfo DocumentReceiver")
BUSINESS = table("DocumentId BussinessDocType BussinessDocReason Paper")
REFERENCE = table("ContentId ContentType Description AttachmentName")
ATTACHMENT = table("ContentId AttachmentName Description FieldName MimeType ContentType")
STATUS_HEADER = table("StatusCode Description Timestamp")
MESSAGE_HEADER_NAMES = names(
    "From To DocumentId Code PromulgationInfo DocumentType Subject Content SignerInfo DueDate "
    "OtherInfo ResponseFor SteeringType ResponseForTask ApplicationType ToPlaces"
)
STATUS_HEADER_NAMES = names("From ResponseFor StaffInfo StatusCode Description Timestamp")
BUSINESS_NAMES = names(
    "DocumentId BussinessDocType BussinessDocReason Paper BussinessDocumentInfo "
    "ReplacementInfoList StaffInfo"
)
OTHER_INFO_NAMES = names(
    "Priority SphereOfPromulgation TyperNotation PromulgationAmount PageAmount Direction Appendixes"
)


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
    el = etree.SubElement(parent, NS + name)
    if text is not None:
        el.text = text
    return el


def _leaves(parent: _Element, record: Any, table: Table) -> _Element:
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


def _record(parent: _Element, name: str, record: Any, table: Table) -> None:
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
    _leaves(mh, h, table("DocumentId"))
    _record(mh, "Code", h.code, CODE)
    _record(mh, "PromulgationInfo", h.promulgation_info, PROMULGATION)
    _record(mh, "DocumentType", h.document_type, DOCUMENT_TYPE)
    _leaves(mh, h, table("Subject Content"))
    _record(mh, "SignerInfo", h.signer_info, SIGNER)
    _leaves(mh, h, table("DueDate"))
    _write_other_info(w, mh, h.other_info)
    for ref in h.response_for:
        _record(mh, "ResponseFor", ref, RESPONSE_FOR)
    _leaves(mh, h, table("SteeringType"))
    _texts(mh, "ResponseForTask", "TaskCode", h.response_for_task)
    _leaves(mh, h, table("ApplicationType"))
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
            item = _leaves(_sub(listing, "ReplacementInfo"), replaced, table("DocumentId"))
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
        item = etree.SubElement(el, NS + "Reference", nsmap=nsmap)
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
        etree.SubElement(el, NS + "ContentTransferEncoded", nsmap=nsmap).text = att.content_b64


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
    root = etree.Element(NS + "edXML", nsmap={None: m.EDXML_NS})  # type: ignore[dict-item]
    envelope = etree.SubElement(root, NS + "edXMLEnvelope", nsmap={"edXML": m.EDXML_NS})
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
