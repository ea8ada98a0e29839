"""The Verifier end to end on the real conformance packages, re-signed with the demo PKI."""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from pki_fixtures import other_pki, shared_pki
from samples import CONFORMANCE_DIR, CONFORMANCE_FILES

from gateway.core.errors import (
    BindingError,
    LgspError,
    LimitError,
    PackageError,
    SignatureError,
    TrustError,
)
from gateway.demo import pki
from gateway.edxml import json_codec
from gateway.edxml.issues import Severity
from gateway.edxml.limits import ParseLimits
from gateway.edxml.xml_codec import parse_package
from gateway.signatures.algorithms import DEFAULT_ALLOWED, SignatureAlgorithm
from gateway.signatures.binding import fingerprint
from gateway.signatures.enveloped import LARGE_TEXT_CHARS
from gateway.signatures.jws import sign_jws
from gateway.signatures.truststore import TrustStore
from gateway.signatures.verify import VerifiedDocument, Verifier
from gateway.signatures.xmldsig import sign_xml

SAMPLES = CONFORMANCE_FILES
MALFORMED_SAMPLES = {"edoc.edxml"}  # a doubled <From> start tag: not well-formed XML
NEW_DOCUMENT = CONFORMANCE_DIR / "edoc_new.edxml"
STATUS = CONFORMANCE_DIR / "status_inbox_01.edxml"
NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_pki(tmp_path_factory)


@pytest.fixture(scope="session")
def foreign_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return other_pki(tmp_path_factory)


@pytest.fixture
def verifier(pki_dir: Path) -> Verifier:
    return Verifier(TrustStore.from_dir(pki_dir))


def sender_of(data: bytes) -> str:
    return parse_package(data).sender


def signed_as(pki_dir: Path, data: bytes, **kwargs: object) -> bytes:
    """``data`` signed by the saved identity of its own sender."""
    ident = pki.load_identity(pki_dir, sender_of(data))
    return sign_xml(data, ident.key, ident.chain, **kwargs)  # type: ignore[arg-type]


def failure(verify: Callable[[], VerifiedDocument]) -> LgspError:
    with pytest.raises(LgspError) as caught:
        verify()
    return caught.value


def test_samples_are_present() -> None:
    assert len(SAMPLES) >= 16, f"conformance samples missing under {CONFORMANCE_DIR}"


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_placeholder_signature_fails_clearly(verifier: Verifier, sample: Path) -> None:
    data = sample.read_bytes()
    error = failure(lambda: verifier.verify_xml(data))
    if sample.name in MALFORMED_SAMPLES:
        assert isinstance(error, PackageError)
        assert error.code == "edxml.malformed"
    elif b"Signature>" in data:
        assert isinstance(error, SignatureError)
        assert error.code == "signature.bad_certificate"
    else:
        assert isinstance(error, SignatureError)
        assert error.code == "signature.missing"


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_resigned_sample_verifies(verifier: Verifier, pki_dir: Path, sample: Path) -> None:
    data = sample.read_bytes()
    if sample.name in MALFORMED_SAMPLES:
        ident = pki.load_identity(pki_dir, "777.77.04.D77")
        with pytest.raises(PackageError) as refused:
            sign_xml(data, ident.key, ident.chain)
        assert refused.value.code == "edxml.malformed"
        return
    signed = signed_as(pki_dir, data)
    result = verifier.verify_xml(signed)
    ident = pki.load_identity(pki_dir, sender_of(data))
    assert result.sender == sender_of(data)
    assert result.format == "xml"
    assert result.bound_by == "certificate"
    assert result.algorithm == "rsa-sha256"
    assert result.signed_bytes == signed
    # the verifier's record is the reader's, but for the <Signature> copy it does not keep (not
    # part of what was signed; the signed bytes travel as ``signed_bytes``)
    read = parse_package(signed)
    assert read.signature_xml is not None
    assert result.package == replace(read, signature_xml=None)
    assert result.certificate_fingerprint == fingerprint(ident.certificate)
    assert result.signer_subject == ident.certificate.subject.rfc4514_string()
    assert result.chain == (ident.certificate, pki.load_ca(pki_dir).certificate)
    assert all(w.severity is Severity.WARNING for w in result.warnings)
    assert result.verified_at.tzinfo is not None


def _flip_base64(text: bytes, element: bytes) -> bytes:
    """Change one character inside the first ``element``'s base64 content."""
    match = re.search(rb"<(?:\w+:)?" + element + rb"[^>]*>\s*([A-Za-z0-9+/]{20})", text)
    assert match, element
    at = match.start(1) + 10
    return text[:at] + (b"A" if text[at : at + 1] != b"A" else b"B") + text[at + 1 :]


