"""Signature-wrapping and unsigned-content attacks on edXML packages: each fails with a clear code.

With ``Reference URI=""`` the digest covers the whole document, so wrapping has to smuggle in a
second signature, point the reference elsewhere, move the signature, or put content where the
reader sees it and c14n does not (a DTD, processing instructions outside the root, comments).
Most attacks below start from a correctly signed package and keep the victim's signature
cryptographically intact, so only the profile rule under test can stop them.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives import hashes
from lxml import etree

from gateway.core.errors import LgspError, SignatureError
from gateway.edxml.hardened import load_xml
from gateway.edxml.model import EDXML_NS, XMLDSIG_NS
from gateway.edxml.xml_codec import read_package
from gateway.signatures.algorithms import C14nMethod
from gateway.signatures.xmldsig import sign_xml, verify_xml_signature

if TYPE_CHECKING:
    from conftest import Dsig

DS = f"{{{XMLDSIG_NS}}}"
EDX = f"{{{EDXML_NS}}}"
HEADER = "e:edXMLEnvelope/e:edXMLHeader"
SENDER = f"{HEADER}/e:MessageHeader/e:From/e:OrganId"
Read = Callable[[str], bytes]


@pytest.fixture(scope="module")
def victim(dsig: Dsig, conformance_bytes: Read) -> bytes:
    """A genuine package of 000.00.00.A80, correctly signed by its RSA signer."""
    signer = dsig.pki.rsa
    return sign_xml(conformance_bytes("edoc_new.edxml"), signer.key, signer.chain)


def _code_of(root: etree._Element) -> str:
    """The verifier's code for ``root``; the tree must come back exactly as it went in."""
    before = etree.tostring(root.getroottree())
    with pytest.raises(SignatureError) as caught:
        verify_xml_signature(root)
    assert etree.tostring(root.getroottree()) == before
    return caught.value.code


def _gateway_code(data: bytes) -> str:
    """The code the gateway's path (hardened load, then verify) refuses ``data`` with."""
    with pytest.raises(LgspError) as caught:
        verify_xml_signature(load_xml(data))
    return caught.value.code


def _detach(element: etree._Element) -> etree._Element:
    """Take ``element`` out the way the enveloped transform does: the text after it stays."""
    parent, previous = element.getparent(), element.getprevious()
    assert parent is not None
    if previous is not None:
        previous.tail = (previous.tail or "") + (element.tail or "")
    else:
        parent.text = (parent.text or "") + (element.tail or "")
    element.tail = None
    parent.remove(element)
    return element


def test_the_victim_verifies(victim: bytes, dsig: Dsig) -> None:
    assert verify_xml_signature(load_xml(victim)).signer_certificate == dsig.pki.rsa.certificate


# --- a second signature --------------------------------------------------------------------------


def test_an_attackers_signature_beside_the_victims_is_refused(
    victim: bytes, dsig: Dsig, conformance_bytes: Read
) -> None:
    """Forged package signed by the intruder, the victim's signature carried along in it."""
    forged = conformance_bytes("edoc_new.edxml").replace(b"000.00.00.A80", b"000.00.00.H56", 1)
    intruder = dsig.pki.intruder
    root = dsig.parse(sign_xml(forged, intruder.key, intruder.chain))
    victims_signature = dsig.signature_of(dsig.parse(victim))
    dsig.find(root, "e:AttachmentEncoded/e:Attachment").append(victims_signature)
    assert _code_of(root) == "signature.multiple"


def test_a_second_signature_in_the_header_is_refused(victim: bytes, dsig: Dsig) -> None:
    root = dsig.parse(victim)
    signature = dsig.signature_of(root)
    signature.addprevious(copy.deepcopy(signature))
    assert _code_of(root) == "signature.multiple"


