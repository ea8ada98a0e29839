"""XML-DSig signing, narrow edXML profile: replace a package's signatures with one enveloped one.

The Signature is an xmldsig-namespace ``Signature`` after ``TraceHeaderList`` (documents) or
``MessageHeader`` (status packages) in ``edXMLEnvelope/edXMLHeader``, with one ``Reference URI=""``
(enveloped-signature, then the chosen c14n) and the signer's certificates in ``KeyInfo``: exactly
what ``xmldsig.verify_xml_signature`` accepts.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from gateway.core.errors import ConfigError, PackageError
from gateway.edxml.hardened import load_xml
from gateway.edxml.model import EDXML_NS, XMLDSIG_NS
from gateway.signatures.algorithms import (
    ENVELOPED_SIGNATURE,
    C14nMethod,
    DigestAlgorithm,
    SignatureAlgorithm,
)
from gateway.signatures.enveloped import (
    ROOT_TAG,
    SIGNATURE_TAGS,
    SIGNED_BEFORE,
    enveloped_digest,
    set_text_before,
    subtree_c14n,
    text_before,
)

_XML_DECLARATION = re.compile(rb"^(?:\xef\xbb\xbf)?<\?xml[^>]*\?>(\s*)")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def sign_xml(
    data: bytes,
    key: PrivateKey,
    certificates: Sequence[x509.Certificate],
    *,
    algorithm: SignatureAlgorithm | None = None,
    c14n: C14nMethod = C14nMethod.EXC_C14N,
    digest: DigestAlgorithm = DigestAlgorithm.SHA256,
) -> bytes:
    """Sign an edXML package: replace any Signature with one enveloped xmldsig Signature.

    The rest of the document is re-serialised by lxml without pretty printing, so it keeps its
    layout; the original XML declaration is kept verbatim.
    """
    chosen = _signing_algorithm(key, certificates, algorithm)
    root = load_xml(data)
    signature = _new_signature(chosen, c14n, digest, certificates)
    _place(root, signature)
    digest_value = enveloped_digest(root, signature, c14n, digest)
    _ds_child(signature, "SignedInfo/ds:Reference/ds:DigestValue").text = _b64(digest_value)
    signed_info = subtree_c14n(_ds_child(signature, "SignedInfo"), c14n)
    _ds_child(signature, "SignatureValue").text = _b64(chosen.sign(key, signed_info))
    return _serialise(data, root)


def _serialise(data: bytes, root: etree._Element) -> bytes:
    """lxml's serialisation, no pretty printing; ``data``'s XML declaration kept verbatim."""
    tree, head = root.getroottree(), b""
    body = etree.tostring(tree, encoding=tree.docinfo.encoding or "UTF-8", xml_declaration=False)
    assert isinstance(body, bytes)
    declaration = _XML_DECLARATION.match(data)
    if declaration is not None:  # then one newline if any whitespace followed it
        head = declaration.group(0)[: declaration.start(1)] + (b"\n" if declaration[1] else b"")
    return head + body + (b"\n" if data[-1:].isspace() else b"")


def _signing_algorithm(
    key: PrivateKey, certificates: Sequence[x509.Certificate], algorithm: SignatureAlgorithm | None
) -> SignatureAlgorithm:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if not certificates or certificates[0].public_key().public_bytes(*spki) != (
        key.public_key().public_bytes(*spki)
    ):
        raise ConfigError("the first certificate must be the key's", code="config.signing_key")
    default = SignatureAlgorithm.RSA_SHA256, SignatureAlgorithm.ECDSA_SHA256
    chosen = algorithm or default[0 if isinstance(key, rsa.RSAPrivateKey) else 1]
    if not chosen.fits(key):
        raise ConfigError(f"{chosen.short_name} does not fit the key", code="config.signing_key")
    return chosen


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _ds_child(element: etree._Element, path: str) -> etree._Element:
    found = element.find(f"ds:{path}", namespaces={"ds": XMLDSIG_NS})
    assert found is not None
    return found


def _new_signature(
    algorithm: SignatureAlgorithm,
    c14n: C14nMethod,
    digest: DigestAlgorithm,
    certificates: Sequence[x509.Certificate],
) -> etree._Element:
    def sub(parent: etree._Element, name: str, **attrib: str) -> etree._Element:
        return etree.SubElement(parent, f"{{{XMLDSIG_NS}}}{name}", attrib)

    signature = etree.fromstring(f'<Signature xmlns="{XMLDSIG_NS}"/>')
    signed_info = sub(signature, "SignedInfo")
    sub(signed_info, "CanonicalizationMethod", Algorithm=c14n.value)
    sub(signed_info, "SignatureMethod", Algorithm=algorithm.value)
    reference = sub(signed_info, "Reference", URI="")
    transforms = sub(reference, "Transforms")
    sub(transforms, "Transform", Algorithm=ENVELOPED_SIGNATURE)
    sub(transforms, "Transform", Algorithm=c14n.value)
    sub(reference, "DigestMethod", Algorithm=digest.value)
    sub(reference, "DigestValue")
    sub(signature, "SignatureValue")
    x509_data = sub(sub(signature, "KeyInfo"), "X509Data")
    sub(x509_data, "X509SubjectName").text = certificates[0].subject.rfc4514_string()
    for certificate in certificates:
        der = certificate.public_bytes(serialization.Encoding.DER)
        sub(x509_data, "X509Certificate").text = _b64(der)
    return signature


def _place(root: etree._Element, signature: etree._Element) -> None:
    """Put ``signature`` after TraceHeaderList (documents) or MessageHeader (status packages)."""
    header = root.find(f"{{{EDXML_NS}}}edXMLEnvelope/{{{EDXML_NS}}}edXMLHeader")
    if root.tag != ROOT_TAG or header is None:
        raise PackageError("no edXMLEnvelope/edXMLHeader to sign", code="edxml.missing_field")
    for old in list(root.iter(*SIGNATURE_TAGS)):
        _remove(old)
    anchors = [child for child in header if child.tag in SIGNED_BEFORE]
    if not anchors:
        header.append(signature)
        return
    anchor = anchors[-1]
    indent = text_before(anchor)
    anchor.addnext(signature)
    if indent is not None and not indent.strip() and anchor.tail is not None:
        signature.tail, anchor.tail = anchor.tail, indent


def _remove(element: etree._Element) -> None:
    """Remove ``element``, keeping the text around it (if only whitespace: what followed it)."""
    before, after = text_before(element) or "", element.tail or ""
    element.tail = None
    set_text_before(element, after if not (before + after).strip() else before + after)
    parent = element.getparent()
    assert parent is not None
    parent.remove(element)
