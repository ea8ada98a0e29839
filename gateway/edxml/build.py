"""Builders of edXML records: new documents, status answers, revocations, updates, replacements.

The builders return records (serialize them with ``xml_codec.serialize_package`` or the JSON
codec). They follow what real systems emit: ``DocumentId`` = ``<sender OrganId>,<yyyy/MM/dd>,
<CodeNumber>/<CodeNotation>``, one ``TraceHeader`` for the sender stamped with the current
Asia/Ho_Chi_Minh wall-clock time, and the elements Bkav's hub requires present even when the caller
has nothing to say (empty ``Place``, ``DueDate``, ``SignerInfo`` children, ``ToPlaces``), because a
missing element is refused there while an empty one passes. Every builder takes ``now`` so tests
and replays are deterministic.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from types import MappingProxyType

from gateway.core.errors import PackageError
from gateway.edxml.model import (
    Attachment,
    Business,
    BusinessDocType,
    BusinessDocumentInfo,
    Code,
    DocumentPackage,
    DocumentType,
    Manifest,
    ManifestReference,
    MessageHeader,
    Organization,
    OtherInfo,
    PromulgationInfo,
    Receiver,
    ReplacementInfo,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusCode,
    StatusHeader,
    StatusPackage,
    TraceHeader,
    TraceHeaderList,
)

VIETNAM_TZ = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")  # UTC+7, no daylight saving
DATE_FORMAT = "%Y/%m/%d"
TIMESTAMP_FORMAT = "%Y/%m/%d %H:%M:%S"
HEADER = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"

AttachmentInput = tuple[str, bytes, str]  # (file name, file bytes, content type)

STATUS_DESCRIPTIONS: Mapping[StatusCode, str] = MappingProxyType({
    StatusCode.INBOX: "Văn thư - Phòng Văn thư - Lưu trữ: Đã đến - Phần mềm QLVB đã nhận nhưng "
    "văn thư chưa xử lý",
    StatusCode.REJECTION: "Văn thư - Phòng Văn thư - Lưu trữ: Từ chối không tiếp nhận văn bản "
    "điện tử",
    StatusCode.ACCEPTANCE: "Văn thư cơ - Phòng Văn thư - Lưu trữ: Tiếp nhận văn bản điện tử, vào "
    "sổ văn bản đến của đơn vị",
    StatusCode.ASSIGNMENT: "Lãnh đạo: Phân công xử lý",
    StatusCode.PROCESSING: "Đang xử lý văn bản đến",
    StatusCode.FINISH: "Văn thư: Ban hành văn bản đến, hoàn thành xử lý",
    StatusCode.CANCELLATION: "Văn thư yêu cầu lấy lại văn bản điện tử kèm lý do",
    StatusCode.CHANGE_ACCEPTANCE: "Văn thư đồng ý yêu cầu cập nhật, lấy lại",
    StatusCode.CHANGE_REJECTION: "Văn thư từ chối yêu cầu cập nhật, lấy lại",
})  # fmt: skip
"""The VPCP samples' ``Description`` per code (reserved codes have none)."""

BUSINESS_REASONS: Mapping[BusinessDocType, str] = MappingProxyType({
    BusinessDocType.NEW: "Văn bản điện tử mới",
    BusinessDocType.REVOKE: "Thu hồi văn bản điện tử",
    BusinessDocType.UPDATE: "Cập nhật văn bản điện tử",
    BusinessDocType.REPLACE: "Văn bản thay thế",
})  # fmt: skip

DEFAULT_DOCUMENT_TYPE = DocumentType(type="2", type_detail="0", type_name="Công văn")
DEFAULT_SIGNER = SignerInfo(competence="", position="", full_name="")


def wall_clock(now: datetime | None = None) -> datetime:
    """``now`` (default: the current time) on the Asia/Ho_Chi_Minh clock; naive = already local."""
    if now is None:
        return datetime.now(VIETNAM_TZ)
    return now.replace(tzinfo=VIETNAM_TZ) if now.tzinfo is None else now.astimezone(VIETNAM_TZ)


def format_timestamp(now: datetime | None = None) -> str:
    """``yyyy/MM/dd HH:mm:ss`` in Vietnam, as ``TraceHeader`` and status ``Timestamp`` want it."""
    return wall_clock(now).strftime(TIMESTAMP_FORMAT)


def document_id_for(organ_id: str, promulgated: date, code_number: str, code_notation: str) -> str:
    """``000.00.00.G22,2015/09/30,7816/VPCP-TTĐT``."""
    return f"{organ_id},{promulgated.strftime(DATE_FORMAT)},{code_number}/{code_notation}"


