"""Frozen, typed records of edXML packages (QCVN 102:2016): document packages and status packages.

One model, two codecs: ``xml_codec`` (parse/serialize) and ``json_codec`` read and write these
records. Text fields are kept as the producer wrote them (``None`` = element absent, ``""`` = empty
element) so that parse -> serialize -> parse is lossless; typed views (enums, dates) are properties.
Elements the model does not know are kept verbatim in ``extras`` (serialized XML fragments).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
XMLDSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
ZIP_MAGIC = b"PK\x03\x04"


class BusinessDocType(StrEnum):
    """``Bussiness/BussinessDocType``: what a document package does."""

    NEW = "0"
    REVOKE = "1"
    UPDATE = "2"
    REPLACE = "3"


class StatusCode(StrEnum):
    """``StatusCode`` of a status package; 07-12 and 14 are reserved (accepted, logged)."""

    INBOX = "01"
    REJECTION = "02"
    ACCEPTANCE = "03"
    ASSIGNMENT = "04"
    PROCESSING = "05"
    FINISH = "06"
    RESERVED_07 = "07"
    RESERVED_08 = "08"
    RESERVED_09 = "09"
    RESERVED_10 = "10"
    RESERVED_11 = "11"
    RESERVED_12 = "12"
    CANCELLATION = "13"
    RESERVED_14 = "14"
    CHANGE_ACCEPTANCE = "15"
    CHANGE_REJECTION = "16"

    @property
    def is_reserved(self) -> bool:
        return self.name.startswith("RESERVED_")


class PackageKind(StrEnum):
    DOCUMENT = "document"
    STATUS = "status"


@dataclass(frozen=True, slots=True)
class Organization:
    """``From`` / ``To``: an agency, by its OrganId (mã định danh) and contact fields."""

    organ_id: str
    organization_in_charge: str | None = None
    organ_name: str | None = None
    organ_add: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


@dataclass(frozen=True, slots=True)
class Code:
    """``Code``: the document's number and notation (``7816`` / ``VPCP-TTĐT``)."""

    code_number: str | None = None
    code_notation: str | None = None

    def __str__(self) -> str:
        return f"{self.code_number or ''}/{self.code_notation or ''}"


@dataclass(frozen=True, slots=True)
class PromulgationInfo:
    place: str | None = None
    promulgation_date: str | None = None  # yyyy/MM/dd as written


@dataclass(frozen=True, slots=True)
class DocumentType:
    type: str | None = None  # 1 = legal normative, 2 = administrative; producers send others
    type_detail: str | None = None
    type_name: str | None = None


@dataclass(frozen=True, slots=True)
class SignerInfo:
    competence: str | None = None
    position: str | None = None
    full_name: str | None = None


@dataclass(frozen=True, slots=True)
class OtherInfo:
    priority: str | None = None  # 0 thường .. 4 hỏa tốc hẹn giờ
    sphere_of_promulgation: str | None = None
    typer_notation: str | None = None
    promulgation_amount: str | None = None
    page_amount: str | None = None
    direction: str | None = None
    appendixes: tuple[str, ...] | None = None  # None = no <Appendixes> element
    extras: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ResponseFor:
    """A reference to an earlier document (revoke target, or what a status answers)."""

    organ_id: str | None = None
    code: str | None = None
    promulgation_date: str | None = None
    document_id: str | None = None


@dataclass(frozen=True, slots=True)
class StaffInfo:
    department: str | None = None
    department_id: str | None = None
    staff: str | None = None
    staff_id: str | None = None
    email: str | None = None
    mobile: str | None = None


@dataclass(frozen=True, slots=True)
class TraceHeader:
    """One hop: who handled the package, and when (``yyyy/MM/dd HH:mm:ss``)."""

    organ_id: str
    timestamp: str | None = None


@dataclass(frozen=True, slots=True)
class Receiver:
    """``ReceiverList/Receiver`` of an update: 0 = removed from recipients, 1 = newly added."""

    organ_id: str
    receiver_type: str | None = None


@dataclass(frozen=True, slots=True)
class BusinessDocumentInfo:
    """What an update (BussinessDocType 2) changes."""

    document_info: str | None = None  # 0/1: metadata changed
    document_receiver: str | None = None  # 0/1: recipient list changed
    receivers: tuple[Receiver, ...] | None = None  # None = no <ReceiverList>


