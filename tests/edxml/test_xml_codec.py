"""The XML codec against the real samples, the wire prefix layout, sloppy producers and errors."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from lxml import etree
from samples import CONFORMANCE_DIR, CONFORMANCE_FILES, MALFORMED_SAMPLES, WELL_FORMED_FILES
from strategies import package_strategy

from gateway.core.errors import PackageError
from gateway.edxml.hardened import load_xml
from gateway.edxml.model import (
    EDXML_NS,
    ZIP_MAGIC,
    BusinessDocType,
    DocumentPackage,
    Package,
    ResponseFor,
    StatusCode,
    StatusPackage,
)
from gateway.edxml.xml_codec import parse_package, read_package, serialize_package

# edoc.edxml is published malformed: <From><From>…</From> never closes the outer From, and the
# xlink: and (on AttachmentEncoded) edXML: prefixes are undeclared. No XML parser may accept it;
# the repaired copy below (the doubled start tag dropped) exercises its sloppiness. Repairing it by
# closing the outer From instead gives a From inside a From: refused, since readers differ on it.
MALFORMED = MALFORMED_SAMPLES
WELL_FORMED = WELL_FORMED_FILES
NS_DECL = f'xmlns:edXML="{EDXML_NS}"'
DSIG = '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignatureValue>AA==</SignatureValue></Signature>'


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def _sample(name: str) -> bytes:
    return (CONFORMANCE_DIR / name).read_bytes()


def _repaired_edoc() -> bytes:
    """edoc.edxml with its three well-formedness errors fixed and nothing else changed."""
    data = _sample("edoc.edxml")
    data = data.replace(b"<edXML:From>\r\n         <edXML:From>", b"<edXML:From>", 1)
    data = data.replace(
        b"<edXML:AttachmentEncoded>", f"<edXML:AttachmentEncoded {NS_DECL}>".encode()
    )
    return data.replace(
        b"<edXML:Reference xlink:href", b'<edXML:Reference xmlns:xlink="urn:xlink" xlink:href', 1
    )


def _status(inner: str = "", code: str = "01") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{EDXML_NS}"><edXML:edXMLEnvelope {NS_DECL}><edXML:edXMLHeader>
<edXML:MessageHeader>
  <edXML:From><edXML:OrganId>000.00.00.H41</edXML:OrganId></edXML:From>
  <edXML:ResponseFor><edXML:OrganId>000.00.00.G22</edXML:OrganId></edXML:ResponseFor>
  <edXML:StatusCode>{code}</edXML:StatusCode>{inner}
</edXML:MessageHeader></edXML:edXMLHeader></edXML:edXMLEnvelope></edXML>""".encode()


NEW = "<edXML:BussinessDocType>0</edXML:BussinessDocType>"


def _document(header: str = "", business: str = NEW, after_header: str = "") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{EDXML_NS}"><edXML:edXMLEnvelope {NS_DECL}><edXML:edXMLHeader>
<edXML:MessageHeader>
  <edXML:From><edXML:OrganId>000.00.00.G22</edXML:OrganId></edXML:From>
  <edXML:To><edXML:OrganId>000.00.00.H56</edXML:OrganId></edXML:To>{header}