def reference_to(document: DocumentPackage) -> ResponseFor:
    """A ``ResponseFor`` naming ``document`` (its sender, code, date and DocumentId)."""
    h = document.header
    return ResponseFor(
        organ_id=document.sender,
        code=str(h.code) if h.code else None,
        promulgation_date=h.promulgation_info.promulgation_date if h.promulgation_info else None,
        document_id=document.document_id,
    )


def _trace(sender: str, business: Business, now: datetime | None) -> TraceHeaderList:
    return TraceHeaderList((TraceHeader(sender, format_timestamp(now)),), business)


def _files(attachments: Sequence[AttachmentInput]) -> tuple[Manifest, tuple[Attachment, ...]]:
    """The manifest references and attachments of the files, matched by a fresh ``cid:<uuid4>``."""
    refs, atts = [], []
    for name, data, content_type in attachments:
        cid = f"cid:{uuid.uuid4()}"
        refs.append(ManifestReference(cid, content_type, name, name))
        atts.append(
            Attachment(
                cid, name, name, content_type=content_type, content_b64=Attachment.encode(data)
            )
        )
    return Manifest(references=tuple(refs)), tuple(atts)


def _check_recipients(recipients: Sequence[Organization]) -> None:
    if not recipients:
        raise PackageError(
            "a document needs a recipient", code="edxml.missing_field", path=f"{HEADER}/To"
        )
    ids = [r.organ_id for r in recipients]
    if len(set(ids)) != len(ids):
        raise PackageError(
            f"a recipient is listed twice: {ids}",
            code="edxml.duplicate_recipient",
            path=f"{HEADER}/To",
        )


def new_document(
    sender: Organization,
    recipients: Sequence[Organization],
    *,
    code_number: str,
    code_notation: str,
    subject: str,
    content: str | None = None,
    attachments: Sequence[AttachmentInput] = (),
    promulgation_date: date | None = None,
    place: str = "",
    due_date: date | None = None,
    document_type: DocumentType = DEFAULT_DOCUMENT_TYPE,
    signer: SignerInfo = DEFAULT_SIGNER,
    to_places: Sequence[str] = (),
    priority: str = "0",
    steering_type: str = "1",
    staff: StaffInfo | None = None,
    now: datetime | None = None,
) -> DocumentPackage:
    """A new document (BussinessDocType 0) from ``sender`` to ``recipients``.

    ``content`` defaults to ``subject``; ``promulgation_date`` to today in Vietnam (it is also the
    date in the DocumentId); ``due_date`` to an empty element. ``attachments`` are ``(file name,
    bytes, content type)``; each gets a ``cid:<uuid4>`` shared by its manifest reference. Raises
    ``PackageError`` if there is no recipient or one is listed twice.
    """
    _check_recipients(recipients)
    promulgated = promulgation_date or wall_clock(now).date()
    document_id = document_id_for(sender.organ_id, promulgated, code_number, code_notation)
    header = MessageHeader(
        from_=sender,
        to=tuple(recipients),
        document_id=document_id,
        code=Code(code_number, code_notation),
        promulgation_info=PromulgationInfo(place, promulgated.strftime(DATE_FORMAT)),
        document_type=document_type,
        subject=subject,
        content=subject if content is None else content,
        signer_info=signer,
        due_date=due_date.strftime(DATE_FORMAT) if due_date else "",
        other_info=OtherInfo(priority=priority, promulgation_amount="1", direction="false"),
        steering_type=steering_type,
        to_places=tuple(to_places),
    )
    business = Business(
        BusinessDocType.NEW,
        document_id,
        BUSINESS_REASONS[BusinessDocType.NEW],
        paper="0",
        staff_info=staff,
    )
    manifest, files = _files(attachments)
    return DocumentPackage(header, _trace(sender.organ_id, business, now), manifest, files)


def status_for(
    document: DocumentPackage,
    sender: Organization,
    code: StatusCode,
    *,
    description: str | None = None,
    staff: StaffInfo | None = None,
    now: datetime | None = None,
) -> StatusPackage:
    """A status package from ``sender`` (a recipient) telling ``document``'s sender ``code``.

    ``description`` defaults to the standard VPCP text for the code (none for reserved codes).
    """
    header = StatusHeader(
        from_=sender,
        response_for=reference_to(document),
        status_code=code,
        staff_info=staff,
        description=STATUS_DESCRIPTIONS.get(code) if description is None else description,
        timestamp=format_timestamp(now),
    )
    return StatusPackage(header)


def _staff_of(document: DocumentPackage) -> StaffInfo | None:
    business = document.trace_header_list.business
    return business.staff_info if business else None


