"""XML-DSig test PKI (a tiny CA issuing RSA-2048 and P-256 signers) and the verdict oracles.

``ours`` is the gateway's path: hardened load, the narrow-profile verifier, then the same X.509
chain check signxml makes, so the oracles judge the same thing. ``reference`` is signxml's
XMLVerifier, pinned to the edXML signature location and one reference, SHA-1 allowed. ``xmlsec``
(libxmlsec1: node-set c14n, a different code path from lxml's) is the tie-breaker for
xmldsig-namespace signatures.
Independent helpers (lxml c14n + cryptography, never the code under test) re-sign a SignedInfo
that a test has modified, so a vector fails only on the rule it is about.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID
from lxml import etree
from samples import CONFORMANCE_DIR, MALFORMED_SAMPLES
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.verifier import SignatureConfiguration, XMLVerifier

from gateway.core.errors import LgspError
from gateway.edxml.hardened import load_xml
from gateway.edxml.model import EDXML_NS, XMLDSIG_NS
from gateway.signatures.algorithms import ALL_SUPPORTED, SignatureAlgorithm
from gateway.signatures.xmldsig import verify_xml_signature

# edoc.edxml is not well-formed (a <From> inside <From> is never closed): it cannot be signed.
UNSIGNABLE = MALFORMED_SAMPLES
SIGNABLE = sorted(p.name for p in CONFORMANCE_DIR.glob("*.edxml") if p.name not in UNSIGNABLE)

DS = {"ds": XMLDSIG_NS}
EDX = {"e": EDXML_NS}
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
VALID = "valid"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``package_name``: every conformance package that can be (re-)signed."""
    if "package_name" in metafunc.fixturenames:
        metafunc.parametrize("package_name", SIGNABLE)


@dataclass(frozen=True)
class Signer:
    key: PrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # leaf first, then the CA


@dataclass(frozen=True)
class DsigPki:
    ca_certificate: x509.Certificate
    ca_pem: Path
    rsa: Signer
    ec: Signer
    intruder: Signer  # another RSA signer of the same CA

    def signer(self, kind: str) -> Signer:
        return {"rsa": self.rsa, "ec": self.ec, "intruder": self.intruder}[kind]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, key: PrivateKey, issuer: tuple[x509.Name, PrivateKey] | None, *, ca: bool
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    usage = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement"), False
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
                **usage,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
        builder = builder.add_extension(aki, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="session")
def dsig_pki(tmp_path_factory: pytest.TempPathFactory) -> DsigPki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("LGSP XML-DSig test CA", ca_key, None, ca=True)

    def issue(common_name: str, key: PrivateKey) -> Signer:
        leaf = _certificate(common_name, key, (ca.subject, ca_key), ca=False)
        return Signer(key, leaf, (leaf, ca))

    ca_pem = tmp_path_factory.mktemp("dsig-ca") / "ca.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return DsigPki(
        ca_certificate=ca,
        ca_pem=ca_pem,
        rsa=issue("rsa signer", rsa.generate_private_key(65537, 2048)),
        ec=issue("ec signer", ec.generate_private_key(ec.SECP256R1())),
        intruder=issue("intruder", rsa.generate_private_key(65537, 2048)),
    )


@pytest.fixture(scope="session")
def conformance_bytes() -> Callable[[str], bytes]:
    cache: dict[str, bytes] = {}

    def read(name: str) -> bytes:
        if name not in cache:
            cache[name] = (CONFORMANCE_DIR / name).read_bytes()
        return cache[name]

    return read


# --- the toolkit: oracles and independent helpers --------------------------------------------


_HASH_OF_METHOD: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "rsa-sha1": hashes.SHA1,
    "rsa-sha256": hashes.SHA256,
    "rsa-sha512": hashes.SHA512,
    "ecdsa-sha256": hashes.SHA256,
}


class _SignxmlVerifier(XMLVerifier):
    """signxml, minus an lxml quirk it inherits.

    lxml's inclusive c14n of a subtree (signxml canonicalises SignedInfo that way) emits
    ``xmlns=""`` on grandchildren when the default namespace is declared above the subtree, so
    signxml rejects correct inclusive-c14n signatures whose Signature uses a default xmlns
    (``sign_xml``'s, and every real edXML producer's). Its own switch removes those declarations;
    the packages here never contain a genuine ``xmlns=""``.
    """

    excise_empty_xmlns_declarations = True


