"""XML-DSig, narrow edXML profile: verify a package's one enveloped signature, or sign a package.

Profile: one ``Signature`` (xmldsig or edXML namespace) in ``edXMLEnvelope/edXMLHeader`` after
``MessageHeader``/``TraceHeaderList``; one ``Reference URI=""`` with transforms enveloped-signature
[+ one c14n]; c14n or exc-c14n; RSA/ECDSA; SHA-1/SHA-256 digests; the key from
``KeyInfo/X509Data/X509Certificate``. Anything else is a ``SignatureError`` with its own code.
``URI=""`` signs the whole document, so what a reader could see unsigned is what c14n drops:
comments (refused where they split text), a DTD and processing instructions outside the root.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import TypeVar, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from gateway.edxml.hardened import load_xml
from gateway.edxml.model import EDXML_NS, XMLDSIG_NS
from gateway.errors import ConfigError, PackageError, SignatureError
from gateway.signatures.algorithms import (
    ALL_SUPPORTED,
    ENVELOPED_SIGNATURE,
    C14nMethod,
    DigestAlgorithm,
    SignatureAlgorithm,
)

MAX_CERTIFICATES = 16
_SIGNATURE_TAGS = (f"{{{XMLDSIG_NS}}}Signature", f"{{{EDXML_NS}}}Signature")
_ROOT, _ENVELOPE, _HEADER = (
    f"{{{EDXML_NS}}}{n}" for n in ("edXML", "edXMLEnvelope", "edXMLHeader")
)
_SIGNED_BEFORE = frozenset(f"{{{EDXML_NS}}}{n}" for n in ("MessageHeader", "TraceHeaderList"))
_XML_DECLARATION = re.compile(rb"^(?:\xef\xbb\xbf)?<\?xml[^>]*\?>(\s*)")
_E = TypeVar("_E", SignatureAlgorithm, DigestAlgorithm, C14nMethod)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class XmlSignatureCheck:
    """What a valid signature says; whether its certificates are trusted is checked elsewhere."""

    algorithm: SignatureAlgorithm
    digest_algorithm: DigestAlgorithm
    c14n_method: C14nMethod  # the document's (the Reference's transform), not SignedInfo's
    signer_certificate: x509.Certificate
    certificates: tuple[x509.Certificate, ...]  # every X509Certificate, the verifying one first
    signature_namespace: str


@dataclass(frozen=True, slots=True)
class _SignedInfo:
    """The parsed, profile-checked parts of one Signature."""

    element: etree._Element
    c14n: C14nMethod
    algorithm: SignatureAlgorithm
    reference_c14n: C14nMethod
    digest_algorithm: DigestAlgorithm
    digest_value: bytes
    signature_value: bytes


def _fail(code: str, message: str) -> SignatureError:
    return SignatureError(message, code=f"signature.{code}")


def verify_xml_signature(
    root: etree._Element, *, allowed: frozenset[SignatureAlgorithm] = ALL_SUPPORTED
) -> XmlSignatureCheck:
    """Check the package's one enveloped signature; return what signed it, or raise SignatureError.

    ``root`` is the document root from ``load_xml``. It is left exactly as it was, but it is
    briefly modified while the document is canonicalised: do not read it from another thread.
    """
    signature = _the_signature(root)
    namespace = etree.QName(signature).namespace or ""
    info = _read_signed_info(signature, namespace, allowed)
    certificates = _certificates(signature, namespace)
    leaf = _verifying_certificate(certificates, info, _subtree_c14n(info.element, info.c14n))
    actual = _enveloped_digest(root, signature, info.reference_c14n, info.digest_algorithm)
    if not hmac.compare_digest(actual, info.digest_value):
        raise _fail("digest_mismatch", "the document does not match the signed digest")
    others = tuple(c for c in certificates if c is not leaf)
    return XmlSignatureCheck(
        algorithm=info.algorithm,
        digest_algorithm=info.digest_algorithm,
        c14n_method=info.reference_c14n,
        signer_certificate=leaf,
        certificates=(leaf, *others),
        signature_namespace=namespace,
    )


def _the_signature(root: etree._Element) -> etree._Element:
    """The one Signature element, after refusing content a reader could see unsigned."""
    docinfo = root.getroottree().docinfo
    dtds = cast("tuple[etree.DTD | None, ...]", (docinfo.internalDTD, docinfo.externalDTD))
    if any(dtd is not None for dtd in dtds):
        raise _fail("dtd_not_allowed", "a signed package must not have a DOCTYPE")
    for sibling in chain(root.itersiblings(preceding=True), root.itersiblings()):
        if isinstance(sibling, etree._ProcessingInstruction):
            raise _fail("unsigned_content", "processing instruction outside the root element")
    found: list[etree._Element] = []
    for node in root.iter(etree.Comment, etree.Entity, *_SIGNATURE_TAGS):
        if isinstance(node, etree._Entity):
            raise _fail("dtd_not_allowed", f"entity reference {node.text} in a signed package")
        if isinstance(node, etree._Comment):
            if node.tail and node.tail.strip():
                raise _fail("unsigned_content", "a comment splits text: the reader would miss text")
        else:
            found.append(node)
    if not found:
        raise _fail("missing", "the package has no Signature element")
    if len(found) > 1:
        raise _fail("multiple", f"the package has {len(found)} Signature elements")
    _check_placement(root, found[0])
    return found[0]


def _check_placement(root: etree._Element, signature: etree._Element) -> None:
    ancestors = list(signature.iterancestors())
    if [el.tag for el in ancestors] != [_HEADER, _ENVELOPE, _ROOT] or ancestors[-1] is not root:
        raise _fail("bad_placement", "the Signature must be a child of edXMLEnvelope/edXMLHeader")
    if any(sibling.tag in _SIGNED_BEFORE for sibling in signature.itersiblings()):
        raise _fail("bad_placement", "the Signature must follow MessageHeader and TraceHeaderList")


def _elements(parent: etree._Element, namespace: str) -> list[tuple[str, etree._Element]]:
    """(local name, element) of the element children; other namespaces keep a ``{ns}`` prefix."""
    prefix, out = f"{{{namespace}}}", []
    for child in parent.iterchildren(etree.Element):  # not comments or processing instructions
        tag = child.tag
        if tag.startswith(prefix):
            out.append((tag[len(prefix) :], child))
        else:  # another namespace, or none: never equal to a bare local name
            out.append((tag if tag.startswith("{") else "{}" + tag, child))
    return out


def _algorithm_of(element: etree._Element, code: str) -> str:
    if _elements(element, ""):
        raise _fail(code, f"{etree.QName(element).localname} must not have child elements")
    return element.get("Algorithm", "")


def _algorithm(kind: type[_E], element: etree._Element, code: str) -> _E:
    uri = _algorithm_of(element, code)
    try:
        return kind(uri)
    except ValueError as exc:
        raise _fail(code, f"{etree.QName(element).localname} {uri!r} is not supported") from exc


def _base64_text(element: etree._Element, code: str) -> bytes:
    if len(element) or not element.text:
        raise _fail(code, f"{etree.QName(element).localname} must hold base64 text only")
    try:
        return base64.b64decode("".join(element.text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _fail(code, f"{etree.QName(element).localname} is not valid base64") from exc


def _read_signed_info(
    signature: etree._Element, namespace: str, allowed: frozenset[SignatureAlgorithm]
) -> _SignedInfo:
    children = _elements(signature, namespace)
    names = [name for name, _ in children]
    if "Object" in names or "Manifest" in names:
        raise _fail("object_not_allowed", "Object elements are not part of the edXML profile")
    if names[:2] != ["SignedInfo", "SignatureValue"] or names[2:] not in ([], ["KeyInfo"]):
        raise _fail("malformed", f"want SignedInfo, SignatureValue, KeyInfo, not {names}")
    signed_info = children[0][1]
    parts = _elements(signed_info, namespace)
    if [name for name, _ in parts[:2]] != ["CanonicalizationMethod", "SignatureMethod"]:
        raise _fail("malformed", "SignedInfo must start CanonicalizationMethod, SignatureMethod")
    if any(name != "Reference" for name, _ in parts[2:]):
        raise _fail("malformed", "SignedInfo may only hold References after SignatureMethod")
    if len(parts) != 3:
        raise _fail("bad_reference", f"exactly one Reference is required, found {len(parts) - 2}")
    c14n = _algorithm(C14nMethod, parts[0][1], "unsupported_c14n")
    algorithm = _algorithm(SignatureAlgorithm, parts[1][1], "unsupported_algorithm")
    if algorithm not in allowed:
        raise _fail("unsupported_algorithm", f"{algorithm.short_name} is not allowed here")
    reference_c14n, digest_algorithm, digest_value = _read_reference(parts[2][1], namespace)
    return _SignedInfo(
        element=signed_info,
        c14n=c14n,
        algorithm=algorithm,
        reference_c14n=reference_c14n,
        digest_algorithm=digest_algorithm,
        digest_value=digest_value,
        signature_value=_base64_text(children[1][1], "malformed"),
    )


def _read_reference(
    reference: etree._Element, namespace: str
) -> tuple[C14nMethod, DigestAlgorithm, bytes]:
    if reference.get("URI") != "" or set(reference.attrib) - {"URI", "Id"}:
        raise _fail("bad_reference", 'the Reference must be URI="" (the whole document)')
    parts = _elements(reference, namespace)
    names = [name for name, _ in parts]
    if names != ["Transforms", "DigestMethod", "DigestValue"]:
        code = "bad_transform" if names[:1] != ["Transforms"] else "malformed"
        raise _fail(code, f"Reference must hold Transforms, DigestMethod, DigestValue: {names}")
    transforms = _elements(parts[0][1], namespace)
    if any(name != "Transform" for name, _ in transforms):
        raise _fail("bad_transform", "Transforms may only hold Transform elements")
    uris = [_algorithm_of(element, "bad_transform") for _, element in transforms]
    if not 1 <= len(uris) <= 2 or uris[0] != ENVELOPED_SIGNATURE:
        raise _fail("bad_transform", "transforms must be enveloped-signature, then at most a c14n")
    # Without an explicit c14n transform the node-set is serialised with inclusive c14n.
    c14n = _algorithm(C14nMethod, transforms[1][1], "bad_transform") if len(uris) == 2 else None
    digest_algorithm = _algorithm(DigestAlgorithm, parts[1][1], "unsupported_digest")
    return c14n or C14nMethod.C14N, digest_algorithm, _base64_text(parts[2][1], "malformed")


def _certificates(signature: etree._Element, namespace: str) -> list[x509.Certificate]:
    key_info = [el for name, el in _elements(signature, namespace) if name == "KeyInfo"]
    if not key_info:
        raise _fail("no_certificate", "the Signature has no KeyInfo")
    encoded: list[etree._Element] = []  # other KeyInfo content (KeyName, KeyValue...) is ignored
    for name, element in _elements(key_info[0], namespace):
        if name == "X509Data":
            encoded += [el for n, el in _elements(element, namespace) if n == "X509Certificate"]
    if not encoded:
        raise _fail("no_certificate", "KeyInfo has no X509Data/X509Certificate")
    if len(encoded) > MAX_CERTIFICATES:
        raise _fail("malformed", f"more than {MAX_CERTIFICATES} certificates in KeyInfo")
    certificates = []
    for element in encoded:
        der = _base64_text(element, "bad_certificate")
        try:
            certificates.append(x509.load_der_x509_certificate(der))
        except ValueError as exc:
            raise _fail("bad_certificate", "an X509Certificate does not decode") from exc
    return certificates


def _verifying_certificate(
    certificates: Sequence[x509.Certificate], info: _SignedInfo, signed_info_c14n: bytes
) -> x509.Certificate:
    for certificate in certificates:
        key = certificate.public_key()
        if info.algorithm.verifies(key, info.signature_value, signed_info_c14n):
            return certificate
    raise _fail("invalid", "the SignatureValue does not verify with any certificate in KeyInfo")


def _c14n(element: etree._Element, method: C14nMethod) -> bytes:
    try:
        exclusive = method.exclusive
        return etree.tostring(element, method="c14n", exclusive=exclusive, with_comments=False)
    except etree.LxmlError as exc:
        raise _fail("canonicalization_failed", f"lxml cannot canonicalise: {exc}") from exc


def _subtree_c14n(element: etree._Element, method: C14nMethod) -> bytes:
    """C14n of a subtree (SignedInfo), as the W3C specifies it.

    lxml's c14n of a non-root element emits a spurious ``xmlns=""`` two levels down when the
    default namespace is declared above it (so ``Reference/Transforms`` of a default-namespace
    Signature come out in no namespace). Serialising the subtree first declares every in-scope
    namespace on it; canonicalising that copy gives the correct result.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return _c14n(etree.fromstring(etree.tostring(element), parser), method)


