"""The builders: DocumentId and trace conventions, each business type, and what they write."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from gateway.core.errors import PackageError
from gateway.edxml.build import (
    BUSINESS_REASONS,
    STATUS_DESCRIPTIONS,
    new_document,
    reference_to,
    replacement_of,
    revoke_of,
    status_for,
    update_of,
)
from gateway.edxml.hardened import load_xml
from gateway.edxml.model import (
    BusinessDocType,
    DocumentPackage,
    Organization,
    Package,
    ResponseFor,
    StaffInfo,
    StatusCode,
    StatusPackage,
)
from gateway.edxml.validate import validate_package, validate_schema
from gateway.edxml.xml_codec import parse_package, serialize_package

THANH_HOA = Organization(
    "000.00.00.H56", "UBND tỉnh Thanh Hóa", "Văn phòng UBND tỉnh Thanh Hóa",
    "Số 35 Đại lộ Lê Lợi, TP Thanh Hóa", "vpubnd@thanhhoa.gov.vn", "02373852345",
    "02373851234", "thanhhoa.gov.vn",
)  # fmt: skip
VPCP = Organization(
    "000.00.00.G22", "Văn phòng Chính phủ", "Văn phòng Chính phủ",
    "Số 1 Hoàng Hoa Thám, Ba Đình, Hà Nội", "vpcp@chinhphu.vn", "0804310", "0804311", "vpcp.vn",
)  # fmt: skip
NGHE_AN = Organization(
    "000.00.00.H41", "UBND Tỉnh Nghệ An", "UBND Tỉnh Nghệ An", "Số 03 Trường Thi, Vinh",
    "nghean@gov.vn", "0383840418", "0383843049", "nghean.gov.vn",
)  # fmt: skip
STAFF = StaffInfo(department="Văn thư", staff="Lê Thị Hà", email="ha@thanhhoa.gov.vn")
# 2024/05/01 17:30:05 UTC is 2024/05/02 00:30:05 in Vietnam: the date rolls over.
NOW = datetime(2024, 5, 1, 17, 30, 5, tzinfo=UTC)


def _document(**overrides: object) -> DocumentPackage:
    fields: dict[str, object] = {
        "code_number": "125",
        "code_notation": "UBND-VX",
        "subject": 'V/v kết nối, liên thông <văn bản> & "hồ sơ"',
        "attachments": [
            ("Công văn 125.pdf", b"%PDF-1.7 ...", "application/pdf"),
            ("phu-luc.zip", b"PK\x03\x04rest", "application/zip"),
        ],
        "staff": STAFF,
        "now": NOW,
    } | overrides
    return new_document(THANH_HOA, [VPCP, NGHE_AN], **fields)  # type: ignore[arg-type]


def _round_trip(pkg: Package) -> None:
    written = serialize_package(pkg)
    assert parse_package(written) == pkg
    assert validate_schema(load_xml(written)).issues == ()
    assert validate_package(pkg, today=date(2024, 5, 2)).errors == ()


def test_new_document_conventions() -> None:
    doc = _document()
    assert doc.document_id == "000.00.00.H56,2024/05/02,125/UBND-VX"
    assert doc.sender == "000.00.00.H56"
    assert doc.recipients == ("000.00.00.G22", "000.00.00.H41")
    (hop,) = doc.trace_header_list.trace_headers
    assert (hop.organ_id, hop.timestamp) == ("000.00.00.H56", "2024/05/02 00:30:05")
    business = doc.trace_header_list.business
    assert business is not None
    assert business.business_doc_type is BusinessDocType.NEW
    assert business.document_id == doc.document_id
    assert business.business_doc_reason == "Văn bản điện tử mới"
    assert business.staff_info == STAFF
    h = doc.header
    assert str(h.code) == "125/UBND-VX"
    assert h.promulgation_info is not None
    assert h.promulgation_info.promulgation_date == "2024/05/02"
    assert h.content == h.subject
    assert h.other_info is not None
    assert (h.other_info.priority, h.steering_type) == ("0", "1")
    _round_trip(doc)


def test_new_document_defaults_fill_the_required_elements() -> None:
    text = serialize_package(_document()).decode()
    for element in ("Place", "DueDate", "Competence", "Position", "FullName", "ToPlaces"):
        assert re.search(rf"<edXML:{element}(></edXML:{element}>|/>)", text), element
    assert "<edXML:TypeName>Công văn</edXML:TypeName>" in text


def test_naive_now_is_vietnam_wall_clock_and_explicit_fields_win() -> None:
    doc = _document(
        now=datetime(2024, 12, 31, 23, 59, 59),
        promulgation_date=date(2024, 12, 30),
        due_date=date(2025, 1, 15),
        content="Nội dung",
        place="Thanh Hóa",
        to_places=["Lưu: VT"],
        priority="3",
    )
    assert doc.document_id == "000.00.00.H56,2024/12/30,125/UBND-VX"
    assert doc.trace_header_list.trace_headers[0].timestamp == "2024/12/31 23:59:59"
    h = doc.header
    assert (h.due_date, h.content, h.to_places) == ("2025/01/15", "Nội dung", ("Lưu: VT",))
    assert h.promulgation_info is not None
    assert h.promulgation_info.place == "Thanh Hóa"
    assert h.other_info is not None
    assert h.other_info.priority == "3"


def test_attachments_match_their_manifest_references() -> None:
    doc = _document()
    assert doc.manifest is not None
    refs, atts = doc.manifest.references, doc.attachments
    assert [r.content_id for r in refs] == [a.content_id for a in atts]
    assert all(re.fullmatch(r"cid:[0-9a-f-]{36}", a.content_id) for a in atts)
    assert len({a.content_id for a in atts}) == 2
    assert [a.data() for a in atts] == [b"%PDF-1.7 ...", b"PK\x03\x04rest"]
    assert [(r.attachment_name, r.content_type) for r in refs] == [
        ("Công văn 125.pdf", "application/pdf"),
        ("phu-luc.zip", "application/zip"),
    ]
    assert atts[1].is_zip()


@pytest.mark.parametrize("recipients", [[], [VPCP, VPCP]], ids=["none", "twice"])
def test_new_document_refuses_bad_recipient_lists(recipients: list[Organization]) -> None:
    with pytest.raises(PackageError) as caught:
        new_document(THANH_HOA, recipients, code_number="1", code_notation="X", subject="s")
    assert caught.value.code in {"edxml.missing_field", "edxml.duplicate_recipient"}
    assert caught.value.path == "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/To"


@pytest.mark.parametrize("code", list(StatusCode))
def test_status_for_every_code(code: StatusCode) -> None:
    doc = _document()
    status = status_for(doc, VPCP, code, now=NOW)
    assert isinstance(status, StatusPackage)
    assert status.sender == "000.00.00.G22"
    assert status.recipients == ("000.00.00.H56",)
    assert status.header.response_for == ResponseFor(
        "000.00.00.H56", "125/UBND-VX", "2024/05/02", "000.00.00.H56,2024/05/02,125/UBND-VX"
    )
    assert status.header.timestamp == "2024/05/02 00:30:05"
    assert status.header.description == STATUS_DESCRIPTIONS.get(code)
    written = serialize_package(status)
    assert parse_package(written) == status
    assert validate_schema(load_xml(written)).issues == ()


def test_status_description_and_staff_can_be_given() -> None:
    status = status_for(
        _document(), VPCP, StatusCode.REJECTION, description="Sai thể thức", staff=STAFF, now=NOW
    )
    assert (status.header.description, status.header.staff_info) == ("Sai thể thức", STAFF)
    assert STATUS_DESCRIPTIONS[StatusCode.REJECTION].endswith(
        "Từ chối không tiếp nhận văn bản điện tử"
    )


def test_revoke_points_at_the_original() -> None:
    doc = _document()
    later = NOW + timedelta(days=1)
    revoke = revoke_of(doc, now=later)
    assert revoke.business_doc_type is BusinessDocType.REVOKE
    assert revoke.header.response_for == (reference_to(doc),)
    assert revoke.document_id == doc.document_id
    assert revoke.recipients == doc.recipients
    assert revoke.attachments == ()
    business = revoke.trace_header_list.business
    assert business is not None
    assert (business.document_id, business.business_doc_reason, business.staff_info) == (
        doc.document_id,
        BUSINESS_REASONS[BusinessDocType.REVOKE],
        STAFF,
    )
    assert revoke.trace_header_list.trace_headers[0].timestamp == "2024/05/03 00:30:05"
    _round_trip(revoke)


def test_update_changes_metadata_and_recipients() -> None:
    doc = new_document(
        THANH_HOA, [VPCP], code_number="9", code_notation="UBND-VX", subject="cũ", now=NOW
    )
    update = update_of(
        doc,
        subject="mới",
        attachments=[("b.pdf", b"%PDF", "application/pdf")],
        added_recipients=[NGHE_AN],
        removed_recipients=[VPCP],
        now=NOW,
    )
    assert update.business_doc_type is BusinessDocType.UPDATE
    assert update.document_id == doc.document_id
    assert update.header.subject == "mới"
    assert update.header.content == "cũ"
    assert update.recipients == ("000.00.00.G22", "000.00.00.H41")
    business = update.trace_header_list.business
    assert business is not None
    info = business.business_document_info
    assert info is not None
    assert (info.document_info, info.document_receiver) == ("1", "1")
    assert [(r.organ_id, r.receiver_type) for r in info.receivers or ()] == [
        ("000.00.00.G22", "0"),
        ("000.00.00.H41", "1"),
    ]
    assert [a.data() for a in update.attachments] == [b"%PDF"]
    _round_trip(update)


def test_update_of_metadata_only_keeps_files_and_has_no_receiver_list() -> None:
    doc = _document()
    update = update_of(doc, due_date=date(2024, 6, 1), now=NOW)
    assert update.header.due_date == "2024/06/01"
    assert (update.manifest, update.attachments) == (doc.manifest, doc.attachments)
    business = update.trace_header_list.business
    assert business is not None
    assert business.business_document_info is not None
    assert business.business_document_info.document_receiver == "0"
    assert business.business_document_info.receivers is None
    _round_trip(update)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({}, "edxml.empty_update"),
        ({"added_recipients": [VPCP]}, "edxml.bad_recipient_change"),
        ({"removed_recipients": [THANH_HOA]}, "edxml.bad_recipient_change"),
    ],
    ids=["nothing", "add-existing", "remove-stranger"],
)
def test_update_refuses_meaningless_changes(changes: dict[str, object], code: str) -> None:
    with pytest.raises(PackageError) as caught:
        update_of(_document(), **changes)  # type: ignore[arg-type]
    assert caught.value.code == code


def test_replacement_names_the_replaced_document() -> None:
    doc = _document()
    successor = new_document(
        THANH_HOA,
        [VPCP, NGHE_AN],
        code_number="126",
        code_notation="UBND-VX",
        subject="Thay thế CV 125",
        now=NOW,
    )
    replaced = replacement_of(doc, successor, now=NOW)
    assert replaced.business_doc_type is BusinessDocType.REPLACE
    assert replaced.document_id == "000.00.00.H56,2024/05/02,126/UBND-VX"
    assert replaced.header == successor.header
    business = replaced.trace_header_list.business
    assert business is not None
    assert business.document_id == replaced.document_id
    (info,) = business.replacement_info_list or ()
    assert (info.document_id, info.organ_ids) == (doc.document_id, doc.recipients)
    _round_trip(replaced)
    only_one = replacement_of(doc, successor, organ_ids=["000.00.00.H41"], now=NOW)
    assert only_one.trace_header_list.business is not None
    (info,) = only_one.trace_header_list.business.replacement_info_list or ()
    assert info.organ_ids == ("000.00.00.H41",)


def test_only_the_sender_may_replace() -> None:
    other = new_document(VPCP, [THANH_HOA], code_number="1", code_notation="VPCP", subject="s")
    with pytest.raises(PackageError) as caught:
        replacement_of(_document(), other)
    assert caught.value.code == "edxml.sender_mismatch"
