"""The narrow-profile XML-DSig verifier and signer through their public functions.

Every refusal is checked for its specific code; every verification, passing or failing, must
leave the lxml tree exactly as it was. Signatures in the edXML namespace (as the VPCP samples
write them) are built here independently with lxml c14n and cryptography.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

from gateway.core.errors import ConfigError, PackageError, SignatureError
from gateway.edxml.hardened import load_xml
from gateway.edxml.model import EDXML_NS, XMLDSIG_NS
from gateway.signatures.algorithms import (
    ALL_SUPPORTED,
    DEFAULT_ALLOWED,
    EXC_C14N_ALIAS,
    C14nMethod,
    DigestAlgorithm,
    SignatureAlgorithm,
)
from gateway.signatures.xmldsig import (
    XmlSignatureCheck,
    _algorithm,
    sign_xml,
    verify_xml_signature,
)

if TYPE_CHECKING:
    from conftest import Dsig, Signer

DS = f"{{{XMLDSIG_NS}}}"
EDX = f"{{{EDXML_NS}}}"
DOCUMENT = "edoc_new.edxml"
STATUS = "status_acceptance_03.edxml"
Read = Callable[[str], bytes]


def _signed(read: Read, signer: Signer, name: str = DOCUMENT, **options: object) -> bytes:
    return sign_xml(read(name), signer.key, signer.chain, **options)  # type: ignore[arg-type]


def _verify(data: bytes, **options: frozenset[SignatureAlgorithm]) -> XmlSignatureCheck:
    """Verify, asserting that the tree is left exactly as it was, whatever the outcome."""
    root = load_xml(data)
    before = etree.tostring(root)
    try:
        return verify_xml_signature(root, **options)
    finally:
        assert etree.tostring(root) == before


def _code(data: bytes, **options: frozenset[SignatureAlgorithm]) -> str:
    with pytest.raises(SignatureError) as caught:
        _verify(data, **options)
    return caught.value.code


def _edit(data: bytes, dsig: Dsig, change: Callable[[etree._Element], None]) -> bytes:
    root = dsig.parse(data)
    change(root)
    return dsig.tostring(root)


# --- algorithms ----------------------------------------------------------------------------------


def test_algorithm_identifiers_are_the_xmldsig_uris() -> None:
    assert SignatureAlgorithm.RSA_SHA1.value == "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
    assert (
        SignatureAlgorithm.RSA_SHA256.value == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    )
    assert (
        SignatureAlgorithm.ECDSA_SHA256.value
        == "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
    )
    assert DigestAlgorithm.SHA1.value == "http://www.w3.org/2000/09/xmldsig#sha1"
    assert DigestAlgorithm.SHA256.value == "http://www.w3.org/2001/04/xmlenc#sha256"
    assert C14nMethod.C14N.value == "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
    assert C14nMethod.EXC_C14N.value == "http://www.w3.org/2001/10/xml-exc-c14n#"
    assert {SignatureAlgorithm.RSA_SHA256, SignatureAlgorithm.ECDSA_SHA256} == DEFAULT_ALLOWED
    assert set(SignatureAlgorithm) == ALL_SUPPORTED


def test_short_names_round_trip_and_unknown_names_fail() -> None:
    assert [a.short_name for a in SignatureAlgorithm] == [
        "rsa-sha1",
        "rsa-sha256",
        "rsa-sha512",
        "ecdsa-sha256",
    ]
    for algorithm in SignatureAlgorithm:
        assert algorithm.short_name == algorithm.name.lower().replace("_", "-")  # the spelling
        assert SignatureAlgorithm.from_short_name(algorithm.short_name) is algorithm
        assert SignatureAlgorithm.from_short_name(algorithm.short_name.upper()) is algorithm
    assert SignatureAlgorithm.from_short_name(" RSA-SHA256 ") is SignatureAlgorithm.RSA_SHA256
    with pytest.raises(ValueError, match="dsa-sha1"):
        SignatureAlgorithm.from_short_name("dsa-sha1")


def test_the_producers_exc_c14n_uri_is_an_alias() -> None:
    assert C14nMethod(EXC_C14N_ALIAS) is C14nMethod.EXC_C14N


def test_algorithm_uris_are_read_as_the_enums_read_them() -> None:
    """``_algorithm`` looks members up in a table; the enum's own lookup is the reference."""
    kinds: tuple[type[SignatureAlgorithm | DigestAlgorithm | C14nMethod], ...] = (
        SignatureAlgorithm,
        DigestAlgorithm,
        C14nMethod,
    )
    for kind in kinds:
        for uri in [member.value for member in kind] + [EXC_C14N_ALIAS]:
            element = etree.Element("Method", Algorithm=uri)
            try:
                expected = kind(uri)
            except ValueError:
                with pytest.raises(SignatureError) as caught:
                    _algorithm(kind, element, "unsupported_x")
                assert caught.value.code == "signature.unsupported_x"
                continue
            assert _algorithm(kind, element, "unsupported_x") is expected
    with_comment = etree.Element("Method", Algorithm=C14nMethod.C14N.value)
    with_comment.append(etree.Comment("c"))  # a child, but no child element: read
    assert _algorithm(C14nMethod, with_comment, "x") is C14nMethod.C14N
    etree.SubElement(with_comment, "Child")
    with pytest.raises(SignatureError, match="must not have child elements"):
        _algorithm(C14nMethod, with_comment, "x")
    with pytest.raises(ValueError, match="WithComments"):
        C14nMethod("http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments")