def test_signatures_in_both_namespaces_count_together(victim: bytes, dsig: Dsig) -> None:
    root = dsig.parse(victim)
    signature = dsig.signature_of(root)
    twin = copy.deepcopy(signature)
    for element in twin.iter():
        element.tag = f"{EDX}{etree.QName(element).localname}"
    signature.addnext(twin)
    assert _code_of(root) == "signature.multiple"


# --- a reference to something other than the whole document -------------------------------------


def _sign_header_only(root: etree._Element, dsig: Dsig) -> None:
    """Turn the victim's signature into a valid one over MessageHeader[@Id="hdr"] alone."""
    header = dsig.find(root, f"{HEADER}/e:MessageHeader")
    header.set("Id", "hdr")
    reference = dsig.child(dsig.signature_of(root), "Reference")
    reference.set("URI", "#hdr")
    transforms = dsig.child(reference, "Transforms")
    transforms.remove(transforms[0])  # the header does not contain the Signature
    hasher = hashes.Hash(hashes.SHA256())
    hasher.update(etree.tostring(header, method="c14n", exclusive=True, with_comments=False))
    dsig.child(reference, "DigestValue").text = base64.b64encode(hasher.finalize()).decode()
    dsig.resign_signed_info(root, dsig.pki.rsa.key)


def test_a_reference_to_an_id_cannot_leave_the_rest_unsigned(victim: bytes, dsig: Dsig) -> None:
    root = dsig.parse(victim)
    _sign_header_only(root, dsig)  # a valid XML-DSig signature, over the header alone
    attachment = dsig.find(root, "e:AttachmentEncoded/e:Attachment/e:ContentTransferEncoded")
    attachment.text = base64.b64encode(b"forged attachment").decode()
    assert dsig.reference(dsig.tostring(root)) == "valid"  # as XML-DSig goes, it holds
    assert _code_of(root) == "signature.bad_reference"


def test_the_classic_wrapping_of_the_signed_element_into_an_object_is_refused(
    victim: bytes, dsig: Dsig
) -> None:
    """XSW: the signed header goes into ds:Object, a forged one with the same Id takes its place."""
    root = dsig.parse(victim)
    _sign_header_only(root, dsig)
    header = dsig.find(root, f"{HEADER}/e:MessageHeader")
    wrapper = etree.SubElement(dsig.signature_of(root), f"{DS}Object")
    wrapper.append(copy.deepcopy(header))
    dsig.find(root, SENDER).text = "000.00.00.H56"
    assert _code_of(root) == "signature.object_not_allowed"


# --- a moved signature ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "destination",
    [
        "e:AttachmentEncoded/e:Attachment",
        "e:AttachmentEncoded",
        "e:edXMLEnvelope/e:edXMLBody/e:edXMLManifest",
        f"{HEADER}/e:MessageHeader",
        ".",
    ],
)
def test_a_signature_moved_out_of_the_header_is_refused(
    destination: str, victim: bytes, dsig: Dsig
) -> None:
    """The move keeps the digest intact (the enveloped transform drops the element anywhere)."""
    root = dsig.parse(victim)
    signature = _detach(dsig.signature_of(root))
    dsig.find(root, destination).append(signature)
    assert dsig.xmlsec(dsig.tostring(root)) == "valid"  # libxmlsec1 finds it anywhere
    assert _code_of(root) == "signature.bad_placement"


def test_a_signature_moved_before_the_trace_headers_is_refused(victim: bytes, dsig: Dsig) -> None:
    root = dsig.parse(victim)
    signature = _detach(dsig.signature_of(root))
    dsig.find(root, f"{HEADER}/e:TraceHeaderList").addprevious(signature)
    assert _code_of(root) == "signature.bad_placement"


def test_a_forged_envelope_before_the_signed_one_breaks_the_digest(
    victim: bytes, dsig: Dsig
) -> None:
    root = dsig.parse(victim)
    forged = copy.deepcopy(dsig.find(root, "e:edXMLEnvelope"))
    _detach(dsig.signature_of(forged))
    for organ_id in forged.iter(f"{EDX}OrganId"):
        organ_id.text = "000.00.00.H56"
    root.insert(0, forged)
    assert _code_of(root) == "signature.digest_mismatch"