def revoke_of(
    original: DocumentPackage,
    *,
    reason: str = BUSINESS_REASONS[BusinessDocType.REVOKE],
    staff: StaffInfo | None = None,
    now: datetime | None = None,
) -> DocumentPackage:
    """The revocation (BussinessDocType 1) of ``original``, by its sender, to its recipients.

    The header is the original's with ``ResponseFor`` pointing at it; no files are sent again.
    ``staff`` defaults to the original's ``StaffInfo``.
    """
    header = replace(original.header, response_for=(reference_to(original),))
    business = Business(
        BusinessDocType.REVOKE,
        original.document_id,
        reason,
        paper="0",
        staff_info=staff or _staff_of(original),
    )
    trace = _trace(original.sender, business, now)
    return DocumentPackage(header, trace, Manifest(), ())


def _receiver_changes(
    original: DocumentPackage, added: Sequence[Organization], removed: Sequence[Organization]
) -> tuple[Receiver, ...]:
    current = set(original.recipients)
    for org, present in [*((o, False) for o in added), *((o, True) for o in removed)]:
        if (org.organ_id in current) != present:
            state = "already" if not present else "not"
            raise PackageError(
                f"{org.organ_id} is {state} a recipient",
                code="edxml.bad_recipient_change",
                path=f"{HEADER}/To",
            )
    return tuple(
        [Receiver(o.organ_id, "0") for o in removed] + [Receiver(o.organ_id, "1") for o in added]
    )


def update_of(
    original: DocumentPackage,
    *,
    subject: str | None = None,
    content: str | None = None,
    due_date: date | None = None,
    attachments: Sequence[AttachmentInput] | None = None,
    added_recipients: Sequence[Organization] = (),
    removed_recipients: Sequence[Organization] = (),
    reason: str = BUSINESS_REASONS[BusinessDocType.UPDATE],
    staff: StaffInfo | None = None,
    now: datetime | None = None,
) -> DocumentPackage:
    """The update (BussinessDocType 2) of ``original``: new metadata and/or recipient changes.

    ``None`` keeps a field; ``attachments`` replaces all files. Removed recipients stay in ``To``
    (they must learn of the removal) and are listed with ``ReceiverType`` 0, added ones are
    appended and listed with 1. Raises ``PackageError`` if nothing changes, a removed organ is not
    a recipient or an added one already is.
    """
    metadata = any(v is not None for v in (subject, content, due_date, attachments))
    receivers = _receiver_changes(original, added_recipients, removed_recipients)
    if not metadata and not receivers:
        raise PackageError("an update must change something", code="edxml.empty_update")
    h = original.header
    header = replace(
        h,
        to=h.to + tuple(added_recipients),
        subject=h.subject if subject is None else subject,
        content=h.content if content is None else content,
        due_date=h.due_date if due_date is None else due_date.strftime(DATE_FORMAT),
    )
    info = BusinessDocumentInfo(
        "1" if metadata else "0", "1" if receivers else "0", receivers or None
    )
    business = Business(
        BusinessDocType.UPDATE,
        original.document_id,
        reason,
        paper="0",
        business_document_info=info,
        staff_info=staff or _staff_of(original),
    )
    files = (
        (original.manifest, original.attachments) if attachments is None else _files(attachments)
    )
    return DocumentPackage(header, _trace(original.sender, business, now), *files)


def replacement_of(
    original: DocumentPackage,
    replacement: DocumentPackage,
    *,
    organ_ids: Sequence[str] | None = None,
    reason: str = BUSINESS_REASONS[BusinessDocType.REPLACE],
    now: datetime | None = None,
) -> DocumentPackage:
    """``replacement`` (built with ``new_document``) turned into the replacement of ``original``.

    The result is BussinessDocType 3 with a ``ReplacementInfo`` naming ``original``'s DocumentId
    for ``organ_ids`` (default: the original's recipients). Raises ``PackageError`` if the two
    documents have different senders: only the sender of a document may replace it.
    """
    if replacement.sender != original.sender:
        raise PackageError(
            f"{replacement.sender} cannot replace a document of {original.sender}",
            code="edxml.sender_mismatch",
            path=f"{HEADER}/From/OrganId",
        )
    targets = original.recipients if organ_ids is None else tuple(organ_ids)
    info = ReplacementInfo(original.document_id, targets)
    business = Business(
        BusinessDocType.REPLACE,
        replacement.document_id,
        reason,
        paper="0",
        replacement_info_list=(info,),
        staff_info=_staff_of(replacement),
    )
    return replace(replacement, trace_header_list=_trace(replacement.sender, business, now))