# --- sign, then verify ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rsa", "ec"])
@pytest.mark.parametrize("name", [DOCUMENT, STATUS])
def test_a_signed_package_verifies_and_names_its_signer(
    kind: str, name: str, dsig: Dsig, conformance_bytes: Read
) -> None:
    signer = dsig.pki.signer(kind)
    check = _verify(_signed(conformance_bytes, signer, name))
    expected = SignatureAlgorithm.RSA_SHA256 if kind == "rsa" else SignatureAlgorithm.ECDSA_SHA256
    assert check.algorithm is expected
    assert check.digest_algorithm is DigestAlgorithm.SHA256
    assert check.c14n_method is C14nMethod.EXC_C14N
    assert check.signer_certificate == signer.certificate
    assert check.certificates == signer.chain
    assert check.signature_namespace == XMLDSIG_NS


def test_the_verifying_certificate_comes_first_whatever_the_keyinfo_order(
    dsig: Dsig, conformance_bytes: Read
) -> None:
    signer = dsig.pki.rsa
    data = sign_xml(conformance_bytes(STATUS), signer.key, signer.chain)

    def ca_first(root: etree._Element) -> None:
        x509_data = dsig.child(dsig.signature_of(root), "X509Data")
        x509_data.insert(1, x509_data[-1])  # SubjectName, CA, leaf

    check = _verify(_edit(data, dsig, ca_first))
    assert check.certificates == (signer.certificate, dsig.pki.ca_certificate)


def test_ecdsa_signature_values_are_raw_r_and_s(dsig: Dsig, conformance_bytes: Read) -> None:
    data = _signed(conformance_bytes, dsig.pki.ec, STATUS)
    value = dsig.child(dsig.signature_of(dsig.parse(data)), "SignatureValue").text or ""
    raw = base64.b64decode(value)
    assert len(raw) == 64  # P-256: r and s, 32 bytes each

    def to_der(root: etree._Element) -> None:
        r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        element = dsig.child(dsig.signature_of(root), "SignatureValue")
        element.text = base64.b64encode(encode_dss_signature(r, s)).decode()

    assert _code(_edit(data, dsig, to_der)) == "signature.invalid"


def test_sha1_is_refused_where_the_policy_does_not_allow_it(
    dsig: Dsig, conformance_bytes: Read
) -> None:
    data = _signed(
        conformance_bytes,
        dsig.pki.rsa,
        algorithm=SignatureAlgorithm.RSA_SHA1,
        digest=DigestAlgorithm.SHA1,
    )
    assert _verify(data).algorithm is SignatureAlgorithm.RSA_SHA1
    assert _code(data, allowed=DEFAULT_ALLOWED) == "signature.unsupported_algorithm"


def test_a_header_with_only_the_signature_verifies(dsig: Dsig, conformance_bytes: Read) -> None:
    """The Signature is then the header's first child: the text before it is the header's."""

    def bare_header(root: etree._Element) -> None:
        header = dsig.find(root, "e:edXMLEnvelope/e:edXMLHeader")
        for element in list(header):
            header.remove(element)
        header.text = "\n  "

    unsigned = _edit(conformance_bytes(STATUS), dsig, bare_header)
    data = sign_xml(unsigned, dsig.pki.rsa.key, dsig.pki.rsa.chain)
    assert _verify(data).signer_certificate == dsig.pki.rsa.certificate
    assert _code(data.replace(b"\n  <Signature", b"\n <Signature")) == "signature.digest_mismatch"