def _swap_certificate(pki_dir: Path) -> Callable[[bytes], bytes]:
    other = pki.load_identity(pki_dir, "000.00.00.H56").certificate
    der = base64.b64encode(other.public_bytes(Encoding.DER)).decode()

    def swap(signed: bytes) -> bytes:
        return re.sub(
            rb"(<(?:\w+:)?X509Certificate>)[^<]+", lambda m: m.group(1) + der.encode(), signed
        )

    return swap


def _replace(pattern: bytes, replacement: bytes) -> Callable[[bytes], bytes]:
    return lambda signed: re.sub(pattern, replacement, signed, count=1)


TAMPERING: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("subject", _replace(rb"<edXML:Subject>", "<edXML:Subject>SỬA ".encode()), "digest_mismatch"),
    ("sender", _replace(rb"000\.00\.00\.A80<", b"000.00.00.H56<"), "digest_mismatch"),
    (
        "recipient",
        _replace(rb"(<edXML:To>\s*<edXML:OrganId>)[^<]+", rb"\g<1>000.00.15.H56"),
        "digest_mismatch",
    ),
    ("trace timestamp", _replace(rb"(<edXML:Timestamp>)\d{4}", rb"\g<1>2099"), "digest_mismatch"),
    ("attachment byte", lambda s: _flip_base64(s, b"ContentTransferEncoded"), "digest_mismatch"),
    ("signature value", lambda s: _flip_base64(s, b"SignatureValue"), "invalid"),
    ("digest value", lambda s: _flip_base64(s, b"DigestValue"), "invalid"),
]


@pytest.fixture(scope="module")
def signed_new(pki_dir: Path) -> bytes:
    return signed_as(pki_dir, NEW_DOCUMENT.read_bytes())


