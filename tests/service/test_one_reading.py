"""Over HTTP: intake refuses packages whose header readers could read differently (issue 9).

Each package is built by the demo's own serializer, edited as the outside probe did, then signed
by the agency the edit wants the gateway to believe, and submitted by it.
"""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree
from service_kit import (
    COMMUNE,
    DEPARTMENT,
    DISTRICT,
    PROVINCE,
    Gateway,
    StartGateway,
    new_document,
    status_for,
)

from gateway.edxml.model import EDXML_NS
from gateway.edxml.xml_codec import serialize_package

E = f"{{{EDXML_NS}}}"
EVIL = "urn:evil"
Edit = Callable[[etree._Element], None]


def header(root: etree._Element) -> etree._Element:
    found = root.find(f"{E}edXMLEnvelope/{E}edXMLHeader/{E}MessageHeader")
    assert found is not None
    return found


def child(parent: etree._Element, name: str) -> etree._Element:
    found = parent.find(E + name)
    assert found is not None, name
    return found


def leaf(tag: str, text: str) -> etree._Element:
    element = etree.Element(tag)
    element.text = text
    return element


def nested_from(root: etree._Element) -> None:
    """Outer From says B (PROVINCE), the inner one A (DEPARTMENT, who signs)."""
    mh = header(root)
    real = child(mh, "From")
    outer = etree.Element(E + "From")
    outer.append(leaf(E + "OrganId", PROVINCE))
    mh.replace(real, outer)
    outer.append(real)


def foreign_from_first(root: etree._Element) -> None:
    mh = header(root)
    fake = etree.Element(f"{{{EVIL}}}From", nsmap={"x": EVIL})
    fake.append(leaf(f"{{{EVIL}}}OrganId", PROVINCE))
    mh.insert(0, fake)


def foreign_from_beside(root: etree._Element) -> None:
    mh = header(root)
    fake = etree.Element(f"{{{EVIL}}}From", nsmap={"x": EVIL})
    fake.append(leaf(f"{{{EVIL}}}OrganId", PROVINCE))
    child(mh, "From").addnext(fake)


def rebound_prefix(root: etree._Element) -> None:
    """``edXML:From`` whose prefix means another namespace: a reader by qualified name sees B."""
    mh = header(root)
    fake = etree.Element(f"{{{EVIL}}}From", nsmap={"edXML": EVIL})
    fake.append(leaf(f"{{{EVIL}}}OrganId", PROVINCE))
    child(mh, "From").addnext(fake)


def second_organ_id_in_to(root: etree._Element) -> None:
    child(child(header(root), "To"), "OrganId").addnext(leaf(E + "OrganId", PROVINCE))


def second_document_id(root: etree._Element) -> None:
    child(header(root), "DocumentId").addnext(leaf(E + "DocumentId", "other,2024/01/01,1/X"))


def second_status_code(root: etree._Element) -> None:
    child(header(root), "StatusCode").addnext(leaf(E + "StatusCode", "06"))


def second_response_for(root: etree._Element) -> None:
    mh = header(root)
    other = etree.fromstring(etree.tostring(child(mh, "ResponseFor")))
    child(other, "OrganId").text = PROVINCE
    child(mh, "ResponseFor").addnext(other)


def edited(data: bytes, edit: Edit) -> bytes:
    root = etree.fromstring(data)
    edit(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(root, encoding="UTF-8")


async def refused(gw: Gateway, data: bytes, signer: str) -> tuple[int, str]:
    status, problem = await gw.submit(gw.sign(data, signer), signer)
    return status, problem.get("code", "")


async def test_ambiguous_headers_are_refused_at_intake(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    document = new_document(DEPARTMENT, [COMMUNE])
    plain = serialize_package(document)
    for edit, code in [
        (nested_from, "edxml.misplaced_element"),
        (foreign_from_first, "edxml.foreign_lookalike"),
        (foreign_from_beside, "edxml.foreign_lookalike"),
        (rebound_prefix, "edxml.foreign_lookalike"),
        (second_organ_id_in_to, "edxml.duplicate_element"),
        (second_document_id, "edxml.duplicate_element"),
    ]:
        status, answer = await refused(gw, edited(plain, edit), DEPARTMENT)
        assert (status, answer) == (400, code), edit.__name__

    twice = plain.replace(
        b"</edXML:To>",
        b"</edXML:To>"
        + plain[plain.index(b"<edXML:To>") : plain.index(b"</edXML:To>") + len(b"</edXML:To>")],
        1,
    )
    assert await refused(gw, twice, DEPARTMENT) == (400, "edxml.duplicate_recipient")
    assert (await gw.get("/api/v1/inbox", COMMUNE))[1]["items"] == []

    status, answer = await gw.submit(gw.sign(plain, DEPARTMENT), DEPARTMENT)
    assert status == 202, answer  # the same package, unedited, goes through

    reply = status_for(document, COMMUNE, "03")
    for edit in (second_status_code, second_response_for):
        status, code = await refused(gw, edited(reply, edit), COMMUNE)
        assert (status, code) == (400, "edxml.duplicate_element"), edit.__name__


async def test_status_packages_come_only_from_a_recipient(start_gateway: StartGateway) -> None:
    gw = await start_gateway()
    document = new_document(DEPARTMENT, [COMMUNE])
    status, answer = await gw.submit(gw.sign(document, DEPARTMENT), DEPARTMENT)
    assert status == 202, answer

    status, problem = await gw.submit(
        gw.sign(status_for(document, DISTRICT, "02"), DISTRICT), DISTRICT
    )
    assert status == 403, problem
    assert problem["code"] == "acl.not_a_recipient"
    assert problem["request_id"]

    status, reply = await gw.submit(gw.sign(status_for(document, COMMUNE, "03"), COMMUNE), COMMUNE)
    assert status == 202, reply
    view = await gw.wait_for(
        answer["id"], DEPARTMENT, lambda v: v["recipients"][0]["business_status"] == "03"
    )
    assert [r["organ_id"] for r in view["recipients"]] == [COMMUNE]