# --- what sign_xml writes -------------------------------------------------------------------------


SIGNATURE_START = re.compile(rb"<Signature[\s>]")


def _lines_without_signature(data: bytes) -> list[bytes]:
    """The lines of ``data`` (CRLF as LF), the signature's lines left out."""
    lines, inside = [], False
    for line in data.replace(b"\r\n", b"\n").split(b"\n"):
        inside = inside or bool(SIGNATURE_START.search(line))
        if not inside:
            lines.append(line)
        inside = inside and b"</Signature>" not in line
    return lines


@pytest.mark.parametrize("name", [DOCUMENT, STATUS, "edoc_update.edxml"])
def test_signing_keeps_the_rest_of_the_document_as_it_was(
    name: str, dsig: Dsig, conformance_bytes: Read
) -> None:
    original = conformance_bytes(name)
    data = _signed(conformance_bytes, dsig.pki.rsa, name)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<edXML ')
    assert _lines_without_signature(data) == _lines_without_signature(original)
    assert len(SIGNATURE_START.findall(data)) == 1
    assert b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>' in data


@pytest.mark.parametrize(
    ("name", "after"), [(DOCUMENT, "TraceHeaderList"), (STATUS, "MessageHeader")]
)
def test_the_signature_goes_after_the_last_header_part(
    name: str, after: str, dsig: Dsig, conformance_bytes: Read
) -> None:
    root = dsig.parse(_signed(conformance_bytes, dsig.pki.ec, name))
    header = dsig.find(root, "e:edXMLEnvelope/e:edXMLHeader")
    assert [etree.QName(el).localname for el in header][-2:] == [after, "Signature"]
    assert header[-1].tag == f"{DS}Signature"


def test_resigning_replaces_every_old_signature(dsig: Dsig, conformance_bytes: Read) -> None:
    def extra_signature(root: etree._Element) -> None:
        stray = copy.deepcopy(dsig.signature_of(root))
        dsig.find(root, "e:AttachmentEncoded/e:Attachment").append(stray)

    twice = _edit(_signed(conformance_bytes, dsig.pki.ec), dsig, extra_signature)
    resigned = sign_xml(twice, dsig.pki.rsa.key, dsig.pki.rsa.chain)
    assert len(SIGNATURE_START.findall(resigned)) == 1
    assert _verify(resigned).signer_certificate == dsig.pki.rsa.certificate


def test_the_signature_lists_every_certificate_and_the_subject(
    dsig: Dsig, conformance_bytes: Read
) -> None:
    signature = dsig.signature_of(dsig.parse(_signed(conformance_bytes, dsig.pki.rsa)))
    x509_data = dsig.child(signature, "X509Data")
    names = [etree.QName(el).localname for el in x509_data]
    assert names == ["X509SubjectName", "X509Certificate", "X509Certificate"]
    assert x509_data[0].text == dsig.pki.rsa.certificate.subject.rfc4514_string()
    ders = [base64.b64decode(el.text or "") for el in list(x509_data)[1:]]
    assert ders == [c.public_bytes(serialization.Encoding.DER) for c in dsig.pki.rsa.chain]


def test_signing_refuses_a_key_that_is_not_the_certificates(
    dsig: Dsig, conformance_bytes: Read
) -> None:
    data = conformance_bytes(STATUS)
    with pytest.raises(ConfigError) as mismatch:
        sign_xml(data, dsig.pki.rsa.key, dsig.pki.intruder.chain)
    assert mismatch.value.code == "config.signing_key"
    with pytest.raises(ConfigError) as no_certificate:
        sign_xml(data, dsig.pki.rsa.key, [])
    assert no_certificate.value.code == "config.signing_key"
    ec_signer = dsig.pki.ec
    with pytest.raises(ConfigError) as wrong_algorithm:
        sign_xml(data, ec_signer.key, ec_signer.chain, algorithm=SignatureAlgorithm.RSA_SHA256)
    assert wrong_algorithm.value.code == "config.signing_key"


def test_signing_needs_an_edxml_header(dsig: Dsig) -> None:
    with pytest.raises(PackageError) as caught:
        sign_xml(b"<other/>", dsig.pki.rsa.key, dsig.pki.rsa.chain)
    assert caught.value.code == "edxml.missing_field"