@pytest.mark.parametrize(("what", "tamper", "code"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_tampering_fails_the_signature(
    verifier: Verifier, signed_new: bytes, what: str, tamper: Callable[[bytes], bytes], code: str
) -> None:
    assert verifier.verify_xml(signed_new).sender == "000.00.00.A80"
    tampered = tamper(signed_new)
    assert tampered != signed_new, what
    error = failure(lambda: verifier.verify_xml(tampered))
    assert isinstance(error, SignatureError)
    assert error.code == f"signature.{code}"


def test_swapped_certificate_fails_the_signature(
    verifier: Verifier, pki_dir: Path, signed_new: bytes
) -> None:
    error = failure(lambda: verifier.verify_xml(_swap_certificate(pki_dir)(signed_new)))
    assert error.code == "signature.invalid"


def test_expired_certificate(verifier: Verifier, pki_dir: Path) -> None:
    old = pki.issue(pki_dir, "000.00.00.A80", valid_from=NOW - 900 * DAY, valid_days=30, save=False)
    signed = sign_xml(NEW_DOCUMENT.read_bytes(), old.key, old.chain)
    assert failure(lambda: verifier.verify_xml(signed)).code == "trust.expired"


def test_certificate_from_an_unknown_ca(verifier: Verifier, foreign_dir: Path) -> None:
    impostor = pki.issue(foreign_dir, "000.00.00.A80", key_type="ec", save=False)
    signed = sign_xml(NEW_DOCUMENT.read_bytes(), impostor.key, impostor.chain)
    error = failure(lambda: verifier.verify_xml(signed))
    assert isinstance(error, TrustError)
    assert error.code == "trust.unknown_ca"


def test_revoked_certificate(pki_dir: Path) -> None:
    ident = pki.issue(pki_dir, "000.00.00.A80", key_type="ec", save=False)
    signed = sign_xml(NEW_DOCUMENT.read_bytes(), ident.key, ident.chain)
    verifier = Verifier(TrustStore.from_dir(pki_dir))
    assert verifier.verify_xml(signed).sender == "000.00.00.A80"
    pki.revoke_certificate(pki_dir, ident.certificate)
    verifier.trust.reload()
    assert failure(lambda: verifier.verify_xml(signed)).code == "trust.revoked"


def test_wrong_key_usage(verifier: Verifier, pki_dir: Path) -> None:
    ident = pki.issue(
        pki_dir, "000.00.00.A80", key_usage=frozenset({"key_encipherment"}), save=False
    )
    signed = sign_xml(NEW_DOCUMENT.read_bytes(), ident.key, ident.chain)
    assert failure(lambda: verifier.verify_xml(signed)).code == "trust.bad_key_usage"


def test_certificate_of_another_organ(verifier: Verifier, pki_dir: Path) -> None:
    province = pki.load_identity(pki_dir, "000.00.00.H56")
    signed = sign_xml(NEW_DOCUMENT.read_bytes(), province.key, province.chain)
    error = failure(lambda: verifier.verify_xml(signed))
    assert isinstance(error, BindingError)
    assert error.code == "binding.organ_mismatch"
    assert "000.00.00.A80" in error.message
    assert "000.00.00.H56" in error.message


def test_directory_binding_by_fingerprint(pki_dir: Path) -> None:
    gateway = pki.load_identity(pki_dir, pki.GATEWAY_ID)
    signed = sign_xml(NEW_DOCUMENT.read_bytes(), gateway.key, gateway.chain)
    listed = {"000.00.00.A80": frozenset({fingerprint(gateway.certificate)})}
    verifier = Verifier(
        TrustStore.from_dir(pki_dir),
        bound_fingerprints=lambda sender: listed.get(sender, frozenset()),
    )
    assert verifier.verify_xml(signed).bound_by == "directory"
    status = sign_xml(STATUS.read_bytes(), gateway.key, gateway.chain)
    assert failure(lambda: verifier.verify_xml(status)).code == "binding.organ_mismatch"


def test_checks_run_in_order(verifier: Verifier, pki_dir: Path, foreign_dir: Path) -> None:
    """Signature before algorithm policy before trust before binding before validation."""
    data = NEW_DOCUMENT.read_bytes()
    expired_stranger = pki.issue(
        pki_dir, "000.00.00.H56", valid_from=NOW - 900 * DAY, valid_days=30, save=False
    )
    untrusted = pki.issue(foreign_dir, "000.00.00.A80", key_type="ec", save=False)
    signed = sign_xml(data, expired_stranger.key, expired_stranger.chain)
    assert failure(lambda: verifier.verify_xml(signed)).code == "trust.expired"
    sha1 = sign_xml(
        data, expired_stranger.key, expired_stranger.chain, algorithm=SignatureAlgorithm.RSA_SHA1
    )
    assert failure(lambda: verifier.verify_xml(sha1)).code == "signature.algorithm_not_allowed"
    tampered = sign_xml(data, untrusted.key, untrusted.chain).replace(b"Subject>V", b"Subject>X")
    assert failure(lambda: verifier.verify_xml(tampered)).code == "signature.digest_mismatch"


def test_rsa_sha1_only_where_policy_allows_it(pki_dir: Path) -> None:
    signed = signed_as(pki_dir, NEW_DOCUMENT.read_bytes(), algorithm=SignatureAlgorithm.RSA_SHA1)
    trust = TrustStore.from_dir(pki_dir)
    default = Verifier(trust)
    assert failure(lambda: default.verify_xml(signed)).code == "signature.algorithm_not_allowed"
    legacy = {"000.00.00.A80": DEFAULT_ALLOWED | {SignatureAlgorithm.RSA_SHA1}}
    per_sender = Verifier(trust, algorithms_for=lambda s: legacy.get(s, DEFAULT_ALLOWED))
    result = per_sender.verify_xml(signed)
    assert result.algorithm == "rsa-sha1"
    assert "signature.weak_algorithm" in {w.code for w in result.warnings}
    other = {"000.00.00.H41": DEFAULT_ALLOWED | {SignatureAlgorithm.RSA_SHA1}}
    elsewhere = Verifier(trust, algorithms_for=lambda s: other.get(s, DEFAULT_ALLOWED))
    assert failure(lambda: elsewhere.verify_xml(signed)).code == "signature.algorithm_not_allowed"


def test_ecdsa_signer(verifier: Verifier, pki_dir: Path) -> None:
    ident = pki.issue(pki_dir, "000.00.00.H41", key_type="ec", save=False)
    result = verifier.verify_xml(sign_xml(STATUS.read_bytes(), ident.key, ident.chain))
    assert result.algorithm == "ecdsa-sha256"
    assert result.chain[0] == ident.certificate


def test_semantic_errors_refuse_after_the_signature_holds(
    verifier: Verifier, pki_dir: Path
) -> None:
    data = re.sub(
        rb"(<edXML:ResponseFor>.*?<edXML:DocumentId>)[^<]+", rb"\1", STATUS.read_bytes(), flags=re.S
    )
    error = failure(lambda: verifier.verify_xml(signed_as(pki_dir, data)))
    assert isinstance(error, PackageError)
    assert error.code == "edxml.missing_field"
    assert error.path is not None
    assert error.path.endswith("ResponseFor/DocumentId")


def test_validation_warnings_are_kept(verifier: Verifier, signed_new: bytes) -> None:
    warnings = verifier.verify_xml(signed_new).warnings
    assert warnings
    assert all(w.severity is Severity.WARNING and w.code for w in warnings)


def test_parse_limits_apply(pki_dir: Path, signed_new: bytes) -> None:
    small = Verifier(TrustStore.from_dir(pki_dir), limits=ParseLimits(max_bytes=1024))
    with pytest.raises(LimitError):
        small.verify_xml(signed_new)


def test_the_clock_sets_the_validation_time(pki_dir: Path, signed_new: bytes) -> None:
    later = NOW + 5000 * DAY
    verifier = Verifier(TrustStore.from_dir(pki_dir), clock=lambda: later)
    assert failure(lambda: verifier.verify_xml(signed_new)).code == "trust.expired"
    fixed = NOW + DAY
    result = Verifier(TrustStore.from_dir(pki_dir), clock=lambda: fixed).verify_xml(signed_new)
    assert result.verified_at == fixed


# -- JWS ---------------------------------------------------------------------------------------


def jws_of(pki_dir: Path, sample: Path, organ_id: str | None = None) -> tuple[bytes, bytes]:
    """(payload, token): the sample's JSON encoding signed by ``organ_id`` (default: its sender)."""
    package = parse_package(sample.read_bytes())
    payload = json_codec.dumps(package)
    ident = pki.load_identity(pki_dir, organ_id or package.sender)
    return payload, sign_jws(payload, ident.key, ident.chain).encode()


@pytest.mark.parametrize("sample", [NEW_DOCUMENT, STATUS], ids=lambda p: p.name)
def test_jws_round_trip(verifier: Verifier, pki_dir: Path, sample: Path) -> None:
    payload, token = jws_of(pki_dir, sample)
    result = verifier.verify_jws(token)
    assert result.format == "jws"
    assert result.signed_bytes == payload
    assert result.package == parse_package(sample.read_bytes())
    assert result.sender == result.package.sender
    assert result.algorithm == "rsa-sha256"
    assert result.bound_by == "certificate"
    assert result.chain[-1] == pki.load_ca(pki_dir).certificate


def test_jws_failures(verifier: Verifier, pki_dir: Path, foreign_dir: Path) -> None:
    _, token = jws_of(pki_dir, STATUS)
    head, _, sig = token.split(b".")
    forged_payload = base64.urlsafe_b64encode(b'{"kind":"status"}').rstrip(b"=")
    assert failure(lambda: verifier.verify_jws(b".".join([head, forged_payload, sig]))).code == (
        "jws.invalid"
    )
    _, stranger = jws_of(pki_dir, STATUS, organ_id="000.00.00.H56")
    assert failure(lambda: verifier.verify_jws(stranger)).code == "binding.organ_mismatch"
    impostor = pki.issue(foreign_dir, "000.00.00.H41", key_type="ec", save=False)
    payload = json_codec.dumps(parse_package(STATUS.read_bytes()))
    untrusted = sign_jws(payload, impostor.key, impostor.chain).encode()
    assert failure(lambda: verifier.verify_jws(untrusted)).code == "trust.unknown_ca"
    rsa_only = Verifier(
        verifier.trust, algorithms_for=lambda _s: frozenset({SignatureAlgorithm.RSA_SHA256})
    )
    assert failure(lambda: rsa_only.verify_jws(untrusted)).code == "signature.algorithm_not_allowed"


def test_jws_payload_must_be_a_package(verifier: Verifier, pki_dir: Path) -> None:
    ident = pki.load_identity(pki_dir, "000.00.00.H41")
    token = sign_jws(b'{"kind": "status", "header": 1}', ident.key, ident.chain).encode()
    error = failure(lambda: verifier.verify_jws(token))
    assert isinstance(error, PackageError)
    assert error.code == "json.schema"


def test_an_unreadable_package_is_refused_for_its_signature_first(
    verifier: Verifier, pki_dir: Path
) -> None:
    """The records are read before the digest; the reader's refusal waits for the signature."""
    data = re.sub(rb"(<edXML:StatusCode>[^<]*</edXML:StatusCode>)", rb"\1\1", STATUS.read_bytes())
    with pytest.raises(PackageError):
        parse_package(data)
    ident = pki.load_identity(pki_dir, sender_of(STATUS.read_bytes()))
    signed = sign_xml(data, ident.key, ident.chain)
    assert failure(lambda: verifier.verify_xml(signed)).code == "edxml.duplicate_element"
    tampered = signed.replace(b"<edXML:Description>", b"<edXML:Description>x", 1)
    assert tampered != signed
    assert failure(lambda: verifier.verify_xml(tampered)).code == "signature.digest_mismatch"


def test_the_records_of_a_package_with_large_texts_are_read_whole(
    verifier: Verifier, pki_dir: Path
) -> None:
    """edoc_new's attachment is lifted out of the tree for the digest and not put back."""
    signed = signed_as(pki_dir, (CONFORMANCE_DIR / "edoc_new.edxml").read_bytes())
    package = verifier.verify_xml(signed).package
    assert package == replace(parse_package(signed), signature_xml=None)
    assert len(package.attachments[0].content_b64) > LARGE_TEXT_CHARS  # type: ignore[union-attr]