@dataclass(frozen=True, slots=True)
class ReplacementInfo:
    """What a replace (BussinessDocType 3) replaces, and for whom."""

    document_id: str | None = None
    organ_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Business:
    """``TraceHeaderList/Bussiness`` (the spelling is the standard's)."""

    business_doc_type: BusinessDocType
    document_id: str | None = None
    business_doc_reason: str | None = None
    paper: str | None = None
    business_document_info: BusinessDocumentInfo | None = None
    replacement_info_list: tuple[ReplacementInfo, ...] | None = None
    staff_info: StaffInfo | None = None
    extras: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TraceHeaderList:
    trace_headers: tuple[TraceHeader, ...] = ()
    business: Business | None = None


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """``MessageHeader`` of a document package, fields in the order real systems emit them."""

    from_: Organization
    to: tuple[Organization, ...]
    document_id: str | None = None
    code: Code | None = None
    promulgation_info: PromulgationInfo | None = None
    document_type: DocumentType | None = None
    subject: str | None = None
    content: str | None = None
    signer_info: SignerInfo | None = None
    due_date: str | None = None
    other_info: OtherInfo | None = None
    response_for: tuple[ResponseFor, ...] = ()
    steering_type: str | None = None
    response_for_task: tuple[str, ...] | None = None  # TaskCode values
    application_type: str | None = None
    to_places: tuple[str, ...] | None = None
    extras: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ManifestReference:
    """``edXMLManifest/Reference``: the declared attachment, matched by ``content_id``."""

    content_id: str
    content_type: str | None = None
    description: str | None = None
    attachment_name: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()  # e.g. xlink:href, as (clark name, value)


@dataclass(frozen=True, slots=True)
class Manifest:
    version: str | None = "1.0"
    references: tuple[ManifestReference, ...] = ()


def decode_base64_text(text: str) -> bytes:
    """Strict base64 once whitespace is removed: what ``b64decode(validate=True)`` accepts, but
    without its regex pass, and without copying a text that has no whitespace. Raises
    ``binascii.Error`` (or ``ValueError`` for non-ASCII text) on anything else."""
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):  # line breaks (or worse): drop the whitespace, again
        return binascii.a2b_base64("".join(text.split()), strict_mode=True)


@dataclass(frozen=True, slots=True)
class Attachment:
    """``AttachmentEncoded/Attachment``: a file, base64-encoded in ``content_b64``."""

    content_id: str
    attachment_name: str | None = None
    description: str | None = None
    field_name: str | None = None
    mime_type: str | None = None
    content_type: str | None = None
    content_b64: str = field(default="", repr=False)

    def data(self) -> bytes:
        """The decoded file bytes. Raises ``binascii.Error`` on invalid base64."""
        return decode_base64_text(self.content_b64)

    def is_zip(self) -> bool:
        """Whether the payload is a ZIP archive (producers zip files and lie about the name)."""
        try:
            head = base64.b64decode("".join(self.content_b64[:64].split())[:8], validate=True)
        except (binascii.Error, ValueError):
            return False
        return head.startswith(ZIP_MAGIC)

    @staticmethod
    def encode(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class DocumentPackage:
    """A document package (gói tin văn bản): new, revoke, update or replace."""

    header: MessageHeader
    trace_header_list: TraceHeaderList
    manifest: Manifest | None = None
    attachments: tuple[Attachment, ...] = ()
    signature_xml: str | None = None  # the <Signature> element verbatim, if any

    kind = PackageKind.DOCUMENT

    @property
    def sender(self) -> str:
        return self.header.from_.organ_id

    @property
    def recipients(self) -> tuple[str, ...]:
        return tuple(o.organ_id for o in self.header.to)

    @property
    def document_id(self) -> str | None:
        return self.header.document_id

    @property
    def business_doc_type(self) -> BusinessDocType | None:
        b = self.trace_header_list.business
        return b.business_doc_type if b else None


@dataclass(frozen=True, slots=True)
class StatusHeader:
    """``MessageHeader`` of a status package, in VNPT ``MessageStatus`` order."""

    from_: Organization
    response_for: ResponseFor
    status_code: StatusCode
    staff_info: StaffInfo | None = None
    description: str | None = None
    timestamp: str | None = None
    extras: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StatusPackage:
    """A status package (gói tin trạng thái) answering an earlier document."""

    header: StatusHeader
    signature_xml: str | None = None

    kind = PackageKind.STATUS

    @property
    def sender(self) -> str:
        return self.header.from_.organ_id

    @property
    def recipients(self) -> tuple[str, ...]:
        """Status packages go back to the sender of the referenced document."""
        target = self.header.response_for.organ_id
        return (target,) if target else ()

    @property
    def document_id(self) -> str | None:
        return self.header.response_for.document_id


Package: TypeAlias = DocumentPackage | StatusPackage