# --- refusals, one rule at a time ---------------------------------------------------------------


def _set(local_name: str, attribute: str, value: str) -> Callable[[Dsig, etree._Element], None]:
    def change(dsig: Dsig, signature: etree._Element) -> None:
        dsig.child(signature, local_name).set(attribute, value)

    return change


def _unset(local_name: str, attribute: str) -> Callable[[Dsig, etree._Element], None]:
    def change(dsig: Dsig, signature: etree._Element) -> None:
        del dsig.child(signature, local_name).attrib[attribute]

    return change


def _add(parent: str, tag: str, **attrib: str) -> Callable[[Dsig, etree._Element], None]:
    def change(dsig: Dsig, signature: etree._Element) -> None:
        element = signature if parent == "Signature" else dsig.child(signature, parent)
        etree.SubElement(element, f"{DS}{tag}", attrib)

    return change


def _drop(local_name: str) -> Callable[[Dsig, etree._Element], None]:
    def change(dsig: Dsig, signature: etree._Element) -> None:
        element = dsig.child(signature, local_name)
        parent = element.getparent()
        assert parent is not None
        parent.remove(element)

    return change


def _duplicate(local_name: str) -> Callable[[Dsig, etree._Element], None]:
    def change(dsig: Dsig, signature: etree._Element) -> None:
        element = dsig.child(signature, local_name)
        element.addnext(copy.deepcopy(element))

    return change


def _set_text(local_name: str, text: str) -> Callable[[Dsig, etree._Element], None]:
    def change(dsig: Dsig, signature: etree._Element) -> None:
        dsig.child(signature, local_name).text = text

    return change


def _rename(local_name: str, tag: str) -> Callable[[Dsig, etree._Element], None]:
    def change(dsig: Dsig, signature: etree._Element) -> None:
        dsig.child(signature, local_name).tag = tag

    return change


def _swap_signed_info_and_value(dsig: Dsig, signature: etree._Element) -> None:
    signature.insert(0, dsig.child(signature, "SignatureValue"))


def _second_transform(uri: str) -> Callable[[Dsig, etree._Element], None]:
    def change(dsig: Dsig, signature: etree._Element) -> None:
        dsig.child(signature, "Transforms")[1].set("Algorithm", uri)

    return change


def _inclusive_namespaces(dsig: Dsig, signature: etree._Element) -> None:
    transform = dsig.child(signature, "Transforms")[1]
    ns = "http://www.w3.org/2001/10/xml-exc-c14n#"
    etree.SubElement(transform, f"{{{ns}}}InclusiveNamespaces", PrefixList="edXML")


def _many_certificates(dsig: Dsig, signature: etree._Element) -> None:
    certificate = dsig.child(signature, "X509Certificate")
    for _ in range(20):
        certificate.addnext(copy.deepcopy(certificate))


def _not_der(dsig: Dsig, signature: etree._Element) -> None:
    dsig.child(signature, "X509Certificate").text = base64.b64encode(b"not a certificate").decode()


XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
WITH_COMMENTS = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"
REFUSALS: dict[str, tuple[Callable[[Dsig, etree._Element], None], str]] = {
    "Reference without URI": (_unset("Reference", "URI"), "signature.bad_reference"),
    "Reference to an Id": (_set("Reference", "URI", "#hdr"), "signature.bad_reference"),
    "Reference with a Type": (
        _set("Reference", "Type", "http://www.w3.org/2000/09/xmldsig#Manifest"),
        "signature.bad_reference",
    ),
    "two References": (_duplicate("Reference"), "signature.bad_reference"),
    "no Transforms": (_drop("Transforms"), "signature.bad_transform"),
    "c14n only": (_drop("Transform"), "signature.bad_transform"),
    "an XPath transform": (_second_transform(XPATH), "signature.bad_transform"),
    "c14n with comments": (_second_transform(WITH_COMMENTS), "signature.bad_transform"),
    "three transforms": (_duplicate("Transform"), "signature.bad_transform"),
    "InclusiveNamespaces": (_inclusive_namespaces, "signature.bad_transform"),
    "SignedInfo c14n with comments": (
        _set("CanonicalizationMethod", "Algorithm", WITH_COMMENTS),
        "signature.unsupported_c14n",
    ),
    "SignedInfo c14n 1.1": (
        _set("CanonicalizationMethod", "Algorithm", "http://www.w3.org/2006/12/xml-c14n11"),
        "signature.unsupported_c14n",
    ),
    "HMAC": (
        _set("SignatureMethod", "Algorithm", "http://www.w3.org/2000/09/xmldsig#hmac-sha1"),
        "signature.unsupported_algorithm",
    ),
    "SHA-512 digest": (
        _set("DigestMethod", "Algorithm", "http://www.w3.org/2001/04/xmlenc#sha512"),
        "signature.unsupported_digest",
    ),
    "MD5 digest": (
        _set("DigestMethod", "Algorithm", "http://www.w3.org/2001/04/xmldsig-more#md5"),
        "signature.unsupported_digest",
    ),
    "no KeyInfo": (_drop("KeyInfo"), "signature.no_certificate"),
    "no X509Data": (_drop("X509Data"), "signature.no_certificate"),
    "a certificate that is not DER": (_not_der, "signature.bad_certificate"),
    "a certificate that is not base64": (
        _set_text("X509Certificate", "MIIFqTCCBJG"),
        "signature.bad_certificate",
    ),
    "too many certificates": (_many_certificates, "signature.malformed"),
    "SignatureValue not base64": (_set_text("SignatureValue", "%%%"), "signature.malformed"),
    "DigestValue not base64": (_set_text("DigestValue", "!"), "signature.malformed"),
    "children out of order": (_swap_signed_info_and_value, "signature.malformed"),
    "an Object": (_add("Signature", "Object"), "signature.object_not_allowed"),
    "a Manifest": (_add("Signature", "Manifest"), "signature.object_not_allowed"),
    "no SignatureValue": (_drop("SignatureValue"), "signature.malformed"),
    "SignedInfo in another namespace": (
        _rename("SignedInfo", "{urn:other}SignedInfo"),
        "signature.malformed",
    ),
    "DigestValue in the edXML namespace": (
        _rename("DigestValue", f"{EDX}DigestValue"),
        "signature.malformed",
    ),
}


@pytest.mark.parametrize("rule", list(REFUSALS))
def test_each_profile_rule_has_its_own_code(rule: str, dsig: Dsig, conformance_bytes: Read) -> None:
    change, code = REFUSALS[rule]
    data = _edit(
        _signed(conformance_bytes, dsig.pki.rsa, STATUS),
        dsig,
        lambda root: change(dsig, dsig.signature_of(root)),
    )
    assert _code(data) == code


def test_signature_parts_in_no_namespace_are_not_the_signatures(
    dsig: Dsig, conformance_bytes: Read
) -> None:
    data = _signed(conformance_bytes, dsig.pki.rsa, STATUS)
    assert (
        _code(data.replace(b"<SignedInfo>", b'<SignedInfo xmlns="">', 1)) == "signature.malformed"
    )


def test_the_document_and_the_signature_value_are_both_checked(
    dsig: Dsig, conformance_bytes: Read
) -> None:
    data = _signed(conformance_bytes, dsig.pki.rsa)
    forged = data.replace(b"000.00.00.A80", b"000.00.00.A81", 1)
    assert _code(forged) == "signature.digest_mismatch"

    def other_value(root: etree._Element) -> None:
        dsig.resign_signed_info(root, dsig.pki.intruder.key)

    assert _code(_edit(data, dsig, other_value)) == "signature.invalid"


def test_missing_and_multiple_signatures(dsig: Dsig, conformance_bytes: Read) -> None:
    assert _code(conformance_bytes(STATUS)) == "signature.missing"
    data = _signed(conformance_bytes, dsig.pki.rsa, STATUS)

    def twice(root: etree._Element) -> None:
        signature = dsig.signature_of(root)
        signature.addnext(copy.deepcopy(signature))

    assert _code(_edit(data, dsig, twice)) == "signature.multiple"


def test_placement_is_part_of_the_profile(dsig: Dsig, conformance_bytes: Read) -> None:
    data = _signed(conformance_bytes, dsig.pki.rsa)

    def before_trace_headers(root: etree._Element) -> None:
        dsig.find(root, "e:edXMLEnvelope/e:edXMLHeader/e:TraceHeaderList").addprevious(
            dsig.signature_of(root)
        )

    def in_body(root: etree._Element) -> None:
        dsig.find(root, "e:edXMLEnvelope/e:edXMLBody").append(dsig.signature_of(root))

    def under_root(root: etree._Element) -> None:
        root.append(dsig.signature_of(root))

    for move in (before_trace_headers, in_body, under_root):
        assert _code(_edit(data, dsig, move)) == "signature.bad_placement"

    def renamed_root(root: etree._Element) -> None:
        root.tag = f"{EDX}Other"

    assert _code(_edit(data, dsig, renamed_root)) == "signature.bad_placement"