</edXML:MessageHeader>
<edXML:TraceHeaderList><edXML:Bussiness>{business}</edXML:Bussiness></edXML:TraceHeaderList>
{after_header}</edXML:edXMLHeader></edXML:edXMLEnvelope></edXML>""".encode()


def _error(data: bytes) -> PackageError:
    with pytest.raises(PackageError) as caught:
        parse_package(data)
    return caught.value


def test_all_reference_samples_are_present() -> None:
    assert len(CONFORMANCE_FILES) == 16
    assert len(WELL_FORMED) == 15


@pytest.mark.parametrize("path", WELL_FORMED, ids=_ids(WELL_FORMED))
def test_sample_round_trips_to_an_equal_record(path: Path) -> None:
    first = parse_package(path.read_bytes())
    written = serialize_package(first)
    assert parse_package(written) == first
    assert serialize_package(parse_package(written)) == written


@pytest.mark.parametrize("path", WELL_FORMED, ids=_ids(WELL_FORMED))
def test_written_sample_has_the_wire_prefix_layout(path: Path) -> None:
    written = serialize_package(parse_package(path.read_bytes()))
    text = written.decode("utf-8")
    assert text.startswith(f'<?xml version="1.0" encoding="UTF-8"?>\n<edXML xmlns="{EDXML_NS}">\n')
    assert f"  <edXML:edXMLEnvelope {NS_DECL}>\n    <edXML:edXMLHeader>\n" in text
    envelope = text[text.index("<edXML:edXMLEnvelope") : text.index("</edXML:edXMLEnvelope>")]
    outside_signature = re.sub(r"<Signature.*</Signature>", "", envelope, flags=re.DOTALL)
    tags = re.findall(r"</?([\w:]+)", outside_signature)
    assert tags
    assert all(t.startswith("edXML:") for t in tags), sorted({t for t in tags if ":" not in t})
    load_xml(written)


def test_attachments_are_unprefixed_except_the_payload() -> None:
    text = serialize_package(parse_package(_sample("edoc_new.edxml"))).decode()
    block = text[text.index("<AttachmentEncoded>") :]
    assert block.startswith(
        "<AttachmentEncoded>\n    <Attachment>\n      <ContentId>cid:209</ContentId>"
    )
    assert f"<edXML:ContentTransferEncoded {NS_DECL}>UEsDBBQACAgIAEuSPE0" in block
    assert re.findall(r"<(\w+)>", block) == [
        "AttachmentEncoded", "Attachment", "ContentId", "AttachmentName", "Description",
        "ContentType",
    ]  # fmt: skip


def test_the_published_malformed_sample_is_refused() -> None:
    assert _error(_sample("edoc.edxml")).code == "edxml.malformed"


def test_document_sample_fields() -> None:
    pkg = parse_package(_sample("edoc_new.edxml"))
    assert isinstance(pkg, DocumentPackage)
    assert pkg.sender == "000.00.00.A80"
    assert pkg.recipients == ("28.22.H17",)
    assert str(pkg.header.code) == "74fass22/VPCP-TTĐT"
    assert pkg.business_doc_type is BusinessDocType.NEW
    assert pkg.header.to_places == ("Cac bo va co quan ngang bo", "Uy ban nhan dan cac tinh, TP")
    assert pkg.header.other_info is not None
    assert pkg.header.other_info.appendixes == (
        "Công văn về việc kết nối, liên thông phần mềm quản lý văn bản",
    )
    assert pkg.manifest is not None
    assert [r.content_id for r in pkg.manifest.references] == ["cid:209"]
    (attachment,) = pkg.attachments
    assert attachment.content_id == "cid:209"
    assert attachment.content_type == "application/zip"
    assert attachment.data().startswith(ZIP_MAGIC)
    assert pkg.signature_xml is not None
    assert pkg.signature_xml.startswith(f'<Signature xmlns="{EDXML_NS}">')
    assert "<DigestValue>FwgIqsSYJshUS2+wlOM61L+q7Aw=</DigestValue>" in pkg.signature_xml


def test_without_the_signature_copy_the_record_is_the_same_and_two_signatures_still_fail() -> None:
    """``keep_signature=False`` (the verifier's reading) drops only ``signature_xml``."""
    data = _sample("edoc_new.edxml")
    kept = read_package(load_xml(data), source=data)
    bare = read_package(load_xml(data), source=data, keep_signature=False)
    assert kept.signature_xml is not None
    assert bare.signature_xml is None
    assert bare == replace(kept, signature_xml=None)
    two = _document(
        after_header='<Signature/><Signature xmlns="http://www.w3.org/2000/09/xmldsig#"/>'
    )
    with pytest.raises(PackageError) as caught:
        read_package(load_xml(two), source=two, keep_signature=False)
    assert (caught.value.code, caught.value.path) == (
        "edxml.duplicate_element",
        "/edXML/edXMLEnvelope/edXMLHeader/Signature",
    )


def test_update_replacement_and_revocation_samples() -> None:
    update = parse_package(_sample("edoc_update.edxml"))
    assert isinstance(update, DocumentPackage)
    business = update.trace_header_list.business
    assert business is not None
    assert business.business_doc_type is BusinessDocType.UPDATE
    assert business.business_document_info is not None
    receivers = business.business_document_info.receivers or ()
    assert [(r.organ_id, r.receiver_type) for r in receivers] == [
        ("000.00.00.H41", "0"),
        ("000.00.00.H14", "1"),
    ]
    replacement = parse_package(_sample("edoc_replacement.edxml"))
    assert isinstance(replacement, DocumentPackage)
    assert replacement.trace_header_list.business is not None
    infos = replacement.trace_header_list.business.replacement_info_list
    assert infos is not None
    assert [i.organ_ids for i in infos] == [("000.00.00.H41", "000.00.00.H14")] * 2
    revocation = parse_package(_sample("edoc_revocation.edxml"))
    assert isinstance(revocation, DocumentPackage)
    assert revocation.business_doc_type is BusinessDocType.REVOKE
    assert revocation.header.response_for == (
        ResponseFor(
            "000.00.00.H14", "267/VPCP-TTĐT", "2018/09/28", "000.00.04.G14,2012/08/06,267/VPCP-TTĐT"
        ),
    )


def test_trace_header_after_business_is_read() -> None:
    pkg = parse_package(_sample("edoc_uuid_dc0bdef0.edxml"))
    assert isinstance(pkg, DocumentPackage)
    assert [h.organ_id for h in pkg.trace_header_list.trace_headers] == ["000.00.00.G22"]
    assert pkg.business_doc_type is BusinessDocType.NEW


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("status_inbox_01.edxml", StatusCode.INBOX),
        ("status_rejection_02.edxml", StatusCode.REJECTION),
        ("status_cancellation_13.edxml", StatusCode.CANCELLATION),
        ("status_change-rejection_16.edxml", StatusCode.CHANGE_REJECTION),
    ],
)
def test_status_samples(name: str, code: StatusCode) -> None:
    pkg = parse_package(_sample(name))
    assert isinstance(pkg, StatusPackage)
    assert pkg.header.status_code is code
    assert pkg.recipients == (pkg.header.response_for.organ_id,)
    assert pkg.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"


