"""The XML-DSig algorithms of the narrow edXML profile: their URIs, and signing/checking bytes."""

from __future__ import annotations

from enum import Enum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

# Real producers (the VPCP samples, VNPT's library) write the exclusive c14n URI without the
# "2001/10" path; it names the same algorithm.
EXC_C14N_ALIAS = "http://www.w3.org/TR/xml-exc-c14n#"
ENVELOPED_SIGNATURE = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"


class SignatureAlgorithm(str, Enum):  # noqa: UP042 (project convention)
    """``SignatureMethod/@Algorithm`` values the verifier can check."""

    RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
    RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
    ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"

    @property
    def short_name(self) -> str:
        """``rsa-sha256`` etc.: the name used in configuration and logs."""
        return _SHORT_NAMES[self._name_]

    @classmethod
    def from_short_name(cls, name: str) -> SignatureAlgorithm:
        """The algorithm called ``name`` (``rsa-sha256``); ``ValueError`` if there is none."""
        algorithm = _BY_SHORT_NAME.get(name.strip().lower())
        if algorithm is None:
            raise ValueError(f"unknown signature algorithm {name!r}")
        return algorithm

    @property
    def is_rsa(self) -> bool:
        return self._name_.startswith("RSA_")  # ``_name_``: ``name`` without Enum's descriptor

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        """The hash the signature is computed over."""
        return _HASHES[self._name_.rsplit("_", 1)[1]]()

    def fits(self, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bool:
        return self.is_rsa == isinstance(key, rsa.RSAPrivateKey)

    def sign(self, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
        """The SignatureValue bytes: PKCS#1 v1.5 for RSA, r||s (XML-DSig 1.1) for ECDSA."""
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), self.hash_algorithm())
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(self.hash_algorithm())))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")

    def verifies(self, key: CertificatePublicKeyTypes, value: bytes, data: bytes) -> bool:
        """Whether ``value`` is this algorithm's signature of ``data`` by ``key``'s owner."""
        try:
            if self.is_rsa and isinstance(key, rsa.RSAPublicKey):
                key.verify(value, data, padding.PKCS1v15(), self.hash_algorithm())
                return True
            if not self.is_rsa and isinstance(key, ec.EllipticCurvePublicKey):
                size = (key.curve.key_size + 7) // 8  # r and s are each as long as the order
                if len(value) != 2 * size:
                    return False
                r, s = int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big")
                key.verify(encode_dss_signature(r, s), data, ec.ECDSA(self.hash_algorithm()))
                return True
        except InvalidSignature:
            return False
        return False


_SHORT_NAMES: dict[str, str] = {
    member: member.lower().replace("_", "-") for member in SignatureAlgorithm.__members__
}
"""Each ``SignatureAlgorithm`` member's short name, by the member's name (computed once)."""
_BY_SHORT_NAME: dict[str, SignatureAlgorithm] = {
    _SHORT_NAMES[name]: member for name, member in SignatureAlgorithm.__members__.items()
}


class DigestAlgorithm(str, Enum):  # noqa: UP042 (project convention)
    """``DigestMethod/@Algorithm`` values of the one Reference."""

    SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
    SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return _HASHES[self._name_]()


class C14nMethod(str, Enum):  # noqa: UP042 (project convention)
    """Canonicalisation of SignedInfo and of the document (no comments: URI="" drops them)."""

    C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
    EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"

    @classmethod
    def _missing_(cls, value: object) -> C14nMethod | None:
        return cls.EXC_C14N if value == EXC_C14N_ALIAS else None

    @property
    def exclusive(self) -> bool:
        return self is C14nMethod.EXC_C14N


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA1": hashes.SHA1,
    "SHA256": hashes.SHA256,
    "SHA512": hashes.SHA512,
}

ALL_SUPPORTED: frozenset[SignatureAlgorithm] = frozenset(SignatureAlgorithm)
DEFAULT_ALLOWED: frozenset[SignatureAlgorithm] = frozenset(
    {SignatureAlgorithm.RSA_SHA256, SignatureAlgorithm.ECDSA_SHA256}
)
