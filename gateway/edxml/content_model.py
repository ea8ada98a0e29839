"""The edXML content model the structural check applies (``edxml.xsd``'s types): for each type,
how its children are checked, which it may have and how often; and the globally declared elements.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

UNBOUNDED: Final = 0


class Content(StrEnum):
    """How a type's children are checked."""

    TEXT = "text"  # simple content: no element children
    CLOSED = "closed"  # its own children (each with a maximum) and foreign elements
    OPEN = "open"  # any element; edXML ones that are declared globally are checked as such
    OPAQUE = "opaque"  # mixed, lax: only what is declared inside is checked


@dataclass(frozen=True, slots=True)
class ElementType:
    content: Content
    children: Mapping[str, tuple[str, int]]  # local name -> (type name, max occurrences)
    mixed: bool = False


def _kids(spec: str) -> dict[str, tuple[str, int]]:
    """``"OrganId Code:Code Place*"`` -> {name: (type, max)}; ``*`` = unbounded, type Text."""
    out: dict[str, tuple[str, int]] = {}
    for word in spec.split():
        name, _, type_name = word.partition(":")
        many = name.endswith("*")
        name = name.rstrip("*")
        out[name] = (type_name or "Text", UNBOUNDED if many else 1)
    return out


def _closed(spec: str, *, mixed: bool = False) -> ElementType:
    return ElementType(Content.CLOSED, _kids(spec), mixed)


_ORGANIZATION = "OrganId OrganizationInCharge OrganName OrganAdd Email Telephone Fax Website"
_STAFF = "Department DepartmentId Staff StaffId Email Mobile"
TYPES: Final[Mapping[str, ElementType]] = {
    "Text": ElementType(Content.TEXT, {}),
    "Opaque": ElementType(Content.OPAQUE, {}, mixed=True),
    "Organization": _closed(_ORGANIZATION),
    "Code": _closed("CodeNumber CodeNotation", mixed=True),
    "PromulgationInfo": _closed("Place PromulgationDate"),
    "DocumentType": _closed("Type TypeDetail TypeName"),
    "SignerInfo": _closed("Competence Position FullName"),
    "Appendixes": _closed("Appendix*"),
    "ResponseFor": _closed("OrganId Code:Code PromulgationDate DocumentId"),
    "ResponseForTask": _closed("TaskCode*"),
    "ToPlaces": _closed("Place*"),
    "StaffInfo": _closed(_STAFF),
    "TraceHeaderList": _closed("TraceHeader*:TraceHeader Bussiness:Bussiness"),
    "TraceHeader": _closed("OrganId Timestamp"),
    "BussinessDocumentInfo": _closed("DocumentInfo DocumentReceiver ReceiverList:ReceiverList"),
    "ReceiverList": _closed("Receiver*:Receiver"),
    "Receiver": _closed("OrganId ReceiverType"),
    "ReplacementInfoList": _closed("ReplacementInfo*:ReplacementInfo"),
    "ReplacementInfo": _closed("DocumentId OrganIdList:OrganIdList"),
    "OrganIdList": _closed("OrganId*"),
    "Body": _closed("edXMLManifest:Manifest"),
    "Manifest": _closed("Reference*:ManifestReference"),
    "ManifestReference": _closed("ContentId ContentType Description AttachmentName"),
    "AttachmentEncoded": _closed("Attachment*:Attachment"),
    "Attachment": _closed(
        "ContentId AttachmentName Description FieldName MimeType ContentType ContentTransferEncoded"
    ),
    # The open containers: their known children are the global elements below, at most once each
    # unless starred; MessageHeader's depend on the kind of package (see ``structure._Walk``).
    "OtherInfo": ElementType(Content.OPEN, _kids(
        "Priority SphereOfPromulgation TyperNotation PromulgationAmount PageAmount Direction "
        "Appendixes:Appendixes"
    )),
    "Bussiness": ElementType(Content.OPEN, _kids(
        "DocumentId BussinessDocType BussinessDocReason Paper "
        "BussinessDocumentInfo:BussinessDocumentInfo ReplacementInfoList:ReplacementInfoList "
        "StaffInfo:StaffInfo"
    )),
}  # fmt: skip

DOCUMENT_HEADER = ElementType(Content.OPEN, _kids(
    "From:Organization To*:Organization DocumentId Code:Code PromulgationInfo:PromulgationInfo "
    "DocumentType:DocumentType Subject Content SignerInfo:SignerInfo DueDate OtherInfo:OtherInfo "
    "ResponseFor*:ResponseFor SteeringType ResponseForTask:ResponseForTask ApplicationType "
    "ToPlaces:ToPlaces"
))  # fmt: skip
STATUS_HEADER = ElementType(Content.OPEN, _kids(
    "From:Organization ResponseFor:ResponseFor StaffInfo:StaffInfo StatusCode Description Timestamp"
))  # fmt: skip
GLOBALS: Final[Mapping[str, str]] = {
    **{name: t for name, (t, _max) in DOCUMENT_HEADER.children.items()},
    **{name: t for name, (t, _max) in STATUS_HEADER.children.items()},
    **{name: t for name, (t, _max) in TYPES["OtherInfo"].children.items()},
    **{name: t for name, (t, _max) in TYPES["Bussiness"].children.items()},
    "edXML": "Root",
}
"""The elements ``edxml.xsd`` declares globally: checked wherever the schema meets them laxly."""
