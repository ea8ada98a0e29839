"""Hypothesis strategies for valid edXML records, shared by the XML and JSON codec tests.

Import from tests in this directory as ``from strategies import package_strategy`` (pytest's
default import mode puts the test file's directory on ``sys.path``).

Text rule the codecs follow (see ``gateway.edxml.xml_codec``): a leaf keeps its text exactly, so
generated leaf values may carry any XML character, leading/trailing/only whitespace included.
XML 1.0 cannot carry control characters (other than tab, LF, CR), lone surrogates or U+FFFE/U+FFFF,
so the alphabets leave them out. Verbatim fragments (``extras``, ``signature_xml``) are generated in
the self-contained form the XML reader produces.
"""

from __future__ import annotations

import base64
from datetime import date, datetime

from hypothesis import strategies as st
from lxml import etree

from gateway.edxml.model import (
    EDXML_NS,
    XMLDSIG_NS,
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
    StaffInfo,
    StatusCode,
    StatusHeader,
    StatusPackage,
    TraceHeader,
    TraceHeaderList,
)

XLINK_NS = "http://www.w3.org/1999/xlink"

VIETNAMESE_WORDS = (
    "Văn phòng", "Chính phủ", "Ủy ban", "nhân dân", "tỉnh", "Thanh Hóa", "Nghệ An", "Hà Nội",
    "công văn", "quyết định", "thông tư", "về việc", "kết nối", "liên thông", "phần mềm",
    "quản lý", "văn bản", "điện tử", "Sở Thông tin và Truyền thông", "Nguyễn Thị Ngọc Trâm",
    "Trương Minh Tuấn", "Đà Nẵng", "Hòa Vang", "hỏa tốc", "thượng khẩn", "TL. BỘ TRƯỞNG",
    "VPCP-TTĐT", "Số 1 Hoàng Hoa Thám", "ưu tiên", "ĐẶNG", "Ưng Hoàng Phúc",
)  # fmt: skip
XML_SPECIALS = ("&", "<", ">", '"', "'", "&amp;", "]]>", "<!-- x -->", "<![CDATA[", "&#x41;")

xml_chars = st.characters(
    codec="utf-8",
    exclude_categories=("Cs", "Cc"),
    include_characters="\t\n\r",
    exclude_characters="\ufffe\uffff",
)
vietnamese_text = st.lists(
    st.sampled_from(VIETNAMESE_WORDS + XML_SPECIALS), min_size=1, max_size=6
).map(" ".join)
text = st.one_of(vietnamese_text, st.text(xml_chars, max_size=40))
optional_text = st.none() | text

organ_ids = st.one_of(
    st.from_regex(r"\A[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}\Z"),
    st.sampled_from(["000.00.00.G22", "000.00.00.H41", "000.00.00.H56", "28.22.H17"]),
)
dates = st.dates(date(1990, 1, 1), date(2099, 12, 31)).map(lambda d: d.strftime("%Y/%m/%d"))
timestamps = st.datetimes(datetime(1990, 1, 1), datetime(2099, 12, 31)).map(
    lambda t: t.strftime("%Y/%m/%d %H:%M:%S")
)
digits = st.sampled_from(["0", "1", "2", "3", "4"])


def _fragment(tag: str, nsmap: dict[str, str], value: str) -> str:
    element = etree.Element(tag, nsmap=nsmap)
    element.text = value
    return _as_read(etree.tostring(element, encoding="unicode"))


def _as_read(xml: str) -> str:
    """The form the reader stores: what lxml writes after parsing (``<a></a>`` -> ``<a/>``)."""
    return etree.tostring(etree.fromstring(xml), encoding="unicode")


def extras_strategy() -> st.SearchStrategy[tuple[str, ...]]:
    """Unknown elements (names the model does not know), in the reader's verbatim form."""
    one = st.one_of(
        text.map(lambda v: _fragment(f"{{{EDXML_NS}}}ReplyFors", {"edXML": EDXML_NS}, v)),
        text.map(lambda v: _fragment(f"{{{EDXML_NS}}}ReferenceCodes", {"edXML": EDXML_NS}, v)),
        text.map(lambda v: _fragment("{urn:example:ext}Note", {"x": "urn:example:ext"}, v)),
    )
    return st.lists(one, max_size=2).map(tuple)


def signature_strategy() -> st.SearchStrategy[str | None]:
    """None, or a Signature in the xmldsig namespace or (VPCP quirk) in the edXML namespace."""

    def build(ns: str, value: bytes) -> str:
        sig = etree.Element(f"{{{ns}}}Signature", nsmap={None: ns})  # type: ignore[dict-item]
        etree.SubElement(sig, f"{{{ns}}}SignatureValue").text = base64.b64encode(value).decode()
        return _as_read(etree.tostring(sig, encoding="unicode"))

    return st.none() | st.builds(
        build, st.sampled_from([XMLDSIG_NS, EDXML_NS]), st.binary(min_size=1, max_size=64)
    )


