"""Binding a signer certificate to the sender OrganId: SAN URI, subject UID, directory list."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from pki_fixtures import shared_pki

from gateway.core.errors import BindingError
from gateway.demo import pki
from gateway.signatures.binding import check_binding, fingerprint, organ_ids_in


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_pki(tmp_path_factory)


def certificate_with(
    pki_dir: Path,
    *,
    uids: list[str],
    uris: list[str],
    names: tuple[x509.GeneralName, ...] = (),
) -> x509.Certificate:
    """A certificate as another CA might issue it: arbitrary UIDs and SAN entries."""
    ca = pki.load_ca(pki_dir)
    subject = [x509.NameAttribute(NameOID.COMMON_NAME, "Nguyễn Văn A")]
    subject += [x509.NameAttribute(NameOID.USER_ID, uid) for uid in uids]
    leaf = pki.issue(pki_dir, "unused", key_type="ec", san=False, save=False)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca.certificate.subject)
        .public_key(leaf.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.now(dt.UTC))
        .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    )
    general = [x509.UniformResourceIdentifier(u) for u in uris] + list(names)
    if general:
        builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


def test_organ_id_from_the_san_uri(pki_dir: Path) -> None:
    cert = pki.load_identity(pki_dir, "000.00.15.H56").certificate
    assert organ_ids_in(cert) == {"000.00.15.H56"}


def test_organ_ids_from_subject_uids(pki_dir: Path) -> None:
    cert = certificate_with(
        pki_dir, uids=["ORGANID:000.00.04.H56", "MST:0101234567", "CMND:012345678"], uris=[]
    )
    assert organ_ids_in(cert) == {"000.00.04.H56", "0101234567"}


def test_other_san_entries_and_empty_values_name_nothing(pki_dir: Path) -> None:
    cert = certificate_with(
        pki_dir,
        uids=["MST:", "ORGANID:"],
        uris=["https://example.gov.vn/", "urn:lgsp:organ-id:", "urn:other:000.00.00.H56"],
        names=(x509.RFC822Name("vanthu@thanhhoa.gov.vn"), x509.DNSName("thanhhoa.gov.vn")),
    )
    assert organ_ids_in(cert) == frozenset()


def test_several_organ_ids_in_one_certificate(pki_dir: Path) -> None:
    cert = certificate_with(
        pki_dir, uids=["ORGANID:000.00.00.H56"], uris=["urn:lgsp:organ-id:000.00.04.H56"]
    )
    assert organ_ids_in(cert) == {"000.00.00.H56", "000.00.04.H56"}
    assert check_binding(cert, "000.00.04.H56", frozenset()) == "certificate"
    assert check_binding(cert, "000.00.00.H56", frozenset()) == "certificate"


def test_fingerprint_is_lowercase_sha256_of_the_der(pki_dir: Path) -> None:
    cert = pki.load_identity(pki_dir, "000.00.00.H56").certificate
    expected = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert fingerprint(cert) == expected
    assert fingerprint(cert) == fingerprint(cert).lower()
    assert len(fingerprint(cert)) == 64


def test_bound_by_certificate(pki_dir: Path) -> None:
    business = pki.load_identity(pki_dir, "0101234567").certificate
    assert check_binding(business, "0101234567", frozenset()) == "certificate"


def test_bound_by_directory_fingerprint(pki_dir: Path) -> None:
    gateway = pki.load_identity(pki_dir, pki.GATEWAY_ID).certificate
    listed = fingerprint(gateway)
    colon_upper = ":".join(listed[i : i + 2] for i in range(0, 64, 2)).upper()
    assert check_binding(gateway, "000.00.00.H56", frozenset({listed})) == "directory"
    assert check_binding(gateway, "000.00.00.H56", frozenset({colon_upper})) == "directory"


def test_mismatch_names_the_sender_and_the_carried_ids(pki_dir: Path) -> None:
    district = pki.load_identity(pki_dir, "000.00.15.H56").certificate
    other = pki.load_identity(pki_dir, "000.00.04.H56").certificate
    with pytest.raises(BindingError) as failure:
        check_binding(district, "000.00.00.H56", frozenset({fingerprint(other)}))
    assert failure.value.code == "binding.organ_mismatch"
    assert "000.00.00.H56" in failure.value.message
    assert "000.00.15.H56" in failure.value.message


def test_mismatch_for_a_certificate_naming_no_organ(pki_dir: Path) -> None:
    gateway = pki.load_identity(pki_dir, pki.GATEWAY_ID).certificate
    with pytest.raises(BindingError) as failure:
        check_binding(gateway, "000.00.00.H56", frozenset())
    assert "no OrganId" in failure.value.message


def test_a_prefix_of_the_sender_is_not_the_sender(pki_dir: Path) -> None:
    cert = certificate_with(pki_dir, uids=[], uris=["urn:lgsp:organ-id:000.00.00.H5"])
    with pytest.raises(BindingError):
        check_binding(cert, "000.00.00.H56", frozenset())