def test_status_children_in_any_order() -> None:
    inbox = parse_package(_sample("status_inbox_01.edxml"))  # StaffInfo: Mobile before Email
    assert isinstance(inbox, StatusPackage)
    assert inbox.header.staff_info is not None
    assert inbox.header.staff_info.email == "ngoctram@nghean.vn"
    assert inbox.header.staff_info.mobile == "84912000001"
    status = parse_package(_sample("status.edxml"))  # ResponseFor: DocumentId before the date
    assert isinstance(status, StatusPackage)
    assert status.header.response_for.promulgation_date == "2018/09/28"
    assert status.header.timestamp == "2018/09/28 17:25:11"


def test_repaired_old_layout_sample() -> None:
    pkg = parse_package(_repaired_edoc())
    assert isinstance(pkg, DocumentPackage)
    assert pkg.sender == "777.77.04.D77"
    assert pkg.header.from_.organ_name == "Văn phòng Chính phủ"
    assert pkg.recipients == ("777.77.03.D77",)
    assert pkg.document_id == "9fbfbad2-f1f8-4256-a2eb-50fb1061cddb"  # written last
    assert pkg.header.to_places == ("Các bộ",)  # written before OtherInfo
    assert pkg.header.response_for == (ResponseFor("", "", "", ""),)  # empty elements
    assert pkg.trace_header_list.business is None  # the old layout has no Bussiness
    assert pkg.signature_xml is not None
    assert pkg.signature_xml.startswith('<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">')
    assert pkg.manifest is not None
    (reference,) = pkg.manifest.references
    assert reference.attributes == (("{urn:xlink}href", ""),)
    assert reference.content_type is None  # commented out in the sample
    (attachment,) = pkg.attachments  # <edXML:AttachmentEncoded>, prefixed
    assert attachment.attachment_name == "GUIDE_INSTALL OPENVPN.SIGNED.PDF"
    assert attachment.content_b64 == "${__StringFromFile(test.txt,,,)}"
    again = parse_package(serialize_package(pkg))
    assert again == pkg


def test_the_sample_repaired_into_a_nested_from_is_refused() -> None:
    nested = _repaired_edoc().replace(b"</edXML:From>", b"</edXML:From></edXML:From>", 1)
    nested = nested.replace(b"<edXML:From>", b"<edXML:From>\r\n         <edXML:From>", 1)
    error = _error(nested)
    assert (error.code, error.path) == (
        "edxml.misplaced_element",
        "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/From/From",
    )


def test_read_leaves_the_tree_unchanged() -> None:
    root = load_xml(_sample("edoc_update.edxml"))
    before = etree.tostring(root)
    read_package(root)
    assert etree.tostring(root) == before