# --- content the reader could see but c14n drops -------------------------------------------------


def _with_doctype(victim: bytes) -> bytes:
    doctype = b'<!DOCTYPE edXML [<!ENTITY sender "000.00.00.H56">]>\n'
    body = victim.split(b"?>\n", 1)[1]
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + doctype + body


@pytest.mark.parametrize("resolve_entities", [False, True])
def test_a_doctype_is_refused_by_the_verifier(resolve_entities: bool, victim: bytes) -> None:
    data = _with_doctype(victim).replace(b"000.00.00.A80", b"&sender;", 1)
    parser = etree.XMLParser(resolve_entities=resolve_entities, load_dtd=False, no_network=True)
    assert _code_of(etree.fromstring(data, parser)) == "signature.dtd_not_allowed"


def test_a_doctype_never_reaches_a_verdict(victim: bytes) -> None:
    code = _gateway_code(_with_doctype(victim))
    assert code == "signature.dtd_not_allowed" or code.startswith("edxml.")


def test_a_processing_instruction_outside_the_root_is_refused(victim: bytes) -> None:
    """URI="" covers it, but nothing reads it and signxml ignores it: refused, not guessed at."""
    data = victim.replace(b"?>\n", b"?>\n<?xml-stylesheet href='forged.xsl'?>\n", 1)
    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False))
    assert _code_of(root) == "signature.unsigned_content"
    code = _gateway_code(data)
    assert code == "signature.unsigned_content" or code.startswith("edxml.")


def test_a_comment_splitting_signed_text_is_refused(victim: bytes, dsig: Dsig) -> None:
    """c14n drops the comment, so the digest holds; a reader of ``.text`` would see '...A8'."""
    data = victim.replace(b"000.00.00.A80<", b"000.00.00.A8<!-- -->0<", 1)
    assert data != victim
    root = dsig.parse(data)
    assert dsig.find(root, SENDER).text == "000.00.00.A8"
    assert _code_of(root) == "signature.unsigned_content"


def test_comments_between_elements_cannot_change_what_is_read(victim: bytes, dsig: Dsig) -> None:
    """Dropped by c14n and invisible to the record reader: accepted, and read identically."""
    data = victim.replace(
        b"<edXML:To>", b"<!-- <edXML:To>000.00.00.H56</edXML:To> --><edXML:To>", 1
    )
    data = data.replace(b"?>\n", b"?>\n<!-- a comment before the root -->\n", 1)
    root = load_xml(data)
    verify_xml_signature(root)
    assert read_package(root) == read_package(load_xml(victim))


def test_whitespace_changes_inside_the_signed_scope_break_the_digest(
    victim: bytes, dsig: Dsig
) -> None:
    root = dsig.parse(victim)
    sender = dsig.find(root, SENDER)
    sender.tail = (sender.tail or "") + " "
    assert _code_of(root) == "signature.digest_mismatch"


def test_exclusive_c14n_ignores_namespace_declarations_nobody_uses(
    dsig: Dsig, conformance_bytes: Read
) -> None:
    """So do we: the records read are the same. Inclusive c14n signs them, so there it breaks."""
    signer = dsig.pki.rsa
    package = conformance_bytes("status_acceptance_03.edxml")
    for c14n, expected in ((C14nMethod.EXC_C14N, None), (C14nMethod.C14N, "signature.invalid")):
        signed = sign_xml(package, signer.key, signer.chain, c14n=c14n)
        data = signed.replace(b"<edXML xmlns=", b'<edXML xmlns:evil="urn:evil" xmlns=', 1)
        root = load_xml(data)
        if expected is None:
            verify_xml_signature(root)
            assert read_package(root) == read_package(load_xml(signed))
        else:
            assert _code_of(root) == expected
