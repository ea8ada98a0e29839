"""Compact JWS with x5c: round trips (RS256, ES256) and every refusal with its code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pki_fixtures import shared_pki

from gateway.core.errors import LimitError, SignatureError
from gateway.demo import pki
from gateway.signatures.jws import CompactSigner, sign_jws, verify_jws

PAYLOAD = json.dumps({"header": {"from": {"organ_id": "000.00.00.H56"}}}).encode()


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_pki(tmp_path_factory)


@pytest.fixture(scope="session")
def rsa_ident(pki_dir: Path) -> pki.Identity:
    return pki.load_identity(pki_dir, "000.00.00.H56")


@pytest.fixture(scope="session")
def ec_ident(pki_dir: Path) -> pki.Identity:
    return pki.issue(pki_dir, "000.00.04.H56", key_type="ec", save=False)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def x5c(ident: pki.Identity) -> list[str]:
    return [
        base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in ident.chain
    ]


def hand_made(header: dict[str, Any], payload: bytes, key: rsa.RSAPrivateKey | None) -> str:
    """A compact JWS assembled by hand (RS256 over the signing input, or a junk signature)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(payload)}"
    signature = b"junk"
    if key is not None:
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def code_of(token: str | bytes, **kwargs: Any) -> str:
    with pytest.raises(SignatureError) as failure:
        verify_jws(token, **kwargs)
    return failure.value.code


def test_rs256_round_trip_carries_the_chain(rsa_ident: pki.Identity) -> None:
    token = sign_jws(PAYLOAD, rsa_ident.key, rsa_ident.chain)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "RS256"
    assert header["x5c"] == x5c(rsa_ident)
    check = verify_jws(token)
    assert check.payload == PAYLOAD
    assert check.algorithm == "RS256"
    assert check.signer_certificate == rsa_ident.certificate
    assert check.certificates == rsa_ident.chain


def test_es256_round_trip_from_bytes(ec_ident: pki.Identity) -> None:
    assert isinstance(ec_ident.key, ec.EllipticCurvePrivateKey)
    token = sign_jws(PAYLOAD, ec_ident.key, ec_ident.chain)
    check = verify_jws(b"  " + token.encode() + b"\r\n")
    assert check.algorithm == "ES256"
    assert check.payload == PAYLOAD
    assert check.signer_certificate == ec_ident.certificate


def test_tampered_payload_and_signature_are_invalid(rsa_ident: pki.Identity) -> None:
    head, body, sig = sign_jws(PAYLOAD, rsa_ident.key, rsa_ident.chain).split(".")
    other_body = b64url(PAYLOAD.replace(b"H56", b"H57"))
    assert code_of(f"{head}.{other_body}.{sig}") == "jws.invalid"
    flipped = bytearray(base64.urlsafe_b64decode(sig + "=="))
    flipped[10] ^= 1
    assert code_of(f"{head}.{body}.{b64url(bytes(flipped))}") == "jws.invalid"


def test_signature_by_another_key_than_the_x5c_leaf(rsa_ident: pki.Identity, pki_dir: Path) -> None:
    other = pki.load_identity(pki_dir, "000.00.15.H56")
    assert isinstance(other.key, rsa.RSAPrivateKey)
    token = hand_made({"alg": "RS256", "x5c": x5c(rsa_ident)}, PAYLOAD, other.key)
    assert code_of(token) == "jws.invalid"
    genuine = hand_made({"alg": "RS256", "x5c": x5c(other)}, PAYLOAD, other.key)
    assert verify_jws(genuine).signer_certificate == other.certificate


def test_the_key_type_must_fit_the_algorithm(
    rsa_ident: pki.Identity, ec_ident: pki.Identity
) -> None:
    assert isinstance(rsa_ident.key, rsa.RSAPrivateKey)
    token = hand_made({"alg": "ES256", "x5c": x5c(rsa_ident)}, PAYLOAD, rsa_ident.key)
    assert code_of(token) == "jws.invalid"
    token = hand_made({"alg": "RS256", "x5c": x5c(ec_ident)}, PAYLOAD, rsa_ident.key)
    assert code_of(token) == "jws.invalid"