def test_message_header_is_written_in_the_standard_order() -> None:
    shuffled = _document(
        "<edXML:ToPlaces><edXML:Place>p</edXML:Place></edXML:ToPlaces>"
        "<edXML:SteeringType>1</edXML:SteeringType><edXML:DocumentId>d</edXML:DocumentId>"
        "<edXML:OtherInfo><edXML:Direction>false</edXML:Direction><edXML:Priority>1</edXML:Priority>"
        "</edXML:OtherInfo><edXML:Subject>s</edXML:Subject>"
        "<edXML:Code><edXML:CodeNotation>N</edXML:CodeNotation><edXML:CodeNumber>1</edXML:CodeNumber>"
        "</edXML:Code><edXML:ResponseFor><edXML:DocumentId>x</edXML:DocumentId>"
        "<edXML:OrganId>o</edXML:OrganId></edXML:ResponseFor>"
    )
    root = load_xml(serialize_package(parse_package(shuffled)))
    header = root.find(f".//{{{EDXML_NS}}}MessageHeader")
    assert header is not None
    assert [etree.QName(c).localname for c in header] == [
        "From", "To", "DocumentId", "Code", "Subject", "OtherInfo", "ResponseFor", "SteeringType",
        "ToPlaces",
    ]  # fmt: skip
    names = [etree.QName(c).localname for c in header.iter() if c is not header]
    assert names[names.index("Code") + 1 : names.index("Code") + 3] == [
        "CodeNumber",
        "CodeNotation",
    ]
    assert names[names.index("OtherInfo") + 1 : names.index("OtherInfo") + 3] == [
        "Priority", "Direction",
    ]  # fmt: skip
    rf = names.index("ResponseFor")
    assert names[rf + 1 : rf + 3] == ["OrganId", "DocumentId"]


def test_signature_goes_after_the_trace_header_list_or_the_status_header() -> None:
    for name in ("edoc_new.edxml", "status.edxml"):
        pkg = parse_package(_sample(name))
        signed = replace(pkg, signature_xml=DSIG)
        root = load_xml(serialize_package(signed))
        header = root[0][0]
        assert [etree.QName(c).localname for c in header][-1] == "Signature"
        assert parse_package(serialize_package(signed)) == signed


def test_comments_and_unprefixed_children_are_accepted() -> None:
    plain = parse_package(_document("<edXML:Subject>s</edXML:Subject>"))
    noisy = _document(
        f'<!-- c --><Subject xmlns="{EDXML_NS}">s</Subject><!-- c -->',
        "<!-- c --><edXML:BussinessDocType><!-- c -->0</edXML:BussinessDocType>",
    )
    assert parse_package(noisy) == plain


def test_a_no_namespace_look_alike_is_refused_not_read_as_edxml() -> None:
    error = _error(_document('<Subject xmlns="">s</Subject>'))
    assert (error.code, error.path) == (
        "edxml.foreign_lookalike",
        "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/Subject",
    )


def test_leaf_text_is_kept_exactly_and_container_whitespace_ignored() -> None:
    description = "<edXML:Description>  x \n</edXML:Description>"
    staff = "<edXML:StaffInfo>   <edXML:Staff> </edXML:Staff>  </edXML:StaffInfo>"
    pkg = parse_package(_status(description + staff))
    assert isinstance(pkg, StatusPackage)
    assert pkg.header.description == "  x \n"
    assert pkg.header.staff_info is not None
    assert pkg.header.staff_info.staff == " "
    assert pkg.header.staff_info.department is None


@pytest.mark.parametrize(("raw", "code"), [("1", "01"), (" 03 ", "03"), ("13", "13"), ("7", "07")])
def test_status_code_is_normalised(raw: str, code: str) -> None:
    pkg = parse_package(_status(code=raw))
    assert isinstance(pkg, StatusPackage)
    assert pkg.header.status_code == StatusCode(code)


def test_sloppy_code_as_text() -> None:
    pkg = parse_package(_document("<edXML:Code>7816/VPCP-TTĐT</edXML:Code>"))
    assert isinstance(pkg, DocumentPackage)
    assert pkg.header.code is not None
    assert (pkg.header.code.code_number, pkg.header.code.code_notation) == ("7816", "VPCP-TTĐT")


def test_unknown_elements_are_kept_verbatim() -> None:
    reply = (
        f"<edXML:ReplyFors {NS_DECL}><edXML:ReplyFor>a &amp; b</edXML:ReplyFor></edXML:ReplyFors>"
    )
    note = '<x:Note xmlns:x="urn:ext" x:k="v">n</x:Note>'
    data = _document(
        f"<edXML:OtherInfo>{reply}</edXML:OtherInfo>{note}",
        NEW + "<edXML:Extra>e</edXML:Extra>",
    )
    pkg = parse_package(data)
    assert isinstance(pkg, DocumentPackage)
    assert pkg.header.other_info is not None
    assert pkg.header.other_info.extras == (reply,)
    assert pkg.header.extras == (note,)
    assert pkg.trace_header_list.business is not None
    assert pkg.trace_header_list.business.extras == (f"<edXML:Extra {NS_DECL}>e</edXML:Extra>",)
    written = serialize_package(pkg)
    assert reply.encode() in written
    assert note.encode() in written
    assert parse_package(written) == pkg
    status = parse_package(_status(note))
    assert isinstance(status, StatusPackage)
    assert status.header.extras == (note,)