def test_the_conformance_placeholders_fail_on_their_truncated_certificate(
    conformance_bytes: Read,
) -> None:
    for name in ("edoc_new.edxml", "edoc_replacement.edxml", "edoc_uuid_dc0bdef0.edxml"):
        assert _code(conformance_bytes(name)) == "signature.bad_certificate"


# --- signatures in the edXML namespace, built independently -------------------------------------


def _edxml_namespace_signature(
    data: bytes, dsig: Dsig, signer: Signer, method: str, digest: DigestAlgorithm
) -> bytes:
    """Fill the placeholder ``<Signature>`` (no xmlns: edXML namespace) the way VPCP signs.

    SignedInfo is canonicalised with inclusive c14n in that namespace; the document with exc-c14n
    under the producers' alias URI, after the enveloped-signature transform.
    """
    root = dsig.parse(data)
    signature = dsig.signature_of(root)
    assert signature.tag == f"{EDX}Signature"
    dsig.child(signature, "SignatureMethod").set("Algorithm", method)
    dsig.child(signature, "DigestMethod").set("Algorithm", digest.value)
    transforms = dsig.child(signature, "Transforms")
    assert transforms[1].get("Algorithm") == EXC_C14N_ALIAS
    # The enveloped-signature transform: the element goes, the text after it stays.
    without = copy.deepcopy(root)
    envelope_signature = dsig.signature_of(without)
    previous = envelope_signature.getprevious()
    assert previous is not None
    previous.tail = (previous.tail or "") + (envelope_signature.tail or "")
    envelope_signature.tail = None
    previous.getparent().remove(envelope_signature)  # type: ignore[union-attr]
    hasher = hashes.Hash(digest.hash_algorithm())
    hasher.update(etree.tostring(without, method="c14n", exclusive=True, with_comments=False))
    dsig.child(signature, "DigestValue").text = base64.b64encode(hasher.finalize()).decode()
    der = signer.certificate.public_bytes(serialization.Encoding.DER)
    dsig.child(signature, "X509Certificate").text = base64.b64encode(der).decode()
    dsig.resign_signed_info(root, signer.key)
    return dsig.tostring(root)


@pytest.mark.parametrize(
    "name", ["edoc_new.edxml", "edoc_revocation.edxml", "edoc_uuid_dc0bdef0.edxml"]
)
def test_edxml_namespace_signatures_verify(name: str, dsig: Dsig, conformance_bytes: Read) -> None:
    data = _edxml_namespace_signature(
        conformance_bytes(name),
        dsig,
        dsig.pki.rsa,
        SignatureAlgorithm.RSA_SHA1.value,
        DigestAlgorithm.SHA1,
    )
    check = _verify(data)
    assert check.signature_namespace == EDXML_NS
    assert check.algorithm is SignatureAlgorithm.RSA_SHA1
    assert check.c14n_method is C14nMethod.EXC_C14N
    assert check.signer_certificate == dsig.pki.rsa.certificate

    def other_sender(root: etree._Element) -> None:
        dsig.find(root, "e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader/e:From/e:OrganId").text = "X"

    assert _code(_edit(data, dsig, other_sender)) == "signature.digest_mismatch"


def test_edxml_namespace_signatures_with_ecdsa_and_sha256(
    dsig: Dsig, conformance_bytes: Read
) -> None:
    data = _edxml_namespace_signature(
        conformance_bytes("edoc_update.edxml"),
        dsig,
        dsig.pki.ec,
        SignatureAlgorithm.ECDSA_SHA256.value,
        DigestAlgorithm.SHA256,
    )
    check = _verify(data, allowed=DEFAULT_ALLOWED)
    assert (check.algorithm, check.digest_algorithm) == (
        SignatureAlgorithm.ECDSA_SHA256,
        DigestAlgorithm.SHA256,
    )

    def tampered_value(root: etree._Element) -> None:
        value = dsig.child(dsig.signature_of(root), "SignatureValue")
        raw = bytearray(base64.b64decode(value.text or ""))
        raw[-1] ^= 1
        value.text = base64.b64encode(bytes(raw)).decode()

    assert _code(_edit(data, dsig, tampered_value)) == "signature.invalid"
