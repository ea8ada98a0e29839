"""SignedInfo's exclusive c14n in place: byte for byte the c14n of its serialised copy."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from lxml import etree

from gateway.core.errors import SignatureError
from gateway.edxml.hardened import load_xml
from gateway.edxml.model import EDXML_NS, XMLDSIG_NS
from gateway.signatures.algorithms import C14nMethod
from gateway.signatures.enveloped import (
    IN_PLACE_C14N_BYTES,
    c14n,
    copied_subtree_c14n,
    subtree_c14n,
)
from gateway.signatures.xmldsig import sign_xml, verify_xml_signature

if TYPE_CHECKING:
    from conftest import DsigPki

EXC = C14nMethod.EXC_C14N
SIGNED_INFO = (
    '<{p}SignedInfo{si_attrs}>{c}<{p}CanonicalizationMethod Algorithm="{exc}"/>'
    '<{p}SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>\n'
    '<{p}Reference URI=""{ref_attrs}><{p}Transforms{tr_attrs}>'
    '<{p}Transform Algorithm="{ds}enveloped-signature"/>{inner}'
    '<{p}Transform Algorithm="{exc}"/></{p}Transforms>'
    '<{p}DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>'
    "<{p}DigestValue>{digest}</{p}DigestValue></{p}Reference></{p}SignedInfo>"
)
# Where the Signature's namespace is bound: (prefix in the tags, on the root, on the Signature).
BINDINGS = {
    "default on the Signature": ("", "", f' xmlns="{XMLDSIG_NS}"'),
    "ds: on the Signature": ("ds:", "", f' xmlns:ds="{XMLDSIG_NS}"'),
    "ds: on the root": ("ds:", f' xmlns:ds="{XMLDSIG_NS}"', ""),
    "ds: on the root and again on the Signature": (
        "ds:",
        f' xmlns:ds="{XMLDSIG_NS}"',
        f' xmlns:ds="{XMLDSIG_NS}"',
    ),
    "edXML namespace, edXML: prefix": ("edXML:", "", ""),
    "edXML namespace, the root's default": ("", "", ""),
    "edXML namespace, another prefix": ("s:", "", f' xmlns:s="{EDXML_NS}"'),
}
EXTRA_DECLARATIONS = (
    "",
    ' xmlns:foo="urn:foo"',
    ' xmlns:foo="urn:foo" xmlns:bar="urn:bar"',
    f' xmlns:alias="{XMLDSIG_NS}"',
)
ATTRIBUTES = ("", ' Id="si-1"', ' foo:mark="1" xml:lang="vi"', ' a="&lt;&amp;&quot;&#13;&#9;&gt;"')
INNER = (
    "",
    "<!-- a comment -->",
    "\n  ",
    '<x xmlns="">no namespace</x>',
    '<foo:x xmlns:foo="urn:foo2">rebound</foo:x>',
    f'<alias2:x xmlns:alias2="{XMLDSIG_NS}" foo:y="z"/>',
)


def _document(binding: str, extra: str, attrs: str, inner: str) -> bytes:
    prefix, on_root, on_signature = BINDINGS[binding]
    signed_info = SIGNED_INFO.format(
        p=prefix,
        si_attrs=attrs,
        c="<!--c-->" if inner else "",
        exc="http://www.w3.org/2001/10/xml-exc-c14n#",
        ds="http://www.w3.org/2000/09/xmldsig#",
        ref_attrs=attrs.replace("si-1", "ref-1"),
        tr_attrs=extra,
        inner=inner,
        digest="Pmh12E1Z sQoa1z&#13;Qv\nGFVsHeOGYs1KO+86/wN4FzTBnvU=",
    )
    return (
        f'<edXML xmlns="{EDXML_NS}" xmlns:foo="urn:foo"{on_root}>'
        f'<edXML:edXMLEnvelope xmlns:edXML="{EDXML_NS}"{extra}><edXML:edXMLHeader>'
        f"<{prefix}Signature{on_signature}{extra}>{signed_info}</{prefix}Signature>"
        "</edXML:edXMLHeader></edXML:edXMLEnvelope></edXML>"
    ).encode()


def _signed_info(root: etree._Element) -> etree._Element:
    found = [el for el in root.iter(etree.Element) if etree.QName(el).localname == "SignedInfo"]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("binding", sorted(BINDINGS))
def test_exclusive_c14n_in_place_is_the_copys(binding: str) -> None:
    """Every way of binding the Signature's namespace, with declarations above and inside
    SignedInfo (used, unused, aliases, rebound, undeclared default), attributes in the xml: and
    other namespaces, escapes, comments and whitespace: the in-place bytes are the copy's."""
    for extra, attrs, inner in itertools.product(EXTRA_DECLARATIONS, ATTRIBUTES, INNER):
        data = _document(binding, extra, attrs, inner)
        signed_info = _signed_info(load_xml(data))
        reference = copied_subtree_c14n(signed_info, EXC)
        assert c14n(signed_info, EXC) == reference, data
        assert subtree_c14n(signed_info, EXC, document_bytes=len(data)) == reference
        # the copy is still what inclusive c14n, and a document of unknown size, get
        inclusive = copied_subtree_c14n(signed_info, C14nMethod.C14N)
        assert subtree_c14n(signed_info, C14nMethod.C14N, document_bytes=len(data)) == inclusive
        assert subtree_c14n(signed_info, EXC) == reference


def test_exclusive_c14n_in_place_on_every_conformance_package(
    conformance_bytes: Callable[[str], bytes], package_name: str, dsig_pki: DsigPki
) -> None:
    signer = dsig_pki.rsa
    for method in C14nMethod:
        data = sign_xml(conformance_bytes(package_name), signer.key, signer.chain, c14n=method)
        signed_info = _signed_info(load_xml(data))
        assert c14n(signed_info, EXC) == copied_subtree_c14n(signed_info, EXC)


def test_a_package_too_large_for_the_bound_still_has_its_signed_info_copied(
    conformance_bytes: Callable[[str], bytes], dsig_pki: DsigPki
) -> None:
    """A name libxml2 refuses in the copy (over 50,000 characters) can only be in a document
    of at least that many bytes: it is refused as before, told the document's size or not."""
    signer = dsig_pki.rsa
    data = sign_xml(conformance_bytes("status_acceptance_03.edxml"), signer.key, signer.chain)
    root = load_xml(data)
    _signed_info(root).set("a" * (IN_PLACE_C14N_BYTES + 1), "1")
    data = etree.tostring(root)
    assert len(data) > IN_PLACE_C14N_BYTES
    for document_bytes in (len(data), None):
        with pytest.raises(SignatureError) as caught:
            verify_xml_signature(load_xml(data), document_bytes=document_bytes)
        assert caught.value.code == "signature.canonicalization_failed"
