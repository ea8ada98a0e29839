"""Large texts hashed beside lxml's c14n: the digest is the plain c14n digest, the tree unchanged.

``enveloped_digest`` lifts leaf texts of at least ``lift_chars`` characters out of the tree and
feeds them to the hash itself (c14n-escaped). Each package here is digested three ways: as shipped,
lifting every leaf text (``lift_chars=1``, also the texts inside the Signature, which are left
out), and lifting none (lxml's c14n of the whole tree): all three digests must agree, and the tree
must serialise byte for byte as before. signxml and libxmlsec1 judge packages with megabyte texts
signed by ``sign_xml``, and ``verify_xml_signature`` judges one signed by signxml.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from lxml import etree
from signxml.algorithms import SignatureConstructionMethod
from signxml.signer import XMLSigner

from gateway.core.errors import SignatureError
from gateway.edxml.hardened import load_xml
from gateway.edxml.model import EDXML_NS, XMLDSIG_NS
from gateway.signatures.algorithms import C14nMethod, DigestAlgorithm
from gateway.signatures.enveloped import HASH_SLICE_CHARS, LARGE_TEXT_CHARS, enveloped_digest
from gateway.signatures.xmldsig import sign_xml, verify_xml_signature

if TYPE_CHECKING:
    from conftest import Dsig

VALID = "valid"
EDX = f"{{{EDXML_NS}}}"
DS = f"{{{XMLDSIG_NS}}}"
ENCODED = re.compile(rb"(<edXML:ContentTransferEncoded[^>]*>)([^<]*)(<)")
DESCRIPTION = re.compile(rb"(<Description>)([^<]*)(<)")
BIG_CHARS = 2 * HASH_SLICE_CHARS + 12_345  # several hash slices, not a multiple of one
NO_LIFT = 1 << 62


def _base64_lines(size: int) -> bytes:
    """Random base64 in 76-character lines, as real producers write attachments."""
    encoded = base64.encodebytes(os.urandom(size * 3 // 4))
    assert len(encoded) >= LARGE_TEXT_CHARS
    return encoded


def _with_specials(size: int) -> bytes:
    """Text (as XML) with every character c14n escapes, quotes, and Vietnamese: not ASCII."""
    unit = "a&amp;b&lt;c&gt;d&#13;e&#xD;\"f'g Tiếng Việt có dấu; \n".encode()
    return unit * (size // len(unit) + 1)


def _ascii_specials(size: int) -> bytes:
    unit = b"QUJD&amp;&lt;&gt;&#13;=\r\n"  # the literal CR+LF is a LF once parsed
    return unit * (size // len(unit) + 1)


def _replace(pattern: re.Pattern[bytes], data: bytes, text: bytes) -> bytes:
    match = pattern.search(data)
    assert match is not None
    return data[: match.start(2)] + text + data[match.end(2) :]


def _mixed(data: bytes) -> bytes:
    """A big text that is not a leaf's (an element follows it): lxml's c14n digests it."""
    big = _base64_lines(BIG_CHARS)
    return _replace(DESCRIPTION, data, big + b"<Note>n</Note>" + big)


VARIANTS: dict[str, Callable[[bytes], bytes]] = {
    "as shipped": lambda data: data,  # a ~350 KB attachment: lifted by default
    "tiny attachment": lambda data: _replace(ENCODED, data, b"UEsDBBQACAgIAEuSPE0="),
    "big base64": lambda data: _replace(ENCODED, data, _base64_lines(BIG_CHARS)),
    "big base64, one line": lambda data: _replace(
        ENCODED, data, base64.b64encode(os.urandom(BIG_CHARS * 3 // 4))
    ),
    "big, escaped characters, not ASCII": lambda data: _replace(
        ENCODED, data, _with_specials(BIG_CHARS)
    ),
    "big ASCII, escaped characters": lambda data: _replace(
        ENCODED, data, _ascii_specials(BIG_CHARS)
    ),
    "two big texts": lambda data: _replace(
        DESCRIPTION, _replace(ENCODED, data, _base64_lines(BIG_CHARS)), _with_specials(BIG_CHARS)
    ),
    "big mixed content": _mixed,
}


@pytest.fixture(scope="module")
def variants(conformance_bytes: Callable[[str], bytes]) -> dict[str, bytes]:
    """Each variant of edoc_new, unsigned (the random ones fixed for the module)."""
    base = conformance_bytes("edoc_new.edxml")
    return {name: build(base) for name, build in VARIANTS.items()}


def _signature(root: etree._Element) -> etree._Element:
    found = root.find(f"{EDX}edXMLEnvelope/{EDX}edXMLHeader/{DS}Signature")
    assert found is not None
    return found


@pytest.mark.parametrize("digest", list(DigestAlgorithm), ids=lambda d: d.name)
@pytest.mark.parametrize("c14n", list(C14nMethod), ids=lambda m: m.name)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_lifting_texts_gives_the_plain_c14n_digest_and_leaves_the_tree(
    variant: str,
    c14n: C14nMethod,
    digest: DigestAlgorithm,
    variants: dict[str, bytes],
    dsig: Dsig,
) -> None:
    signer = dsig.pki.rsa
    data = sign_xml(variants[variant], signer.key, signer.chain, c14n=c14n, digest=digest)
    root = load_xml(data)
    signature = _signature(root)
    before = etree.tostring(root.getroottree())

    digests = [
        enveloped_digest(root, signature, c14n, digest, lift_chars=lift)
        for lift in (LARGE_TEXT_CHARS, 1, NO_LIFT)
    ]

    assert digests[0] == digests[1] == digests[2]
    assert etree.tostring(root.getroottree()) == before
    unrestored = load_xml(data)  # what the verifier does: the lifted texts are not put back
    assert (
        enveloped_digest(unrestored, _signature(unrestored), c14n, digest, restore=False)
        == (digests[0])
    )
    signed_value = dsig.child(signature, "DigestValue").text or ""
    assert base64.b64decode(signed_value) == digests[0]


@pytest.mark.parametrize(
    "variant", ["as shipped", "tiny attachment", "big, escaped characters, not ASCII"]
)
def test_the_documents_size_bounds_its_texts_and_spares_the_walk_of_small_ones(
    variant: str, variants: dict[str, bytes], dsig: Dsig
) -> None:
    """``text_chars_at_most`` (the verifier passes the package's size in bytes): a bound under
    ``lift_chars`` skips the walk for texts to lift; a text as long as its bytes still is lifted
    (a multi-byte character or a character reference takes more than one byte)."""
    signer = dsig.pki.rsa
    data = sign_xml(variants[variant], signer.key, signer.chain)
    c14n, digest = C14nMethod.EXC_C14N, DigestAlgorithm.SHA256
    reference = load_xml(data)
    plain = enveloped_digest(reference, _signature(reference), c14n, digest)
    original = dsig.find(reference, ".//e:ContentTransferEncoded").text or ""
    big = variant != "tiny attachment"
    assert (len(data) >= LARGE_TEXT_CHARS, len(original) >= LARGE_TEXT_CHARS) == (big, big)
    for bound, lifted in ((len(data), big), (LARGE_TEXT_CHARS - 1, False)):
        root = load_xml(data)
        signature, encoded = _signature(root), dsig.find(root, ".//e:ContentTransferEncoded")

        ours = enveloped_digest(
            root, signature, c14n, digest, restore=False, text_chars_at_most=bound
        )

        assert ours == plain
        assert (encoded.text != original) == lifted  # a lifted text is not put back


def test_the_plain_digest_is_lxmls_c14n_without_the_signature(
    variants: dict[str, bytes], dsig: Dsig
) -> None:
    """The no-lift reference itself, computed here from a copy without the Signature."""
    signer = dsig.pki.rsa
    data = sign_xml(variants["big, escaped characters, not ASCII"], signer.key, signer.chain)
    root = load_xml(data)
    expected_root = load_xml(data)
    signature = _signature(expected_root)
    parent = signature.getparent()
    assert parent is not None
    previous = signature.getprevious()
    assert previous is not None
    previous.tail = (previous.tail or "") + (signature.tail or "")
    parent.remove(signature)
    canonical = etree.tostring(expected_root, method="c14n", exclusive=True, with_comments=False)
    assert b"a&amp;b&lt;c&gt;d&#xD;e&#xD;\"f'g Ti\xe1\xba\xbfng" in canonical
    expected = hashes.Hash(hashes.SHA256())
    expected.update(canonical)
    ours = enveloped_digest(root, _signature(root), C14nMethod.EXC_C14N, DigestAlgorithm.SHA256)
    assert ours == expected.finalize()


BIG_VARIANTS = ["big base64", "big, escaped characters, not ASCII", "big ASCII, escaped characters"]


@pytest.mark.parametrize("c14n", list(C14nMethod), ids=lambda m: m.name)
@pytest.mark.parametrize("variant", BIG_VARIANTS)
def test_big_packages_verify_for_every_oracle_and_a_changed_character_fails(
    variant: str, c14n: C14nMethod, variants: dict[str, bytes], dsig: Dsig
) -> None:
    signer = dsig.pki.ec
    data = sign_xml(variants[variant], signer.key, signer.chain, c14n=c14n)
    assert (dsig.ours(data), dsig.reference(data), dsig.xmlsec(data)) == (VALID, VALID, VALID)

    root = dsig.parse(data)
    encoded = dsig.find(root, ".//e:ContentTransferEncoded")
    text = encoded.text or ""
    middle = len(text) // 2 + 1
    encoded.text = text[:middle] + ("A" if text[middle] != "A" else "B") + text[middle + 1 :]
    tampered = dsig.tostring(root)
    assert dsig.ours(tampered) == "signature.digest_mismatch"
    assert dsig.reference(tampered) != VALID
    assert dsig.xmlsec(tampered) != VALID


@pytest.mark.parametrize("c14n", [method.value for method in C14nMethod])
def test_a_big_package_signed_by_signxml_verifies(
    c14n: str, variants: dict[str, bytes], dsig: Dsig
) -> None:
    root = dsig.parse(variants["big, escaped characters, not ASCII"])
    for old in list(root.iter(f"{DS}Signature", f"{EDX}Signature")):  # the placeholder
        parent = old.getparent()
        assert parent is not None
        parent.remove(old)
    header = dsig.find(root, "e:edXMLEnvelope/e:edXMLHeader")
    anchor = [el for el in header if el.tag in (f"{EDX}MessageHeader", f"{EDX}TraceHeaderList")]
    anchor[-1].addnext(etree.Element(f"{DS}Signature", Id="placeholder", nsmap={"ds": XMLDSIG_NS}))
    xml_signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm="rsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm=c14n,
    )
    pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in dsig.pki.rsa.chain]
    data = etree.tostring(xml_signer.sign(root, key=dsig.pki.rsa.key, cert=pems))
    assert dsig.ours(data) == VALID


def test_a_signed_info_text_over_libxml2s_limit_is_a_signature_error(
    conformance_bytes: Callable[[str], bytes], dsig: Dsig
) -> None:
    """SignedInfo is canonicalised from a copy, which libxml2 refuses past 10 MB of text."""
    signer = dsig.pki.rsa
    root = dsig.parse(
        sign_xml(conformance_bytes("status_acceptance_03.edxml"), signer.key, signer.chain)
    )
    dsig.child(root, "DigestValue").text = "QUJD" * (11 * 1024 * 1024 // 4)
    loaded = load_xml(dsig.tostring(root))
    before = etree.tostring(loaded.getroottree())

    with pytest.raises(SignatureError) as caught:
        verify_xml_signature(loaded)

    assert caught.value.code == "signature.canonicalization_failed"
    assert etree.tostring(loaded.getroottree()) == before
