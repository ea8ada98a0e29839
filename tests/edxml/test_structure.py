"""One reading of a package: ambiguous headers are refused, and the check agrees with edxml.xsd.

The reported variants (issue 9, defect 1) first, each with what a namespace-unaware or
first-match reader would have read; then the differential against ``schemas/edxml.xsd`` (lxml's
XMLSchema) on the conformance set, the malicious corpus, the variants and mutated packages.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from samples import WELL_FORMED_FILES
from strategies import package_strategy

from gateway.core.errors import LgspError, PackageError
from gateway.edxml.hardened import load_xml
from gateway.edxml.model import EDXML_NS, Package
from gateway.edxml.structure import ONE_READING_CODES, RESERVED, check_structure
from gateway.edxml.validate import validate_schema
from gateway.edxml.xml_codec import parse_package, serialize_package
from gateway.edxml.xsi import XSI_SCAN_MAX_BYTES, has_type_override, may_name_xsi

MALICIOUS_DIR = Path(__file__).parent / "malicious"
NS = f'xmlns="{EDXML_NS}"'
H = "/edXML/edXMLEnvelope/edXMLHeader"
MH = f"{H}/MessageHeader"
A, B, C = "000.00.00.H41", "000.00.00.G22", "000.00.00.H56"


def org(tag: str, organ_id: str, extra: str = "") -> str:
    return f"<{tag}><OrganId>{organ_id}</OrganId><OrganName>n</OrganName>{extra}</{tag}>"


def document(header: str, *, trace: str = "", envelope_extra: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<edXML {NS}><edXMLEnvelope><edXMLHeader>'
        f"<MessageHeader>{header}</MessageHeader>"
        f"<TraceHeaderList><TraceHeader><OrganId>{A}</OrganId></TraceHeader>"
        f"<Bussiness><BussinessDocType>0</BussinessDocType></Bussiness></TraceHeaderList>{trace}"
        f"</edXMLHeader>{envelope_extra}</edXMLEnvelope></edXML>"
    ).encode()


def status(header: str, *, header_extra: str = "") -> bytes:
    return (
        f"<edXML {NS}><edXMLEnvelope><edXMLHeader><MessageHeader>{header}</MessageHeader>"
        f"{header_extra}</edXMLHeader></edXMLEnvelope></edXML>"
    ).encode()


RESPONSE_FOR = (
    f"<ResponseFor><OrganId>{B}</OrganId><DocumentId>{B},2024/01/02,1/X</DocumentId></ResponseFor>"
)
STATUS_BODY = (
    f"{org('From', A)}{RESPONSE_FOR}<StatusCode>03</StatusCode>"
    "<Timestamp>2024/01/02 10:00:00</Timestamp>"
)

# name -> (package bytes, expected code, expected path)
VARIANTS: dict[str, tuple[bytes, str, str]] = {
    "nested From, outer B inner A": (
        document(f"<From>{org('From', A)}<OrganId>{B}</OrganId></From>{org('To', C)}"),
        "edxml.misplaced_element",
        f"{MH}/From/From",
    ),
    "nested From, outer B first": (
        document(f"<From><OrganId>{B}</OrganId>{org('From', A)}</From>{org('To', C)}"),
        "edxml.misplaced_element",
        f"{MH}/From/From",
    ),
    "foreign-namespace From before the real one": (
        document(
            f'{org("From", A)}<x:From xmlns:x="urn:evil"><x:OrganId>{B}</x:OrganId></x:From>'
            f"{org('To', C)}"
        ),
        "edxml.foreign_lookalike",
        f"{MH}/From",
    ),
    "edXML prefix rebound to another namespace": (
        document(
            f'{org("From", A)}<edXML:From xmlns:edXML="urn:evil"><edXML:OrganId>{B}'
            f"</edXML:OrganId></edXML:From>{org('To', C)}"
        ),
        "edxml.foreign_lookalike",
        f"{MH}/From",
    ),
    "no-namespace From": (
        document(f'{org("From", A)}<From xmlns=""><OrganId>{B}</OrganId></From>{org("To", C)}'),
        "edxml.foreign_lookalike",
        f"{MH}/From",
    ),
    "foreign OrganId inside From": (
        document(org("From", A, f'<x:OrganId xmlns:x="urn:evil">{B}</x:OrganId>') + org("To", C)),
        "edxml.foreign_lookalike",
        f"{MH}/From/OrganId",
    ),
    "two From": (
        document(org("From", A) + org("From", B) + org("To", C)),
        "edxml.duplicate_element",
        f"{MH}/From",
    ),
    "two OrganId in To": (
        document(org("From", A) + org("To", C, f"<OrganId>{B}</OrganId>")),
        "edxml.duplicate_element",
        f"{MH}/To[1]/OrganId",
    ),
    "a foreign To (no edXML one)": (
        document(
            f'{org("From", A)}<x:To xmlns:x="urn:evil"><x:OrganId>{C}</x:OrganId></x:To>'
            + org("To", B)
        ),
        "edxml.foreign_lookalike",
        f"{MH}/To",
    ),
    "To inside an extension": (
        document(org("From", A) + org("To", C) + f'<x:Ext xmlns:x="urn:x">{org("To", B)}</x:Ext>'),
        "edxml.misplaced_element",
        f"{MH}/Ext/To",
    ),
    "To inside OtherInfo": (
        document(org("From", A) + org("To", C) + f"<OtherInfo>{org('To', B)}</OtherInfo>"),
        "edxml.misplaced_element",
        f"{MH}/OtherInfo/To",
    ),
    "two DocumentId": (
        document(
            org("From", A) + org("To", C) + "<DocumentId>a</DocumentId><DocumentId>b</DocumentId>"
        ),
        "edxml.duplicate_element",
        f"{MH}/DocumentId",
    ),
    "foreign DocumentId": (
        document(
            org("From", A)
            + org("To", C)
            + '<DocumentId>a</DocumentId><x:DocumentId xmlns:x="urn:x">b</x:DocumentId>'
        ),
        "edxml.foreign_lookalike",
        f"{MH}/DocumentId",
    ),
    "two TraceHeaderList": (
        document(org("From", A) + org("To", C), trace="<TraceHeaderList/>"),
        "edxml.duplicate_element",
        f"{H}/TraceHeaderList",
    ),
    "two ResponseFor in a status": (
        status(STATUS_BODY + RESPONSE_FOR.replace(B, C)),
        "edxml.duplicate_element",
        f"{MH}/ResponseFor",
    ),
    "two DocumentId in ResponseFor": (
        status(STATUS_BODY.replace("</ResponseFor>", "<DocumentId>2</DocumentId></ResponseFor>")),
        "edxml.duplicate_element",
        f"{MH}/ResponseFor/DocumentId",
    ),
    "two StatusCode": (
        status(STATUS_BODY + "<StatusCode>06</StatusCode>"),
        "edxml.duplicate_element",
        f"{MH}/StatusCode",
    ),
    "foreign StatusCode": (
        status(STATUS_BODY + '<x:StatusCode xmlns:x="urn:x">02</x:StatusCode>'),
        "edxml.foreign_lookalike",
        f"{MH}/StatusCode",
    ),
    "a status with To": (status(STATUS_BODY + org("To", C)), "edxml.misplaced_element", f"{MH}/To"),
    "a status with a header DocumentId": (
        status(STATUS_BODY + "<DocumentId>d</DocumentId>"),
        "edxml.misplaced_element",
        f"{MH}/DocumentId",
    ),
    "a status with TraceHeaderList": (
        status(STATUS_BODY, header_extra="<TraceHeaderList/>"),
        "edxml.misplaced_element",
        f"{H}/TraceHeaderList",
    ),
    "a second MessageHeader in an extension": (
        status(
            STATUS_BODY,
            header_extra=f'<x:E xmlns:x="urn:x"><MessageHeader>'
            f"{org('From', B)}</MessageHeader></x:E>",
        ),
        "edxml.misplaced_element",
        f"{H}/E/MessageHeader",
    ),
    "xsi:type on From": (
        document(
            org("From", A).replace(
                "<From>",
                '<From xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Opaque">',
            )
            + org("To", C)
        ),
        "edxml.xsi_attribute",
        "/edXML",
    ),
    "a foreign envelope beside the real one": (
        document(org("From", A) + org("To", C)).replace(
            b"</edXMLEnvelope>", b'</edXMLEnvelope><x:edXMLEnvelope xmlns:x="urn:x"/>'
        ),
        "edxml.foreign_lookalike",
        "/edXML/edXMLEnvelope",
    ),
}


def first_by_local_name(data: bytes, path: str) -> str | None:
    """A namespace-unaware reader: the first element at a path of local names."""
    steps = "/".join(f"*[local-name()='{s}']" for s in path.strip("/").split("/"))
    found = etree.fromstring(data).xpath(f"/{steps}")
    return "".join(found[0].itertext()).strip() if found else None  # type: ignore[index]


@pytest.mark.parametrize(("data", "code", "path"), VARIANTS.values(), ids=VARIANTS.keys())
def test_each_ambiguous_variant_is_refused_with_its_code(data: bytes, code: str, path: str) -> None:
    with pytest.raises(PackageError) as caught:
        parse_package(data)
    assert (caught.value.code, caught.value.path) == (code, path)
    assert caught.value.http_status == 400


def test_readers_disagreed_on_the_variants_that_the_old_reader_accepted() -> None:
    """What made them dangerous: a namespace-unaware reader saw another sender than intake."""
    foreign = VARIANTS["foreign-namespace From before the real one"][0].replace(
        f"{org('From', A)}".encode(), b"", 1
    )
    foreign = foreign.replace(b"</x:From>", f"</x:From>{org('From', A)}".encode(), 1)
    assert first_by_local_name(foreign, f"{MH}/From/OrganId") == B
    with pytest.raises(PackageError) as caught:
        parse_package(foreign)
    assert caught.value.code == "edxml.foreign_lookalike"
    nested = VARIANTS["nested From, outer B inner A"][0]
    outer = etree.fromstring(nested).find(f".//{{{EDXML_NS}}}From/{{{EDXML_NS}}}OrganId")
    assert outer is not None
    assert outer.text == B  # the delivered bytes' first From/OrganId: the sender A never was


def test_tidy_packages_and_lenient_producers_still_pass() -> None:
    for path in WELL_FORMED_FILES:
        check_structure(load_xml(path.read_bytes()))
    lenient = document(
        f"<!-- c -->{org('From', A)}<Subject>s</Subject>{org('To', C)}{org('To', B)}"
        f"{RESPONSE_FOR}{RESPONSE_FOR}<OtherInfo><ReplyFors>r</ReplyFors><Priority>0</Priority>"
        '</OtherInfo><x:Note xmlns:x="urn:x"><x:OrganId>x</x:OrganId></x:Note>'
        "<Code>7816/VPCP</Code>",
        trace="<Signature><SignedInfo/></Signature>",
    )
    parse_package(lenient)


DSIG = 'xmlns="http://www.w3.org/2000/09/xmldsig#"'
# Lax content (a Signature, a foreign extension) deep down: name -> (what sits under
# edXMLHeader after MessageHeader, expected code, path, whether the XSD refuses it too).
LAX_CASES: dict[str, tuple[str, str, str, bool]] = {
    "a header name of a third namespace inside a foreign extension": (
        '<x:Ext xmlns:x="urn:x"><y:Wrap xmlns:y="urn:y"><z:From xmlns:z="urn:z"/></y:Wrap></x:Ext>',
        "edxml.misplaced_element",
        f"{H}/Ext/Wrap/From",
        False,
    ),
    "a header name of the xmldsig namespace inside the Signature": (
        f"<Signature {DSIG}><SignedInfo/><KeyInfo><X509Data><StatusCode>01</StatusCode>"
        "</X509Data></KeyInfo></Signature>",
        "edxml.misplaced_element",
        f"{H}/Signature/KeyInfo/X509Data/StatusCode",
        False,
    ),
    "a global edXML element with an element inside its text, in a foreign extension": (
        '<x:Ext xmlns:x="urn:x"><x:Deeper><Subject>s<x:b/></Subject></x:Deeper></x:Ext>',
        "edxml.unexpected_element",
        f"{H}/Ext/Deeper/Subject/b",
        True,
    ),
    "a global edXML element with an element inside its text, in the Signature": (
        f"<Signature {DSIG}><SignedInfo/><Object><Description xmlns={EDXML_NS!r}>d<b/>"
        "</Description></Object></Signature>",
        "edxml.unexpected_element",
        f"{H}/Signature/Object/Description/b",
        True,
    ),
}


@pytest.mark.parametrize(
    ("extra", "code", "path", "xsd_refuses"), LAX_CASES.values(), ids=LAX_CASES
)
def test_lax_content_is_checked_however_deep(
    extra: str, code: str, path: str, xsd_refuses: bool
) -> None:
    """What the walk checks below undeclared elements: reserved names in any namespace are
    refused, global edXML elements checked as their type (as the XSD's lax wildcard does)."""
    data = status(STATUS_BODY, header_extra=extra)
    with pytest.raises(PackageError) as caught:
        check_structure(load_xml(data))
    assert (caught.value.code, caught.value.path) == (code, path)
    assert validate_schema(load_xml(data)).ok is not xsd_refuses
    harmless = status(STATUS_BODY, header_extra=extra.replace("<x:b/>", "").replace("<b/>", ""))
    if xsd_refuses:  # the same place without the fault passes
        check_structure(load_xml(harmless))


# -- the differential against schemas/edxml.xsd ---------------------------------------------------


def verdicts(data: bytes) -> tuple[bool, str | None] | None:
    """(XSD valid, our refusal code or None); None if the bytes do not even load.

    The check is run without the source bytes (every attribute searched for ``xsi:``) and with
    them (searched only if the bytes can name the XSI namespace): both must say the same."""
    try:
        root = load_xml(data)
    except LgspError:
        return None
    xsd_ok = validate_schema(root).ok
    return xsd_ok, _same_refusal(root, data)


def _refusal(root: etree._Element, source: bytes | None) -> tuple[str, str] | None:
    try:
        check_structure(root, source=source)
    except PackageError as exc:
        return exc.code, exc.path
    return None


def _same_refusal(root: etree._Element, source: bytes) -> str | None:
    """The refusal code (or None) of the check without ``source``, asserting the same with it."""
    reference = _refusal(root, None)
    assert _refusal(root, source) == reference
    if not may_name_xsi(source):
        assert not has_type_override(root)
    return None if reference is None else reference[0]


XSI_URI = "http://www.w3.org/2001/XMLSchema-instance"
XSI_SPELLINGS = {
    "as it is": XSI_URI,
    "a decimal reference": XSI_URI.replace("-", "&#45;"),
    "a hexadecimal reference": XSI_URI.replace("X", "&#x58;"),
    "every character by reference": "".join(f"&#{ord(c)};" for c in XSI_URI),
}


@pytest.mark.parametrize("spelling", XSI_SPELLINGS.values(), ids=XSI_SPELLINGS.keys())
@pytest.mark.parametrize("attribute", ["type", "nil"])
def test_the_source_bytes_never_hide_an_xsi_attribute(spelling: str, attribute: str) -> None:
    """However the declaration spells the XSI namespace, the check given the bytes still refuses
    (and the XPath, the reference, finds the attribute)."""
    at = f'<From xmlns:q="{spelling}" q:{attribute}="x">'
    data = status(STATUS_BODY.replace("<From>", at, 1))
    assert may_name_xsi(data)
    root = load_xml(data)
    assert has_type_override(root)
    assert _refusal(root, data) == _refusal(root, None) == ("edxml.xsi_attribute", "/edXML")
    with pytest.raises(PackageError) as caught:
        parse_package(data)  # hands the check its bytes
    assert caught.value.code == "edxml.xsi_attribute"


def test_bytes_without_the_xsi_name_or_a_reference_cannot_name_it() -> None:
    plain = status(STATUS_BODY)
    other = status(STATUS_BODY.replace("<From>", '<From xmlns:q="urn:XMLSchema" q:nil="1">', 1))
    for data in (plain, other):
        assert not may_name_xsi(data)
        assert not has_type_override(load_xml(data))
        assert _refusal(load_xml(data), data) is None
    assert may_name_xsi(None)  # unknown bytes: always searched
    assert may_name_xsi(plain.replace(b"<StatusCode>03", b"<StatusCode>&#48;3"))
    assert may_name_xsi(plain.replace(b"<Timestamp>", b"<Timestamp>&amp;"))  # any reference
    padded = plain.replace(b"</edXML>", b" " * XSI_SCAN_MAX_BYTES + b"</edXML>")
    assert may_name_xsi(padded)  # too large to search: the XPath decides
    assert _refusal(load_xml(padded), padded) is None


def assert_agrees(data: bytes) -> None:
    outcome = verdicts(data)
    if outcome is None:
        return
    xsd_ok, code = outcome
    if not xsd_ok:
        assert code is not None, "the XSD refuses a package the check accepts"
    elif code is not None:
        assert code in ONE_READING_CODES, f"the XSD accepts, the check says {code}"


CORPUS = [*WELL_FORMED_FILES, *sorted(p for p in MALICIOUS_DIR.iterdir() if p.suffix != ".toml")]


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_the_check_and_the_xsd_give_the_same_verdict_on_the_corpus(path: Path) -> None:
    outcome = verdicts(path.read_bytes())
    if outcome is not None:
        xsd_ok, code = outcome
        assert xsd_ok == (code is None), (xsd_ok, code)


@pytest.mark.parametrize(("data", "code", "path"), VARIANTS.values(), ids=VARIANTS.keys())
def test_on_the_variants_the_check_is_the_xsd_or_stricter(
    data: bytes, code: str, path: str
) -> None:
    assert_agrees(data)


# Mutations: one edit of a real package at a random element, from names that matter.
NAMES = sorted(
    RESERVED
    | {
        "OrganId",
        "Subject",
        "Priority",
        "Code",
        "StaffInfo",
        "Place",
        "TraceHeader",
        "Signature",
        "Attachment",
        "Unknown",
        "Timestamp",
    }
)
NAMESPACES = [EDXML_NS, "urn:other", ""]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    base = draw(st.sampled_from(WELL_FORMED_FILES))
    root = load_xml(base.read_bytes())
    elements = [e for e in root.iter() if isinstance(e.tag, str)]
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from(elements))
        action = draw(st.sampled_from(["insert"] * 4 + ["copy"] * 2 + ["text", "wrap", "xsi"]))
        if action == "insert":
            uri, name = draw(st.sampled_from(NAMESPACES)), draw(st.sampled_from(NAMES))
            new = etree.Element(f"{{{uri}}}{name}" if uri else name)
            if draw(st.booleans()):
                new.text = "t"
            elif draw(st.booleans()):
                etree.SubElement(new, f"{{{EDXML_NS}}}{draw(st.sampled_from(NAMES))}")
            target.insert(draw(st.integers(0, len(target))), new)
        elif action == "copy" and target.getparent() is not None:
            parent = target.getparent()
            assert parent is not None
            parent.insert(
                draw(st.integers(0, len(parent))), etree.fromstring(etree.tostring(target))
            )
        elif action == "text":
            target.text = draw(st.sampled_from(["", " \n", "x"]))
        elif action == "wrap" and len(target):
            child = target[draw(st.integers(0, len(target) - 1))]
            if isinstance(child.tag, str):
                child.append(etree.fromstring(etree.tostring(child)))
        elif action == "xsi":
            target.set("{http://www.w3.org/2001/XMLSchema-instance}nil", "true")
    return etree.tostring(root)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_on_mutated_packages_the_check_is_the_xsd_or_stricter(data: bytes) -> None:
    assert_agrees(data)