def _enveloped_digest(
    root: etree._Element, signature: etree._Element, method: C14nMethod, digest: DigestAlgorithm
) -> bytes:
    """Digest of the document without the Signature element (its tail text stays), per URI="".

    Detaching the element would make lxml rewrite its namespace declarations, so instead two random
    markers bracket it in the surrounding text, and the bytes between them are left out of the hash.
    """
    start, end = (f"lgsp{secrets.token_hex(16)}".encode("ascii") for _ in range(2))
    with _bracketed(signature, start.decode("ascii"), end.decode("ascii")):
        canonical = _c14n(root, method)
    head = canonical.find(start)
    tail = canonical.find(end, head + len(start))
    if head < 0 or tail < 0:  # cannot happen: both markers are in the text lxml serialises
        raise _fail("canonicalization_failed", "could not locate the Signature in the c14n output")
    hasher, view = hashes.Hash(digest.hash_algorithm()), memoryview(canonical)
    hasher.update(view[:head])
    hasher.update(view[tail + len(end) :])
    return hasher.finalize()


@contextmanager
def _bracketed(signature: etree._Element, start: str, end: str) -> Iterator[None]:
    """Put ``start`` just before and ``end`` just after ``signature``; restore the text on exit."""
    before, after = _text_before(signature), signature.tail
    try:
        _set_text_before(signature, (before or "") + start)
        signature.tail = end + (after or "")
        yield
    finally:
        _set_text_before(signature, before)
        signature.tail = after


