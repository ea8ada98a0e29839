"""The demo PKI: layout, key permissions, idempotent init, issuing variants, revocation."""

from __future__ import annotations

import datetime as dt
import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gateway.core.errors import ConfigError, NotFoundError
from gateway.demo import pki
from gateway.signatures.binding import organ_ids_in
from gateway.signatures.identity import load_gateway_identity

ORGAN_ID = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$")


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo-pki")
    pki.init_pki(root, key_type="ec")
    return root


def test_init_writes_the_documented_layout(pki_dir: Path) -> None:
    assert (pki_dir / "trust" / "ca" / "root.pem").is_file()
    assert (pki_dir / "trust" / "crl" / "root.crl.pem").is_file()
    assert (pki_dir / "ca" / "root.key.pem").is_file()
    for participant in pki.DEMO_PARTICIPANTS:
        where = pki_dir / "participants" / participant.organ_id
        assert sorted(p.name for p in where.iterdir()) == ["cert.pem", "chain.pem", "key.pem"]
    assert (pki_dir / "gateway" / "cert.pem").is_file()


def test_private_keys_are_owner_only(pki_dir: Path) -> None:
    keys = [pki_dir / "ca" / "root.key.pem", pki_dir / "gateway" / "key.pem"]
    keys += [pki_dir / "participants" / p.organ_id / "key.pem" for p in pki.DEMO_PARTICIPANTS]
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_root_is_a_self_signed_ca_named_as_documented(pki_dir: Path) -> None:
    root = pki.load_ca(pki_dir).certificate
    assert root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "LGSP Demo Root CA"
    assert root.subject == root.issuer
    root.verify_directly_issued_by(root)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_crl_starts_empty_and_signed_by_the_root(pki_dir: Path) -> None:
    root = pki.load_ca(pki_dir).certificate
    crl = x509.load_pem_x509_crl((pki_dir / "trust" / "crl" / "root.crl.pem").read_bytes())
    assert crl.issuer == root.subject
    public_key = root.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(public_key)
    assert crl.next_update_utc is not None


def test_participants_carry_their_organ_id_and_name(pki_dir: Path) -> None:
    for participant in pki.DEMO_PARTICIPANTS:
        ident = pki.load_identity(pki_dir, participant.organ_id)
        assert participant.organ_id in organ_ids_in(ident.certificate)
        names = ident.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        assert names[0].value == participant.name
        assert ident.chain[0] == ident.certificate
        assert ident.chain[-1] == pki.load_ca(pki_dir).certificate
        ident.certificate.verify_directly_issued_by(ident.chain[-1])


def test_business_is_named_by_tax_code_uid(pki_dir: Path) -> None:
    business = next(p for p in pki.DEMO_PARTICIPANTS if p.kind is pki.ParticipantKind.BUSINESS)
    cert = pki.load_identity(pki_dir, business.organ_id).certificate
    uids = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.USER_ID)]
    assert uids == [f"MST:{business.tax_code}"]


def test_demo_participants_are_a_consistent_directory() -> None:
    ids = {p.organ_id for p in pki.DEMO_PARTICIPANTS}
    assert len(ids) == len(pki.DEMO_PARTICIPANTS)
    assert "000.00.00.H56" in ids
    assert "000.00.00.G22" in ids
    for p in pki.DEMO_PARTICIPANTS:
        assert p.parent is None or p.parent in ids, p
        if p.kind is pki.ParticipantKind.BUSINESS:
            assert p.tax_code == p.organ_id
        else:
            assert ORGAN_ID.match(p.organ_id), p
    levels = {p.level for p in pki.DEMO_PARTICIPANTS}
    assert {pki.ParticipantLevel.PROVINCE, pki.ParticipantLevel.DISTRICT} <= levels
    assert pki.ParticipantLevel.COMMUNE in levels


def test_gateway_identity_signs_but_names_no_organ(pki_dir: Path) -> None:
    gateway = pki.load_identity(pki_dir, pki.GATEWAY_ID)
    assert organ_ids_in(gateway.certificate) == frozenset()
    usage = gateway.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature


def test_init_again_keeps_the_existing_ca(pki_dir: Path) -> None:
    before = (pki_dir / "trust" / "ca" / "root.pem").read_bytes()
    layout = pki.init_pki(pki_dir, key_type="ec")
    assert not layout.created
    assert (pki_dir / "trust" / "ca" / "root.pem").read_bytes() == before


def test_force_recreates_the_ca(tmp_path: Path) -> None:
    pki.init_pki(tmp_path, key_type="ec", participants=())
    before = pki.load_ca(tmp_path).certificate
    layout = pki.init_pki(tmp_path, key_type="ec", participants=(), force=True)
    assert layout.created
    assert pki.load_ca(tmp_path).certificate != before