# -- the walk's index of children, which the reader uses instead of listing them again ----------


def _assert_index_lists_what_lxml_lists(root: etree._Element) -> None:
    """Every container in the index maps to its edXML children exactly as lxml lists them."""
    index = check_structure(root)
    assert root in index
    for container, named in index.items():
        expected: dict[str, list[etree._Element]] = {}
        for child in container.iterchildren(f"{{{EDXML_NS}}}*"):
            expected.setdefault(etree.QName(child).localname, []).append(child)
        assert named == expected, container.tag
        assert [list(map(id, v)) for v in named.values()] == [
            list(map(id, v)) for v in expected.values()
        ]  # the same elements, in document order


def test_the_walks_index_is_what_lxml_lists_for_every_sample() -> None:
    for path in WELL_FORMED_FILES:
        _assert_index_lists_what_lxml_lists(load_xml(path.read_bytes()))
    lenient = document(
        f"<!-- c -->{org('From', A)}<Subject>s</Subject>{org('To', C)}{org('To', B)}"
        f"{RESPONSE_FOR}{RESPONSE_FOR}<OtherInfo><ReplyFors>r</ReplyFors><Priority>0</Priority>"
        '<Unknown>u</Unknown></OtherInfo><x:Note xmlns:x="urn:x"><x:OrganId>x</x:OrganId></x:Note>'
        "<Code>7816/VPCP</Code><NewField><Inner>i</Inner></NewField>",
        trace="<Signature><SignedInfo/></Signature>",
    )
    _assert_index_lists_what_lxml_lists(load_xml(lenient))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(package_strategy())
def test_the_walks_index_is_what_lxml_lists_for_any_package(pkg: Package) -> None:
    _assert_index_lists_what_lxml_lists(load_xml(serialize_package(pkg)))