def test_unwritable_text_is_a_package_error() -> None:
    pkg = parse_package(_status())
    assert isinstance(pkg, StatusPackage)
    bad = replace(pkg, header=replace(pkg.header, description="nul \x00 here"))
    with pytest.raises(PackageError) as caught:
        serialize_package(bad)
    assert caught.value.code == "edxml.unserializable"


def test_attachment_base64_is_written_as_is() -> None:
    pkg = parse_package(_sample("edoc_new.edxml"))
    assert isinstance(pkg, DocumentPackage)
    folded = "\n".join(pkg.attachments[0].content_b64[i : i + 76] for i in range(0, 4000, 76))
    big = replace(pkg, attachments=(replace(pkg.attachments[0], content_b64=folded),))
    written = serialize_package(big)
    assert folded.encode() in written
    assert parse_package(written) == big


_FROM = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/From"


@pytest.mark.parametrize(
    ("data", "code", "path"),
    [
        (b'<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"/>', "edxml.wrong_root",
         "/Envelope"),
        (b"<edXML><edXMLEnvelope/></edXML>", "edxml.wrong_namespace", "/edXML"),
        (f'<edXML xmlns="{EDXML_NS}"><x:edXMLEnvelope xmlns:x="urn:other"/></edXML>'.encode(),
         "edxml.wrong_namespace", "/edXML/edXMLEnvelope"),
        (f'<edXML xmlns="{EDXML_NS}"/>'.encode(), "edxml.missing_field", "/edXML/edXMLEnvelope"),
        (_document().replace(b"<edXML:OrganId>000.00.00.G22</edXML:OrganId>", b""),
         "edxml.missing_field", f"{_FROM}/OrganId"),
        (_document().replace(b"<edXML:To><edXML:OrganId>000.00.00.H56</edXML:OrganId></edXML:To>",
                             b""), "edxml.missing_field", _FROM.replace("From", "To")),
        (_document(business="<edXML:Paper>0</edXML:Paper>"), "edxml.missing_field",
         "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness/BussinessDocType"),
        (_document(business="<edXML:BussinessDocType>7</edXML:BussinessDocType>"),
         "edxml.bad_business_doc_type",
         "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness/BussinessDocType"),
        (_status(code="99"), "edxml.bad_status_code",
         "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/StatusCode"),
        (_status(code="abc"), "edxml.bad_status_code",
         "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/StatusCode"),
        (_status().replace(b"<edXML:ResponseFor><edXML:OrganId>000.00.00.G22</edXML:OrganId>"
                           b"</edXML:ResponseFor>", b""),
         "edxml.missing_field", "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/ResponseFor"),
        (_document().replace(b"<edXML:TraceHeaderList>", b'<x:Other xmlns:x="urn:x">')
         .replace(b"</edXML:TraceHeaderList>", b"</x:Other>").replace(b"edXML:Bussiness", b"x:B"),
         "edxml.unknown_kind", "/edXML/edXMLEnvelope/edXMLHeader"),
        (_document("<edXML:Subject>a</edXML:Subject><edXML:Subject>b</edXML:Subject>"),
         "edxml.duplicate_element", "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/Subject"),
        (_document("<edXML:From><edXML:OrganId>000.00.00.H41</edXML:OrganId></edXML:From>"),
         "edxml.duplicate_element", _FROM),
        (_document(after_header='<Signature/><Signature xmlns="http://www.w3.org/2000/09/xmldsig#"/>'),
         "edxml.duplicate_element", "/edXML/edXMLEnvelope/edXMLHeader/Signature"),
    ],
    ids=["wrong-root", "no-namespace", "envelope-namespace", "no-envelope", "no-from-organ-id",
         "no-to", "no-business-doc-type", "bad-business-doc-type", "bad-status-code",
         "non-numeric-status-code", "status-without-response-for", "unknown-kind",
         "duplicate-subject", "duplicate-from", "two-signatures"],
)  # fmt: skip
def test_errors_have_stable_codes_and_paths(data: bytes, code: str, path: str) -> None:
    error = _error(data)
    assert (error.code, error.path) == (code, path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(package_strategy())
def test_serialize_then_parse_is_lossless(pkg: Package) -> None:
    written = serialize_package(pkg)
    assert parse_package(written) == pkg
    assert serialize_package(parse_package(written)) == written