def organization_strategy() -> st.SearchStrategy[Organization]:
    o = optional_text
    return st.builds(Organization, organ_ids, o, o, o, o, o, o, o)


def staff_strategy() -> st.SearchStrategy[StaffInfo]:
    o = optional_text
    return st.builds(StaffInfo, o, o, o, o, o, o)


def response_for_strategy() -> st.SearchStrategy[ResponseFor]:
    return st.builds(
        ResponseFor, st.none() | organ_ids, optional_text, st.none() | dates, optional_text
    )


def _optional_tuple(elements: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[str, ...] | None]:
    return st.none() | st.lists(elements, max_size=3).map(tuple)


def message_header_strategy() -> st.SearchStrategy[MessageHeader]:
    o = optional_text
    return st.builds(
        MessageHeader,
        from_=organization_strategy(),
        to=st.lists(organization_strategy(), min_size=1, max_size=3).map(tuple),
        document_id=o,
        code=st.none() | st.builds(Code, o, o),
        promulgation_info=st.none() | st.builds(PromulgationInfo, o, st.none() | dates),
        document_type=st.none() | st.builds(DocumentType, st.none() | digits, o, o),
        subject=o,
        content=o,
        signer_info=st.none() | st.builds(SignerInfo, o, o, o),
        due_date=st.none() | dates,
        other_info=st.none()
        | st.builds(
            OtherInfo, st.none() | digits, o, o, o, o, o, _optional_tuple(text), extras_strategy()
        ),
        response_for=st.lists(response_for_strategy(), max_size=2).map(tuple),
        steering_type=st.none() | digits,
        response_for_task=_optional_tuple(text),
        application_type=o,
        to_places=_optional_tuple(text),
        extras=extras_strategy(),
    )


def business_strategy() -> st.SearchStrategy[Business]:
    receivers = st.lists(
        st.builds(Receiver, organ_ids, st.none() | st.sampled_from("01")), max_size=3
    )
    info = st.builds(
        BusinessDocumentInfo, st.none() | st.sampled_from("01"), st.none() | st.sampled_from("01"),
        st.none() | receivers.map(tuple),
    )  # fmt: skip
    replacement = st.builds(
        ReplacementInfo, optional_text, st.lists(organ_ids, max_size=3).map(tuple)
    )
    return st.builds(
        Business,
        business_doc_type=st.sampled_from(BusinessDocType),
        document_id=optional_text,
        business_doc_reason=optional_text,
        paper=st.none() | st.sampled_from("01"),
        business_document_info=st.none() | info,
        replacement_info_list=st.none() | st.lists(replacement, max_size=2).map(tuple),
        staff_info=st.none() | staff_strategy(),
        extras=extras_strategy(),
    )


@st.composite
def _files(draw: st.DrawFn) -> tuple[Manifest | None, tuple[Attachment, ...]]:
    """0..3 attachments with random bytes and the manifest references that declare them."""
    count = draw(st.integers(0, 3))
    refs, atts = [], []
    for index in range(count):
        cid = f"cid:{draw(st.uuids())}-{index}"
        name, description, ctype = draw(optional_text), draw(optional_text), draw(optional_text)
        attrs = draw(st.sampled_from([(), ((f"{{{XLINK_NS}}}href", cid),)]))
        refs.append(ManifestReference(cid, ctype, description, name, attrs))
        payload = Attachment.encode(draw(st.binary(max_size=512)))
        atts.append(Attachment(cid, name, description, draw(optional_text), None, ctype, payload))
    if count == 0 and draw(st.booleans()):
        return None, ()
    return Manifest(draw(st.sampled_from(["1.0", None])), tuple(refs)), tuple(atts)


@st.composite
def _document(draw: st.DrawFn) -> DocumentPackage:
    hops = st.lists(st.builds(TraceHeader, organ_ids, st.none() | timestamps), max_size=3)
    manifest, attachments = draw(_files())
    return DocumentPackage(
        header=draw(message_header_strategy()),
        trace_header_list=TraceHeaderList(tuple(draw(hops)), draw(business_strategy())),
        manifest=manifest,
        attachments=attachments,
        signature_xml=draw(signature_strategy()),
    )


def document_strategy() -> st.SearchStrategy[DocumentPackage]:
    """Valid document packages: 1..3 recipients, 0..3 attachments matching the manifest."""
    return _document()


def status_strategy() -> st.SearchStrategy[StatusPackage]:
    """Valid status packages, every StatusCode (reserved ones included)."""
    header = st.builds(
        StatusHeader,
        from_=organization_strategy(),
        response_for=response_for_strategy(),
        status_code=st.sampled_from(StatusCode),
        staff_info=st.none() | staff_strategy(),
        description=optional_text,
        timestamp=st.none() | timestamps,
        extras=extras_strategy(),
    )
    return st.builds(StatusPackage, header=header, signature_xml=signature_strategy())


def package_strategy() -> st.SearchStrategy[Package]:
    """Either kind of package."""
    return st.one_of(document_strategy(), status_strategy())