def test_rsa_is_the_default_key_type(tmp_path: Path) -> None:
    pki.init_pki(tmp_path, participants=())
    ident = pki.issue(tmp_path, "000.00.00.H56", save=False)
    assert isinstance(ident.key, rsa.RSAPrivateKey)
    assert ident.key.key_size == 2048


def test_the_gateway_identity_is_p256_under_an_rsa_ca(tmp_path: Path) -> None:
    pki.init_pki(tmp_path, participants=())  # participants and the CA: RSA
    gateway = load_gateway_identity(tmp_path)
    assert isinstance(gateway.key, ec.EllipticCurvePrivateKey)
    assert isinstance(gateway.key.curve, ec.SECP256R1)
    assert gateway.jws_algorithm == "ES256"
    assert isinstance(gateway.chain[-1].public_key(), rsa.RSAPublicKey)


def test_an_older_rsa_gateway_identity_still_loads_and_signs_rs256(tmp_path: Path) -> None:
    pki.init_pki(tmp_path, participants=())
    old = pki.issue(tmp_path, "000.00.00.H56", san=False)  # an RSA identity, as issued before
    for name in ("key.pem", "cert.pem", "chain.pem"):
        source = tmp_path / "participants" / "000.00.00.H56" / name
        (tmp_path / "gateway" / name).write_bytes(source.read_bytes())
    loaded = load_gateway_identity(tmp_path)
    assert loaded.certificate == old.certificate
    assert loaded.jws_algorithm == "RS256"


def test_an_identity_whose_certificate_is_not_its_key_is_refused(tmp_path: Path) -> None:
    pki.init_pki(tmp_path, participants=())
    other = tmp_path / "participants" / "000.00.00.H56"
    pki.issue(tmp_path, "000.00.00.H56", san=False)
    (tmp_path / "gateway" / "cert.pem").write_bytes((other / "cert.pem").read_bytes())
    with pytest.raises(ConfigError) as caught:
        load_gateway_identity(tmp_path)
    assert caught.value.code == "config.pki_key_mismatch"


def test_issue_variants_for_tests(pki_dir: Path) -> None:
    past = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    expired = pki.issue(
        pki_dir, "000.00.07.H56", key_type="ec", valid_from=past, valid_days=30, save=False
    )
    assert expired.certificate.not_valid_after_utc == past + dt.timedelta(days=30)
    ku = pki.issue(
        pki_dir, "000.00.07.H56", key_type="ec", key_usage=frozenset({"key_agreement"}), save=False
    )
    usage = ku.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_agreement
    assert not usage.digital_signature
    uid_only = pki.issue(
        pki_dir, "000.00.07.H56", key_type="ec", san=False, uid="ORGANID:000.00.07.H56", save=False
    )
    assert organ_ids_in(uid_only.certificate) == {"000.00.07.H56"}
    assert not (pki_dir / "participants" / "000.00.07.H56").exists()


def test_issue_refuses_unknown_key_usage_and_path_like_ids(pki_dir: Path) -> None:
    with pytest.raises(ConfigError) as bad_usage:
        pki.issue(pki_dir, "000.00.08.H56", key_type="ec", key_usage=frozenset({"sign"}))
    assert bad_usage.value.code == "config.key_usage"
    with pytest.raises(ConfigError) as bad_id:
        pki.issue(pki_dir, "../escape", key_type="ec")
    assert bad_id.value.code == "config.pki_organ_id"


def test_revoke_lists_the_serial_and_bumps_the_crl_number(pki_dir: Path) -> None:
    ident = pki.issue(pki_dir, "000.00.09.H56", key_type="ec")
    crl_path = pki_dir / "trust" / "crl" / "root.crl.pem"
    before = x509.load_pem_x509_crl(crl_path.read_bytes())
    pki.revoke(pki_dir, "000.00.09.H56")
    after = x509.load_pem_x509_crl(crl_path.read_bytes())
    assert after.get_revoked_certificate_by_serial_number(ident.certificate.serial_number)
    number = after.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == before.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
    public_key = pki.load_ca(pki_dir).certificate.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert after.is_signature_valid(public_key)


def test_missing_identity_and_missing_ca(tmp_path: Path, pki_dir: Path) -> None:
    with pytest.raises(NotFoundError) as missing:
        pki.load_identity(pki_dir, "999.99.99.Z99")
    assert missing.value.code == "not_found.identity"
    with pytest.raises(ConfigError) as no_ca:
        pki.issue(tmp_path, "000.00.00.H56")
    assert no_ca.value.code == "config.pki_missing"
