"""Certificates from untrusted bytes: parsed (and hashed) once per encoding, refusals never kept."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from pki_fixtures import shared_pki

from gateway.core.errors import SignatureError
from gateway.demo import pki
from gateway.signatures.binding import Signer, fingerprint, organ_ids_in, signer_of
from gateway.signatures.certificates import (
    CACHED_DER_BYTES,
    _load_remembered,
    certificate_hash,
    load_untrusted_der,
)
from gateway.signatures.trust_cache import ChainKey
from gateway.signatures.xmldsig import (
    CACHED_TEXT_CHARS,
    _certificate_of_text,
    _remembered_certificate,
)


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_pki(tmp_path_factory)


def test_the_same_bytes_give_the_same_parsed_certificate(pki_dir: Path) -> None:
    [leaf, *_] = pki.load_identity(pki_dir, "000.00.04.H56").chain
    der = leaf.public_bytes(Encoding.DER)
    first = load_untrusted_der(der)
    assert load_untrusted_der(bytes(der)) is first  # an equal copy: parsed once
    assert first == leaf
    assert first.subject.rfc4514_string() == leaf.subject.rfc4514_string()


def test_a_large_certificate_is_parsed_every_time_not_kept() -> None:
    """The cache holds small encodings only: a certificate over ``CACHED_DER_BYTES`` (here a
    valid one padded with a large private extension) is parsed as any other, not remembered."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "large")])
    now = datetime.now(UTC)
    large = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x04\x00" + b"x" * CACHED_DER_BYTES
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    der = large.public_bytes(Encoding.DER)
    assert len(der) > CACHED_DER_BYTES
    before = _load_remembered.cache_info().currsize
    first = load_untrusted_der(der)
    assert first == large
    assert load_untrusted_der(der) is not first  # parsed again
    assert _load_remembered.cache_info().currsize == before


def test_a_malformed_certificate_is_refused_every_time(pki_dir: Path) -> None:
    [leaf, *_] = pki.load_identity(pki_dir, "000.00.04.H56").chain
    broken = leaf.public_bytes(Encoding.DER)[:-1]  # cut short: no longer a certificate
    for _ in range(2):
        with pytest.raises(ValueError, match="malformed certificate"):
            load_untrusted_der(broken)


def test_a_certificates_remembered_hash_is_its_hash(pki_dir: Path) -> None:
    """``certificate_hash`` is ``hash`` (cryptography's), for the object and for an equal copy."""
    [leaf, issuer, *_] = pki.load_identity(pki_dir, "000.00.04.H56").chain
    copy = x509.load_der_x509_certificate(leaf.public_bytes(Encoding.DER))
    assert copy is not leaf
    for cert in (leaf, leaf, copy, issuer):
        assert certificate_hash(cert) == hash(cert)
    assert certificate_hash(leaf) != certificate_hash(issuer)


def test_trust_cache_keys_are_equal_for_equal_chains_and_differ_otherwise(pki_dir: Path) -> None:
    [leaf, issuer, *_] = pki.load_identity(pki_dir, "000.00.04.H56").chain
    copy = x509.load_der_x509_certificate(leaf.public_bytes(Encoding.DER))
    assert ChainKey(copy, (issuer,)) == ChainKey(leaf, (issuer,))
    assert hash(ChainKey(copy, (issuer,))) == hash(ChainKey(leaf, (issuer,)))
    assert ChainKey(leaf, ()) != ChainKey(leaf, (issuer,))
    assert ChainKey(issuer, (leaf,)) != ChainKey(leaf, (issuer,))
    assert len({ChainKey(leaf, (issuer,)), ChainKey(copy, (issuer,)), ChainKey(leaf, ())}) == 2


def test_a_signer_is_derived_alike_for_the_object_and_an_equal_copy(pki_dir: Path) -> None:
    [leaf, issuer, *_] = pki.load_identity(pki_dir, "000.00.04.H56").chain
    copy = x509.load_der_x509_certificate(leaf.public_bytes(Encoding.DER))
    expected = Signer(fingerprint(leaf), leaf.subject.rfc4514_string(), organ_ids_in(leaf))
    assert signer_of(leaf) == signer_of(leaf) == signer_of(copy) == expected
    assert signer_of(issuer).fingerprint == fingerprint(issuer) != expected.fingerprint


def test_an_x509certificate_text_is_decoded_once_and_a_bad_one_refused_every_time(
    pki_dir: Path,
) -> None:
    """The verifier's cache of KeyInfo texts: the same text gives the same certificate, a text
    with line breaks decodes as without them, and refusals (base64 or DER) are never kept."""
    [leaf, *_] = pki.load_identity(pki_dir, "000.00.04.H56").chain
    text = base64.b64encode(leaf.public_bytes(Encoding.DER)).decode()
    first = _certificate_of_text(text)
    assert first == leaf
    assert _certificate_of_text("".join([text])) is first
    wrapped = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    assert _certificate_of_text(f"\n  {wrapped}\n") == leaf
    before = _remembered_certificate.cache_info().currsize
    padded = text + " " * CACHED_TEXT_CHARS  # too long to be remembered, decoded all the same
    assert _certificate_of_text(padded) == leaf
    assert _remembered_certificate.cache_info().currsize == before
    for bad, message in (
        (text[:-2] + "!=", "X509Certificate is not valid base64"),
        (text[:-2] + "!=" + " " * CACHED_TEXT_CHARS, "X509Certificate is not valid base64"),
        (base64.b64encode(b"not a certificate").decode(), "an X509Certificate does not decode"),
    ):
        for _ in range(2):
            with pytest.raises(SignatureError, match=message) as caught:
                _certificate_of_text(bad)
            assert caught.value.code == "signature.bad_certificate"