def _text_before(element: etree._Element) -> str | None:
    previous, parent = element.getprevious(), element.getparent()
    assert parent is not None
    return previous.tail if previous is not None else parent.text


def _set_text_before(element: etree._Element, text: str | None) -> None:
    previous, parent = element.getprevious(), element.getparent()
    assert parent is not None
    if previous is not None:
        previous.tail = text
    else:
        parent.text = text


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
    digest_value = _enveloped_digest(root, signature, c14n, digest)
    _ds_child(signature, "SignedInfo/ds:Reference/ds:DigestValue").text = _b64(digest_value)
    signed_info = _subtree_c14n(_ds_child(signature, "SignedInfo"), c14n)
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
    if root.tag != _ROOT or header is None:
        raise PackageError("no edXMLEnvelope/edXMLHeader to sign", code="edxml.missing_field")
    for old in list(root.iter(*_SIGNATURE_TAGS)):
        _remove(old)
    anchors = [child for child in header if child.tag in _SIGNED_BEFORE]
    if not anchors:
        header.append(signature)
        return
    anchor = anchors[-1]
    indent = _text_before(anchor)
    anchor.addnext(signature)
    if indent is not None and not indent.strip() and anchor.tail is not None:
        signature.tail, anchor.tail = anchor.tail, indent


def _remove(element: etree._Element) -> None:
    """Remove ``element``, keeping the text around it (if only whitespace: what followed it)."""
    before, after = _text_before(element) or "", element.tail or ""
    element.tail = None
    _set_text_before(element, after if not (before + after).strip() else before + after)
    parent = element.getparent()
    assert parent is not None
    parent.remove(element)