@pytest.mark.parametrize("alg", ["none", "None", "HS256", "HS512", "RS512", "PS256", "EdDSA", ""])
def test_refused_algorithms(rsa_ident: pki.Identity, alg: str) -> None:
    token = hand_made({"alg": alg, "x5c": x5c(rsa_ident)}, PAYLOAD, None)
    expected = "jws.malformed" if alg == "" else "jws.unsupported_algorithm"
    assert code_of(token) == expected


def test_hmac_keyed_with_the_public_key_is_refused(rsa_ident: pki.Identity) -> None:
    public_pem = rsa_ident.certificate.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{b64url(json.dumps({'alg': 'HS256', 'x5c': x5c(rsa_ident)}).encode())}"
    signing_input += f".{b64url(PAYLOAD)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert code_of(f"{signing_input}.{b64url(mac)}") == "jws.unsupported_algorithm"


def test_allowed_algorithms_are_a_parameter(ec_ident: pki.Identity) -> None:
    assert isinstance(ec_ident.key, ec.EllipticCurvePrivateKey)
    token = sign_jws(PAYLOAD, ec_ident.key, ec_ident.chain)
    assert code_of(token, allowed_algs=frozenset({"RS256"})) == "jws.unsupported_algorithm"


@pytest.mark.parametrize(
    "extra",
    [
        {"jku": "https://attacker.example/keys"},
        {"x5u": "https://attacker.example/chain.pem"},
        {"jwk": {"kty": "oct", "k": "AAAA"}},
        {"crit": ["exp"], "exp": 1},
        {"b64": False, "crit": ["b64"]},
        {"zip": "DEF"},
        {"nonstandard": 1},
    ],
)
def test_refused_header_parameters(rsa_ident: pki.Identity, extra: dict[str, Any]) -> None:
    assert isinstance(rsa_ident.key, rsa.RSAPrivateKey)
    header = {"alg": "RS256", "x5c": x5c(rsa_ident), **extra}
    assert code_of(hand_made(header, PAYLOAD, rsa_ident.key)) == "jws.malformed"


def test_harmless_headers_are_accepted(rsa_ident: pki.Identity) -> None:
    assert isinstance(rsa_ident.key, rsa.RSAPrivateKey)
    header = {"alg": "RS256", "typ": "JOSE", "cty": "json", "kid": "k1", "x5c": x5c(rsa_ident)}
    assert verify_jws(hand_made(header, PAYLOAD, rsa_ident.key)).payload == PAYLOAD


def test_certificate_is_required(rsa_ident: pki.Identity) -> None:
    assert isinstance(rsa_ident.key, rsa.RSAPrivateKey)
    assert code_of(hand_made({"alg": "RS256"}, PAYLOAD, rsa_ident.key)) == "jws.no_certificate"
    empty = hand_made({"alg": "RS256", "x5c": []}, PAYLOAD, rsa_ident.key)
    assert code_of(empty) == "jws.no_certificate"
    with pytest.raises(SignatureError) as unsignable:
        sign_jws(PAYLOAD, rsa_ident.key, ())
    assert unsignable.value.code == "jws.no_certificate"


@pytest.mark.parametrize("bad_x5c", ["MIIB", ["not base64!"], ["AAAA"], [1], [""]])
def test_broken_x5c(rsa_ident: pki.Identity, bad_x5c: object) -> None:
    assert isinstance(rsa_ident.key, rsa.RSAPrivateKey)
    token = hand_made({"alg": "RS256", "x5c": bad_x5c}, PAYLOAD, rsa_ident.key)
    assert code_of(token) == "jws.malformed"


