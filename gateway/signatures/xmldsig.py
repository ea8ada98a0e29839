"""XML-DSig, narrow edXML profile: verify a package's one enveloped signature.

Profile: one ``Signature`` (xmldsig or edXML namespace) in ``edXMLEnvelope/edXMLHeader`` after
``MessageHeader``/``TraceHeaderList``; one ``Reference URI=""`` with transforms enveloped-signature
[+ one c14n]; c14n or exc-c14n; RSA/ECDSA; SHA-1/SHA-256 digests; the key from
``KeyInfo/X509Data/X509Certificate``. Anything else is a ``SignatureError`` with its own code.
``URI=""`` signs the whole document, so what a reader could see unsigned is what c14n drops:
comments (refused where they split text), a DTD and processing instructions outside the root.
The digest itself is ``enveloped.enveloped_digest``; ``sign_xml`` lives in ``xmldsig_signer``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import chain
from typing import TypeVar, cast

from cryptography import x509
from lxml import etree

from gateway.core.errors import SignatureError
from gateway.signatures.algorithms import (
    ALL_SUPPORTED,
    ENVELOPED_SIGNATURE,
    C14nMethod,
    DigestAlgorithm,
    SignatureAlgorithm,
)
from gateway.signatures.certificates import CACHED_CERTIFICATES, load_untrusted_der
from gateway.signatures.enveloped import (
    ENVELOPE_TAG,
    HEADER_TAG,
    ROOT_TAG,
    SIGNATURE_TAGS,
    SIGNED_BEFORE,
    enveloped_digest,
    subtree_c14n,
)
from gateway.signatures.xmldsig_signer import PrivateKey, sign_xml

__all__ = [
    "MAX_CERTIFICATES",
    "PrivateKey",
    "XmlSignatureCheck",
    "sign_xml",
    "verify_xml_signature",
]

MAX_CERTIFICATES = 16
_E = TypeVar("_E", SignatureAlgorithm, DigestAlgorithm, C14nMethod)


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
    root: etree._Element,
    *,
    allowed: frozenset[SignatureAlgorithm] = ALL_SUPPORTED,
    keep_tree: bool = True,
    document_bytes: int | None = None,
) -> XmlSignatureCheck:
    """Check the package's one enveloped signature; return what signed it, or raise SignatureError.

    ``root`` is the document root from ``load_xml``. It is left exactly as it was, but it is
    briefly modified while the document is canonicalised: do not read it from another thread.
    ``keep_tree=False``: large texts are left out of the tree afterwards (see ``enveloped_digest``);
    for a caller that has read all it needs from the tree before. ``document_bytes``: the size of
    the bytes ``root`` was parsed from, if known (no text is longer; see ``enveloped_digest``).
    """
    signature = _the_signature(root)
    namespace = _NAMESPACE_OF[signature.tag]
    children = _elements(signature, namespace)  # read by both: listed once
    info = _read_signed_info(children, namespace, allowed)
    certificates = _certificates(children, namespace)
    signed_info = subtree_c14n(info.element, info.c14n, document_bytes=document_bytes)
    leaf = _verifying_certificate(certificates, info, signed_info)
    actual = enveloped_digest(
        root,
        signature,
        info.reference_c14n,
        info.digest_algorithm,
        restore=keep_tree,
        text_chars_at_most=document_bytes,
    )
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


_NAMESPACE_OF = {tag: tag[1:].partition("}")[0] for tag in SIGNATURE_TAGS}
"""The namespace of each tag ``_the_signature`` finds (the xmldsig or the edXML one)."""


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
    for node in root.iter(etree.Comment, etree.Entity, *SIGNATURE_TAGS):
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
    placed = [el.tag for el in ancestors] == [HEADER_TAG, ENVELOPE_TAG, ROOT_TAG]
    if not placed or ancestors[-1] is not root:
        raise _fail("bad_placement", "the Signature must be a child of edXMLEnvelope/edXMLHeader")
    if any(sibling.tag in SIGNED_BEFORE for sibling in signature.itersiblings()):
        raise _fail("bad_placement", "the Signature must follow MessageHeader and TraceHeaderList")


def _elements(parent: etree._Element, namespace: str) -> list[tuple[str, etree._Element]]:
    """(local name, element) of the element children; other namespaces keep a ``{ns}`` prefix."""
    prefix = "{" + namespace + "}"
    cut, out = len(prefix), []
    for child in parent.iterchildren(etree.Element):  # not comments or processing instructions
        tag = child.tag
        if tag.startswith(prefix):
            out.append((tag[cut:], child))
        else:  # another namespace, or none: never equal to a bare local name
            out.append((tag if tag[:1] == "{" else "{}" + tag, child))
    return out


def _algorithm_of(element: etree._Element, code: str) -> str:
    if len(element) and _elements(element, ""):  # no child at all: no child element
        raise _fail(code, f"{etree.QName(element).localname} must not have child elements")
    return element.get("Algorithm", "")


_MEMBERS: dict[type[Enum], dict[str, Enum]] = {
    kind: {member.value: member for member in kind}
    for kind in (SignatureAlgorithm, DigestAlgorithm, C14nMethod)
}
"""Each algorithm enum's members by their URI: ``kind(uri)`` without ``Enum.__call__``."""