@dataclass(frozen=True)
class Dsig:
    """What the XML-DSig tests share: the PKI, the two oracles, and tree/signing helpers."""

    pki: DsigPki

    def ours(self, data: bytes, allowed: frozenset[SignatureAlgorithm] = ALL_SUPPORTED) -> str:
        """``valid`` or the error code: load, verify, then the chain check signxml also makes.

        Verified as the ``Verifier`` does (told the document's size: small packages take the
        in-place paths of ``enveloped``) and, as the reference, without the size (the copied
        SignedInfo, the walk for large texts): both must give the same verdict."""
        verdict = self._ours(data, allowed, len(data))
        assert self._ours(data, allowed, None) == verdict, "the paths for small packages differ"
        return verdict

    def _ours(
        self, data: bytes, allowed: frozenset[SignatureAlgorithm], document_bytes: int | None
    ) -> str:
        try:
            root = load_xml(data)
            check = verify_xml_signature(root, allowed=allowed, document_bytes=document_bytes)
        except LgspError as exc:
            return exc.code
        try:
            self._chain_verifier().verify(check.signer_certificate, list(check.certificates[1:]))
        except verification.VerificationError:
            return "chain"
        return VALID

    def reference(self, data: bytes) -> str:
        """``valid`` or the name of the exception signxml raised."""
        config = SignatureConfiguration(
            location=f"./{{{EDXML_NS}}}edXMLEnvelope/{{{EDXML_NS}}}edXMLHeader/",
            expect_references=1,
            signature_methods=frozenset(SignatureMethod),
            digest_algorithms=frozenset(DigestAlgorithm),
            default_reference_c14n_method=CanonicalizationMethod.CANONICAL_XML_1_0,
        )
        try:
            verifier = _SignxmlVerifier()
            verifier.verify(data, ca_pem_file=str(self.pki.ca_pem), expect_config=config)
        except Exception as exc:  # signxml also crashes (TypeError) on some inputs: a rejection
            return type(exc).__name__
        return VALID

    def xmlsec(self, data: bytes) -> str:
        """``valid`` or ``invalid`` from libxmlsec1, keyed with the certificate KeyInfo carries."""
        root = self.parse(data)
        node = xmlsec.tree.find_node(root, xmlsec.constants.NodeSignature)
        if node is None:
            return "missing"
        certificate = self.child(node, "X509Certificate").text or ""
        der = base64.b64decode("".join(certificate.split()))
        context = xmlsec.SignatureContext()
        context.key = xmlsec.Key.from_memory(der, xmlsec.constants.KeyDataFormatCertDer)
        try:
            context.verify(node)
        except xmlsec.Error:
            return "invalid"
        return VALID

    def _chain_verifier(self) -> verification.ClientVerifier:
        store = verification.Store([self.pki.ca_certificate])
        builder = verification.PolicyBuilder().store(store)
        ee = verification.ExtensionPolicy.permit_all()
        ca = verification.ExtensionPolicy.webpki_defaults_ca()
        return builder.extension_policies(ee_policy=ee, ca_policy=ca).build_client_verifier()

    @staticmethod
    def find(root: etree._Element, path: str) -> etree._Element:
        """The first element at ``path`` (prefixes ``ds:`` and ``e:``); fails the test if absent."""
        found = root.find(path, namespaces={**DS, **EDX})
        assert found is not None, path
        return found

    @staticmethod
    def signature_of(root: etree._Element) -> etree._Element:
        """The first element called Signature, in any namespace."""
        for element in root.iter():
            if isinstance(element.tag, str) and etree.QName(element).localname == "Signature":
                return element
        raise AssertionError("no Signature")

    @staticmethod
    def child(parent: etree._Element, local_name: str) -> etree._Element:
        """The first descendant of ``parent`` called ``local_name``, in any namespace."""
        for element in parent.iter():
            if isinstance(element.tag, str) and etree.QName(element).localname == local_name:
                return element
        raise AssertionError(f"no {local_name} under {parent.tag}")

    @staticmethod
    def raw_signature(key: PrivateKey, data: bytes, hash_algorithm: hashes.HashAlgorithm) -> bytes:
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hash_algorithm)
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hash_algorithm)))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")

    def resign_signed_info(self, root: etree._Element, key: PrivateKey) -> None:
        """Recompute SignatureValue over SignedInfo as it now stands in ``root``."""
        signature = self.signature_of(root)
        signed_info = self.child(signature, "SignedInfo")
        c14n_uri = self.child(signed_info, "CanonicalizationMethod").get("Algorithm", "")
        exclusive = "exc-c14n" in c14n_uri
        # Canonicalise a serialised copy: lxml's c14n of an in-tree subtree emits xmlns="" on
        # grandchildren when the default namespace is declared above it (see _SignxmlVerifier).
        standalone = etree.fromstring(etree.tostring(signed_info))
        canonical = etree.tostring(
            standalone, method="c14n", exclusive=exclusive, with_comments=False
        )
        method = self.child(signed_info, "SignatureMethod").get("Algorithm", "")
        value = self.raw_signature(key, canonical, _HASH_OF_METHOD[method.rsplit("#", 1)[1]]())
        self.child(signature, "SignatureValue").text = base64.b64encode(value).decode("ascii")

    @staticmethod
    def tostring(root: etree._Element) -> bytes:
        data = etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")
        assert isinstance(data, bytes)
        return data

    @staticmethod
    def parse(data: bytes) -> etree._Element:
        return etree.fromstring(data, etree.XMLParser(huge_tree=True))

    @staticmethod
    def elements(root: etree._Element) -> Iterator[etree._Element]:
        return (el for el in root.iter() if isinstance(el.tag, str))


@pytest.fixture(scope="session")
def dsig(dsig_pki: DsigPki) -> Dsig:
    return Dsig(dsig_pki)