def test_thumbprint_must_match_the_leaf(rsa_ident: pki.Identity) -> None:
    assert isinstance(rsa_ident.key, rsa.RSAPrivateKey)
    header = {"alg": "RS256", "x5c": x5c(rsa_ident), "x5t#S256": b64url(b"\0" * 32)}
    assert code_of(hand_made(header, PAYLOAD, rsa_ident.key)) == "jws.malformed"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.e30.abc",
        f"{b64url(b'[1, 2]')}.e30.abc",
        f"{b64url(b'not json')}.e30.abc",
        "ZXlK.e30.abc",
        "é.b.c",
    ],
)
def test_malformed_tokens(token: str) -> None:
    assert code_of(token) == "jws.malformed"


def test_size_limit(rsa_ident: pki.Identity) -> None:
    token = sign_jws(PAYLOAD, rsa_ident.key, rsa_ident.chain)
    with pytest.raises(LimitError) as failure:
        verify_jws(token, max_bytes=len(token) - 1)
    assert failure.value.code == "jws.too_large"
    assert verify_jws(token, max_bytes=len(token)).payload == PAYLOAD


def test_package_sized_payloads_round_trip(ec_ident: pki.Identity) -> None:
    assert isinstance(ec_ident.key, ec.EllipticCurvePrivateKey)
    big = json.dumps({"attachments": [{"content_b64": "QUJD" * 250_000}]}).encode()
    assert verify_jws(sign_jws(big, ec_ident.key, ec_ident.chain)).payload == big


# -- CompactSigner: the receipts' signer, built with cryptography, held to joserfc's tokens -------

PAYLOADS = [PAYLOAD, b"", json.dumps({"subject": "Quảng Xương"}, ensure_ascii=False).encode()]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_compact_signer_rs256_makes_joserfcs_very_token(
    rsa_ident: pki.Identity, payload: bytes
) -> None:
    signer = CompactSigner.of(rsa_ident.key, rsa_ident.chain)
    assert signer.algorithm == "RS256"
    token = signer.sign(payload)  # PKCS#1 v1.5 is deterministic: the same bytes throughout
    assert token == sign_jws(payload, rsa_ident.key, rsa_ident.chain)
    assert verify_jws(token).payload == payload


@pytest.mark.parametrize("payload", PAYLOADS)
def test_compact_signer_es256_agrees_with_joserfc(ec_ident: pki.Identity, payload: bytes) -> None:
    signer = CompactSigner.of(ec_ident.key, ec_ident.chain)
    assert signer.algorithm == "ES256"
    token = signer.sign(payload)
    reference = sign_jws(payload, ec_ident.key, ec_ident.chain)
    assert token.split(".")[:2] == reference.split(".")[:2]  # header and payload, byte for byte
    check = verify_jws(token, allowed_algs=frozenset({"ES256"}))  # joserfc checks R || S
    assert check.payload == payload
    assert check.certificates == ec_ident.chain
    assert len(base64.urlsafe_b64decode(token.split(".")[2] + "==")) == 64
    head, _, sig = token.split(".")
    other = b64url(payload + b" ")
    assert code_of(f"{head}.{other}.{sig}", allowed_algs=frozenset({"ES256"})) == "jws.invalid"


def test_compact_signer_refuses_what_it_cannot_sign(
    rsa_ident: pki.Identity, ec_ident: pki.Identity
) -> None:
    refusals = [
        lambda: CompactSigner.of(rsa_ident.key, rsa_ident.chain, alg="ES256"),
        lambda: CompactSigner.of(ec_ident.key, ec_ident.chain, alg="RS256"),
        lambda: CompactSigner.of(rsa_ident.key, rsa_ident.chain, alg="RS512"),
        lambda: CompactSigner.of(ec.generate_private_key(ec.SECP384R1()), ec_ident.chain),
    ]
    for make in refusals:
        with pytest.raises(SignatureError) as failure:
            make()
        assert failure.value.code == "jws.unsupported_algorithm"
    with pytest.raises(SignatureError) as failure:
        CompactSigner.of(rsa_ident.key, [])
    assert failure.value.code == "jws.no_certificate"