def _algorithm(kind: type[_E], element: etree._Element, code: str) -> _E:
    uri = _algorithm_of(element, code)
    member = _MEMBERS[kind].get(uri)
    if member is not None:
        return cast("_E", member)
    try:
        return kind(uri)  # an alias (``C14nMethod._missing_``), or ValueError
    except ValueError as exc:
        raise _fail(code, f"{etree.QName(element).localname} {uri!r} is not supported") from exc


def _base64_text(element: etree._Element, code: str) -> bytes:
    return _decoded(_text_only(element, code), element, code)


def _text_only(element: etree._Element, code: str) -> str:
    """The element's text; refused if it has none or has child elements."""
    text = element.text
    if len(element) or not text:
        raise _fail(code, f"{etree.QName(element).localname} must hold base64 text only")
    return text


def _decoded(text: str, source: etree._Element | str, code: str) -> bytes:
    """Strict base64 of ``text``, whitespace ignored (as XML-DSig writes it); ``source`` (the
    element, or its name) is named only in a refusal (spelling it costs more than decoding)."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        name = source if isinstance(source, str) else etree.QName(source).localname
        raise _fail(code, f"{name} is not valid base64") from exc


def _read_signed_info(
    children: list[tuple[str, etree._Element]],
    namespace: str,
    allowed: frozenset[SignatureAlgorithm],
) -> _SignedInfo:
    """``children``: the Signature's, as ``_elements`` lists them."""
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


_REFERENCE_ATTRIBUTES = frozenset({"URI", "Id"})


def _read_reference(
    reference: etree._Element, namespace: str
) -> tuple[C14nMethod, DigestAlgorithm, bytes]:
    if reference.get("URI") != "" or set(reference.keys()) - _REFERENCE_ATTRIBUTES:
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


def _certificates(
    children: list[tuple[str, etree._Element]], namespace: str
) -> list[x509.Certificate]:
    """``children``: the Signature's, as ``_elements`` lists them."""
    key_info = [el for name, el in children if name == "KeyInfo"]
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
        certificates.append(_certificate_of_text(_text_only(element, "bad_certificate")))
    return certificates


CACHED_TEXT_CHARS = 16 * 1024
"""``X509Certificate`` texts up to this long are remembered (a certificate is 1 to 3 KB of base64);
a longer one (padded with whitespace, say) is decoded each time, so the cache stays small."""


def _certificate_of_text(text: str) -> x509.Certificate:
    """The certificate an ``X509Certificate`` text encodes, or ``SignatureError``.

    The same signers' certificates arrive with every package: a text decoded once is not decoded
    (nor its DER looked up) again. Refusals are not cached (``lru_cache`` keeps no exception)."""
    if len(text) > CACHED_TEXT_CHARS:
        return _decode_certificate(text)
    return _remembered_certificate(text)


def _decode_certificate(text: str) -> x509.Certificate:
    der = _decoded(text, "X509Certificate", "bad_certificate")
    try:
        return load_untrusted_der(der)
    except ValueError as exc:
        raise _fail("bad_certificate", "an X509Certificate does not decode") from exc


_remembered_certificate = functools.lru_cache(maxsize=CACHED_CERTIFICATES)(_decode_certificate)


def _verifying_certificate(
    certificates: Sequence[x509.Certificate], info: _SignedInfo, signed_info_c14n: bytes
) -> x509.Certificate:
    for certificate in certificates:
        key = certificate.public_key()
        if info.algorithm.verifies(key, info.signature_value, signed_info_c14n):
            return certificate
    raise _fail("invalid", "the SignatureValue does not verify with any certificate in KeyInfo")
