"""validate_package (semantic rules, errors vs warnings) and validate_schema (edxml.xsd)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from samples import CONFORMANCE_DIR, CONFORMANCE_FILES
from strategies import package_strategy

from gateway.core.errors import PackageError
from gateway.edxml import validate
from gateway.edxml.hardened import load_xml
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
    Package,
    PromulgationInfo,
    Receiver,
    ReplacementInfo,
    ResponseFor,
    SignerInfo,
    StatusCode,
    StatusHeader,
    StatusPackage,
    TraceHeader,
    TraceHeaderList,
)
from gateway.edxml.validate import (
    Issue,
    Severity,
    ValidationReport,
    validate_package,
    validate_schema,
)
from gateway.edxml.xml_codec import parse_package, serialize_package

CONFORMANCE = CONFORMANCE_FILES
NOT_WELL_FORMED = {"edoc.edxml"}  # mismatched <From> tag, undeclared xlink prefix
WELL_FORMED = [p for p in CONFORMANCE if p.name not in NOT_WELL_FORMED]

H = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"
T = "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList"
TODAY = date(2024, 5, 20)


def org(organ_id: str, name: str = "UBND Tỉnh Nghệ An") -> Organization:
    return Organization(
        organ_id=organ_id,
        organization_in_charge=name,
        organ_name=name,
        organ_add="Số 03, đường Trường Thi, Thành phố Vinh",
        email="nghean@gov.vn",
        telephone="0383 840418",
        fax="0383 843049",
        website="www.nghean.vn",
    )


CLEAN = DocumentPackage(
    header=MessageHeader(
        from_=org("000.00.00.G22", "Văn phòng Chính phủ"),
        to=(org("000.00.00.H41"), org("000.00.00.H14")),
        document_id="000.00.00.G22,2024/05/17,7816/VPCP-TTĐT",
        code=Code("7816", "VPCP-TTĐT"),
        promulgation_info=PromulgationInfo("Hà Nội", "2024/05/17"),
        document_type=DocumentType("2", "1", "Công văn"),
        subject="V/v kết nối, liên thông phần mềm quản lý văn bản",
        content="Nội dung",
        signer_info=SignerInfo("TL. BỘ TRƯỞNG", "Cục trưởng", "Nguyễn Văn A"),
        due_date="2024/06/30",
        other_info=OtherInfo(
            priority="0", sphere_of_promulgation="Liên thông", typer_notation="TVC"
        ),
        steering_type="1",
        to_places=("Các bộ, cơ quan ngang bộ",),
    ),
    trace_header_list=TraceHeaderList(
        trace_headers=(TraceHeader("000.00.00.G22", "2024/05/17 08:30:00"),),
        business=Business(BusinessDocType.NEW, business_doc_reason="Văn bản điện tử mới"),
    ),
    manifest=Manifest(references=(ManifestReference("cid:1", "application/pdf"),)),
    attachments=(
        Attachment(
            "cid:1",
            attachment_name="a.pdf",
            content_type="application/pdf",
            content_b64=Attachment.encode(b"%PDF-1.7\n"),
        ),
    ),
)

STATUS = StatusPackage(
    StatusHeader(
        from_=org("000.00.00.H41"),
        response_for=ResponseFor(
            "000.00.00.G22",
            "7816/VPCP-TTĐT",
            "2024/05/17",
            "000.00.00.G22,2024/05/17,7816/VPCP-TTĐT",
        ),
        status_code=StatusCode.ACCEPTANCE,
        description="Tiếp nhận",
        timestamp="2024/05/18 09:00:00",
    )
)


def header(**changes: Any) -> DocumentPackage:
    return dataclasses.replace(CLEAN, header=dataclasses.replace(CLEAN.header, **changes))


def business(doc_type: BusinessDocType, **changes: Any) -> DocumentPackage:
    trace = dataclasses.replace(CLEAN.trace_header_list, business=Business(doc_type, **changes))
    return dataclasses.replace(CLEAN, trace_header_list=trace)


def status(**changes: Any) -> StatusPackage:
    return StatusPackage(dataclasses.replace(STATUS.header, **changes))


def found(report: ValidationReport) -> set[tuple[str, str, str]]:
    return {(i.code, i.severity.value, i.path) for i in report.issues}


# -- the report ---------------------------------------------------------------------------------


def test_a_clean_document_and_status_have_no_issue_at_all() -> None:
    assert validate_package(CLEAN, today=TODAY).issues == ()
    assert validate_package(STATUS, today=TODAY).issues == ()


def test_report_separates_errors_from_warnings_and_raises_the_first_error() -> None:
    report = ValidationReport(
        (
            Issue("edxml.too_long", "/a", "long", Severity.WARNING),
            Issue("edxml.no_recipient", "/b", "nobody", Severity.ERROR),
            Issue("edxml.bad_organ_id", "/c", "bad", Severity.ERROR),
        )
    )
    assert [i.path for i in report.errors] == ["/b", "/c"]
    assert [i.path for i in report.warnings] == ["/a"]
    assert not report.ok
    with pytest.raises(PackageError) as caught:
        report.raise_for_errors()
    assert (caught.value.code, caught.value.path) == ("edxml.no_recipient", "/b")
    assert caught.value.message.startswith("nobody")

    only_warnings = ValidationReport(report.warnings)
    assert only_warnings.ok
    only_warnings.raise_for_errors()  # returns quietly


# -- OrganIds and recipients ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("organ_id", "expected"),
    [
        ("000.00.00.G22", None),
        ("0106001236", None),  # a business: 10-digit tax code
        ("0106001236-001", None),  # a branch
        ("0106001236001", None),  # 13 digits
        ("28.22.H17", ("edxml.non_strict_organ_id", "warning")),  # 3-group legacy form
        ("001.00.20.JB2", ("edxml.non_strict_organ_id", "warning")),  # test codes
        ("", ("edxml.bad_organ_id", "error")),
        ("000.00.00.g22", ("edxml.bad_organ_id", "error")),
        (" 000.00.00.G22", ("edxml.bad_organ_id", "error")),
        ("000.00.00.G22/../x", ("edxml.bad_organ_id", "error")),
        ("00.00", ("edxml.bad_organ_id", "error")),
        ("010600123", ("edxml.bad_organ_id", "error")),  # 9 digits
    ],
)
def test_sender_and_recipient_organ_ids(organ_id: str, expected: tuple[str, str] | None) -> None:
    as_sender = found(validate_package(header(from_=org(organ_id)), today=TODAY))
    second = (CLEAN.header.to[0], org(organ_id))
    as_recipient = found(validate_package(header(to=second), today=TODAY))
    if expected is None:
        assert as_sender == as_recipient == set()
    else:
        assert as_sender == {(*expected, f"{H}/From/OrganId")}
        assert as_recipient == {(*expected, f"{H}/To[2]/OrganId")}


def test_no_recipient_and_duplicate_recipients_are_errors() -> None:
    assert found(validate_package(header(to=()), today=TODAY)) == {
        ("edxml.no_recipient", "error", f"{H}/To"),
    }
    twice = (org("000.00.00.H41"), org("000.00.00.H14"), org("000.00.00.H41"))
    assert found(validate_package(header(to=twice), today=TODAY)) == {
        ("edxml.duplicate_recipient", "error", f"{H}/To[3]/OrganId"),
    }


# -- revoke / update / replace --------------------------------------------------------------------


def test_revocation_needs_a_response_for_with_document_id() -> None:
    revoke = business(BusinessDocType.REVOKE)
    assert found(validate_package(revoke, today=TODAY)) == {
        ("edxml.missing_reference", "error", f"{H}/ResponseFor"),
    }
    blank = (ResponseFor("", "", "", ""),)
    empty = dataclasses.replace(
        revoke, header=dataclasses.replace(revoke.header, response_for=blank)
    )
    assert ("edxml.missing_reference", "error", f"{H}/ResponseFor") in found(
        validate_package(empty, today=TODAY)
    )
    target = ResponseFor(
        "000.00.00.H14", "267/VPCP", "2024/05/01", "000.00.00.G22,2024/05/01,267/VPCP"
    )
    named = dataclasses.replace(
        revoke, header=dataclasses.replace(revoke.header, response_for=(target,))
    )
    assert validate_package(named, today=TODAY).issues == ()


def test_update_needs_business_document_info_and_valid_receivers() -> None:
    assert found(validate_package(business(BusinessDocType.UPDATE), today=TODAY)) == {
        ("edxml.missing_reference", "error", f"{T}/Bussiness/BussinessDocumentInfo"),
    }
    receivers = (
        Receiver("000.00.00.H41", "0"),
        Receiver("bad id", "1"),
        Receiver("000.00.00.H14", "7"),
    )
    info = BusinessDocumentInfo("1", "1", receivers)
    at = f"{T}/Bussiness/BussinessDocumentInfo/ReceiverList/Receiver"
    assert found(
        validate_package(business(BusinessDocType.UPDATE, business_document_info=info), today=TODAY)
    ) == {
        ("edxml.bad_organ_id", "error", f"{at}[2]/OrganId"),
        ("edxml.bad_value", "warning", f"{at}[3]/ReceiverType"),
    }


def test_replacement_needs_replacement_info_with_document_ids() -> None:
    path = f"{T}/Bussiness/ReplacementInfoList"
    for nothing in (None, ()):
        assert found(
            validate_package(
                business(BusinessDocType.REPLACE, replacement_info_list=nothing), today=TODAY
            )
        ) == {("edxml.missing_reference", "error", path)}
    infos = (
        ReplacementInfo("000.00.00.G22,2024/01/30,7806/VPCP", ("000.00.00.H41",)),
        ReplacementInfo(None, ("000.00.00.H14", "nope")),
    )
    assert found(
        validate_package(
            business(BusinessDocType.REPLACE, replacement_info_list=infos), today=TODAY
        )
    ) == {
        ("edxml.missing_reference", "error", f"{path}/ReplacementInfo[2]/DocumentId"),
        ("edxml.bad_organ_id", "error", f"{path}/ReplacementInfo[2]/OrganIdList/OrganId[2]"),
    }


# -- warnings ------------------------------------------------------------------------------------


def test_bkav_null_checks_are_warnings() -> None:
    sparse = header(
        from_=Organization("000.00.00.G22"),
        code=Code("7816", ""),
        subject=None,
        signer_info=None,
        to_places=(),
    )
    report = validate_package(sparse, today=TODAY)
    assert report.ok
    paths = {i.path for i in report.warnings if i.code == "edxml.missing_field"}
    assert paths == {
        *(
            f"{H}/From/{name}"
            for name in (
                "OrganizationInCharge",
                "OrganName",
                "OrganAdd",
                "Email",
                "Telephone",
                "Fax",
                "Website",
            )
        ),
        f"{H}/Code/CodeNotation",
        f"{H}/Subject",
        f"{H}/SignerInfo",
        f"{H}/ToPlaces",
    }
    untraced = dataclasses.replace(CLEAN, trace_header_list=TraceHeaderList())
    assert found(validate_package(untraced, today=TODAY)) == {
        ("edxml.missing_field", "warning", f"{T}/TraceHeader"),
        ("edxml.missing_field", "warning", f"{T}/Bussiness"),
    }


def test_dates_are_warnings_bad_format_and_future() -> None:
    pkg = header(
        promulgation_info=PromulgationInfo("Hà Nội", "2024/05/21"),
        due_date="30/06/2024",
        response_for=(ResponseFor("000.00.00.H14", "1/X", "2014/02/30", "x"),),
    )
    assert found(validate_package(pkg, today=TODAY)) == {
        ("edxml.future_date", "warning", f"{H}/PromulgationInfo/PromulgationDate"),
        ("edxml.bad_date", "warning", f"{H}/DueDate"),
        ("edxml.bad_date", "warning", f"{H}/ResponseFor[1]/PromulgationDate"),
        ("edxml.document_id_format", "warning", f"{H}/ResponseFor[1]/DocumentId"),
    }
    assert validate_package(pkg, today=date(2024, 5, 21)).warnings != ()
    hops = (TraceHeader("000.00.00.G22", "2024-05-17T08:30:00"), TraceHeader("28.22.H17", None))
    trace = dataclasses.replace(CLEAN.trace_header_list, trace_headers=hops)
    assert found(
        validate_package(dataclasses.replace(CLEAN, trace_header_list=trace), today=TODAY)
    ) == {
        ("edxml.bad_date", "warning", f"{T}/TraceHeader[1]/Timestamp"),
        ("edxml.non_strict_organ_id", "warning", f"{T}/TraceHeader[2]/OrganId"),
        ("edxml.missing_field", "warning", f"{T}/TraceHeader[2]/Timestamp"),
    }


def test_values_out_of_domain_are_warnings() -> None:
    pkg = header(
        document_type=DocumentType("18", None, "Công văn"),
        other_info=OtherInfo(priority="5"),
        steering_type="4",
    )
    assert found(validate_package(pkg, today=TODAY)) == {
        ("edxml.bad_value", "warning", f"{H}/DocumentType/Type"),
        ("edxml.bad_value", "warning", f"{H}/OtherInfo/Priority"),
        ("edxml.bad_value", "warning", f"{H}/SteeringType"),
    }
    lenient = header(steering_type="0", other_info=OtherInfo(priority=" 4 "))
    assert validate_package(lenient, today=TODAY).issues == ()


def test_length_caps_are_warnings() -> None:
    pkg = header(
        subject="S" * 501,
        code=Code("123456789012", "N" * 30),
        to_places=("ok", "P" * 151),
        from_=dataclasses.replace(CLEAN.header.from_, telephone="0" * 21),
    )
    assert found(validate_package(pkg, today=TODAY)) == {
        ("edxml.too_long", "warning", f"{H}/Subject"),
        ("edxml.too_long", "warning", f"{H}/Code/CodeNumber"),
        ("edxml.too_long", "warning", f"{H}/ToPlaces/Place[2]"),
        ("edxml.too_long", "warning", f"{H}/From/Telephone"),
    }


@pytest.mark.parametrize(
    ("document_id", "ok"),
    [
        ("000.00.00.G22,2015/09/30,7816/VPCP-TTĐT", True),
        ("9fbfbad2-f1f8-4256-a2eb-50fb1061cddb", True),
        ("000.00.00.G22,2015/9/30,7816/VPCP", False),
        ("000.00.00.G22,2015/09/30,7816", False),
        ("7816/VPCP-TTĐT", False),
        ("9fbfbad2f1f84256a2eb50fb1061cddb", False),
    ],
)
def test_document_id_format_is_a_warning(document_id: str, ok: bool) -> None:
    issues = found(validate_package(header(document_id=document_id), today=TODAY))
    assert issues == (
        set()
        if ok
        else {
            ("edxml.document_id_format", "warning", f"{H}/DocumentId"),
        }
    )


def test_attachment_rules_are_part_of_validate_package() -> None:
    pkg = dataclasses.replace(CLEAN, manifest=Manifest(references=()))
    assert found(validate_package(pkg, today=TODAY)) == {
        ("edxml.attachment_mismatch", "error", "/edXML/AttachmentEncoded/Attachment[1]/ContentId"),
    }


# -- status packages -------------------------------------------------------------------------------


def test_status_response_for_needs_document_id_and_organ_id() -> None:
    base = f"{H}/ResponseFor"
    assert found(validate_package(status(response_for=ResponseFor()), today=TODAY)) == {
        ("edxml.missing_field", "error", f"{base}/DocumentId"),
        ("edxml.missing_field", "error", f"{base}/OrganId"),
    }
    bad_target = ResponseFor("G22", document_id="000.00.00.G22,2024/05/17,7816/VPCP")
    assert found(validate_package(status(response_for=bad_target), today=TODAY)) == {
        ("edxml.bad_organ_id", "error", f"{base}/OrganId"),
    }


def test_status_warnings_reserved_code_and_timestamp() -> None:
    pkg = status(status_code=StatusCode.RESERVED_09, timestamp="2024/05/18")
    assert found(validate_package(pkg, today=TODAY)) == {
        ("edxml.reserved_status_code", "warning", f"{H}/StatusCode"),
        ("edxml.bad_date", "warning", f"{H}/Timestamp"),
    }
    assert found(validate_package(status(from_=Organization("x")), today=TODAY)) == {
        ("edxml.bad_organ_id", "error", f"{H}/From/OrganId"),
    }


# -- the conformance packages -------------------------------------------------------------------

EXPECTED_WARNINGS = {  # everything else: no issue at all
    "edoc_new.edxml": {
        ("edxml.non_strict_organ_id", f"{H}/To[1]/OrganId"),  # 28.22.H17
        ("edxml.zip_name_mismatch", "/edXML/AttachmentEncoded/Attachment[1]/AttachmentName"),
    },
    **{
        name: {("edxml.zip_name_mismatch", "/edXML/AttachmentEncoded/Attachment[1]/AttachmentName")}
        for name in (
            "edoc_replacement.edxml",
            "edoc_revocation.edxml",
            "edoc_update.edxml",
            "edoc_uuid_dc0bdef0.edxml",
        )
    },
}


@pytest.mark.parametrize("path", WELL_FORMED, ids=lambda p: p.name)
def test_conformance_packages_have_warnings_only(path: Path) -> None:
    report = validate_package(parse_package(path.read_bytes()))
    assert report.errors == ()
    assert {(i.code, i.path) for i in report.warnings} == EXPECTED_WARNINGS.get(path.name, set())


def test_a_broken_conformance_package_is_reported_at_its_element() -> None:
    data = (CONFORMANCE_DIR / "edoc_replacement.edxml").read_bytes()
    broken = data.replace(
        b"<edXML:OrganId>000.00.00.H14</edXML:OrganId>", b"<edXML:OrganId>H14</edXML:OrganId>", 1
    )
    broken = broken.replace(
        b"<edXML:ContentId>cid:209</edXML:ContentId>",
        b"<edXML:ContentId>cid:210</edXML:ContentId>",
        1,
    )
    report = validate_package(parse_package(broken))
    assert {(i.code, i.path) for i in report.errors} == {
        ("edxml.bad_organ_id", f"{H}/To[2]/OrganId"),
        (
            "edxml.attachment_mismatch",
            "/edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference[1]/ContentId",
        ),
        ("edxml.attachment_mismatch", "/edXML/AttachmentEncoded/Attachment[1]/ContentId"),
    }
    with pytest.raises(PackageError) as caught:
        report.raise_for_errors()
    assert caught.value.code == "edxml.bad_organ_id"


# -- XSD -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", WELL_FORMED, ids=lambda p: p.name)
def test_every_well_formed_conformance_package_matches_the_schema(path: Path) -> None:
    report = validate_schema(load_xml(path.read_bytes()))
    assert report.issues == ()


@pytest.mark.parametrize("path", WELL_FORMED, ids=lambda p: p.name)
def test_what_the_xml_codec_writes_matches_the_schema(path: Path) -> None:
    data = serialize_package(parse_package(path.read_bytes()))
    assert validate_schema(load_xml(data)).issues == ()


@settings(max_examples=40, deadline=None)
@given(package_strategy())
def test_the_schema_accepts_every_package_the_codec_writes(pkg: Package) -> None:
    assert validate_schema(load_xml(serialize_package(pkg))).issues == ()
    validate_package(pkg)  # and the semantic rules cope with any record the model allows


def test_the_not_well_formed_sample_never_reaches_the_schema() -> None:
    assert len(CONFORMANCE) == 16
    assert len(WELL_FORMED) == 15
    with pytest.raises(PackageError) as caught:
        load_xml((CONFORMANCE_DIR / "edoc.edxml").read_bytes())
    assert caught.value.code == "edxml.malformed"


NS = 'xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"'
FROM = "<From><OrganId>000.00.00.G22</OrganId></From>"


def wrap(message_header: str, *, header_extra: str = "", root: str = "edXML") -> bytes:
    return (
        f"<{root} {NS}><edXMLEnvelope><edXMLHeader>{message_header}{header_extra}"
        f"</edXMLHeader></edXMLEnvelope></{root}>"
    ).encode()


def test_open_containers_accept_unknown_elements_of_any_namespace() -> None:
    unknown = '<ReplyFors>a<Code>1/X</Code></ReplyFors><x:Note xmlns:x="urn:example"/>'
    trace = f"<TraceHeaderList><Bussiness>{unknown}<Paper>0</Paper></Bussiness></TraceHeaderList>"
    data = wrap(
        f"<MessageHeader>{FROM}{unknown}<OtherInfo>{unknown}</OtherInfo></MessageHeader>",
        header_extra=trace,
    )
    assert validate_schema(load_xml(data)).issues == ()


def test_a_minimal_status_like_package_and_foreign_extras_are_valid() -> None:
    signature = (
        '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo><Reference URI="">'
        "<DigestValue>x</DigestValue></Reference></SignedInfo></Signature>"
    )
    extra = '<x:Note xmlns:x="urn:example">anything <x:b/></x:Note>'
    data = wrap(
        f"<MessageHeader {NS} foo='1'>{FROM}{extra}<StatusCode>01</StatusCode></MessageHeader>",
        header_extra=signature,
    )
    assert validate_schema(load_xml(data)).issues == ()


@pytest.mark.parametrize(
    ("data", "path", "needle"),
    [
        (
            wrap(f"<MessageHeader>{FROM}</MessageHeader>", root="Envelope"),
            "/Envelope",
            "the root element is {http://www.mic.gov.vn/TBT/QCVN_102_2016}Envelope, not",
        ),
        (f"<Subject {NS}>x</Subject>".encode(), "/Subject", "the root element is"),
        (
            wrap("", header_extra="<TraceHeaderList/>"),
            "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList",
            "MessageHeader",
        ),
        (
            wrap("<MessageHeader><From>000.00.00.G22</From></MessageHeader>"),
            f"{H}/From",
            "element-only",
        ),
        (
            wrap(f"<MessageHeader>{FROM}<To>x<OrganId>a</OrganId></To><To/></MessageHeader>"),
            f"{H}/To[1]",
            "element-only",
        ),
        (
            wrap("<MessageHeader><From><OrganId>x</OrganId><Unknown/></From></MessageHeader>"),
            f"{H}/From/Unknown",
            "not expected",
        ),
        (
            wrap(
                f"<MessageHeader>{FROM}<OtherInfo><Appendixes>x</Appendixes></OtherInfo>"
                "</MessageHeader>"
            ),
            f"{H}/OtherInfo/Appendixes",
            "element-only",
        ),
        (
            wrap(f"<MessageHeader><To>{FROM[6:-7]}</To></MessageHeader>"),
            f"{H}/To",
            "Expected is ( {http://www.mic.gov.vn/TBT/QCVN_102_2016}From )",
        ),
    ],
    ids=[
        "wrong root",
        "a global element as root",
        "missing MessageHeader",
        "text in From",
        "text in To",
        "unknown element",
        "text in an open container's known child",
        "From missing",
    ],
)
def test_the_schema_rejects_structural_errors(data: bytes, path: str, needle: str) -> None:
    report = validate_schema(load_xml(data))
    assert not report.ok
    first = report.errors[0]
    assert (first.code, first.severity, first.path) == ("edxml.schema", Severity.ERROR, path)
    assert needle in first.message
    assert first.message.startswith("line 1: ")


def test_dates_are_read_exactly_as_strptime_reads_them() -> None:
    dates = ["2024/02/29", "2023/02/29", "2024/13/01", "2024/00/10", "2024/1/5", "0000/01/01"]
    dates += ["0001/01/01", "9999/12/31", "2024/01/32", "２０２４/01/01", "2024/01/01 ", "24/01/01"]
    times = [f"2024/05/20 {t}" for t in ("23:59:59", "24:00:00", "23:60:00", "23:59:60", "1:2:3")]
    times += ["2024/05/20  10:00:00", "2024/02/30 10:00:00", "2024/05/20T10:00:00", "2024/05/20"]
    for fmt, texts in ((validate.DATE_FORMAT, dates), (validate.TIMESTAMP_FORMAT, times)):
        for text in texts:
            try:
                expected: datetime | None = datetime.strptime(text, fmt)
            except ValueError:
                expected = None
            try:
                got: datetime | None = validate._parse_date(text, fmt)
            except ValueError:
                got = None
            assert got == expected, (text, fmt)
