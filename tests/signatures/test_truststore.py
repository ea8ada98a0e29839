"""TrustStore: chains to the demo root, validity, key usage, unknown CAs, CRLs and reloading."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from pki_fixtures import other_pki, shared_pki

from gateway.core.errors import ConfigError, TrustError
from gateway.demo import pki
from gateway.signatures.truststore import TrustStore

NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_pki(tmp_path_factory)


@pytest.fixture(scope="session")
def foreign_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return other_pki(tmp_path_factory)


@pytest.fixture
def own_pki(tmp_path: Path) -> Path:
    """A private EC PKI for tests that change CRL files."""
    pki.init_pki(tmp_path, key_type="ec", participants=())
    return tmp_path


def trust_code(store: TrustStore, ident: pki.Identity, **kwargs: object) -> str:
    with pytest.raises(TrustError) as failure:
        store.validate(ident.certificate, ident.chain[1:], **kwargs)  # type: ignore[arg-type]
    return failure.value.code


def write_crl(where: Path, crl: x509.CertificateRevocationList, *, der: bool = False) -> None:
    encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
    where.write_bytes(crl.public_bytes(encoding))


def test_valid_chain_is_leaf_first_and_ends_at_the_root(pki_dir: Path) -> None:
    store = TrustStore.from_dir(pki_dir)
    ident = pki.load_identity(pki_dir, "000.00.00.H56")
    root = pki.load_ca(pki_dir).certificate
    assert store.validate(ident.certificate, ident.chain[1:]) == (ident.certificate, root)
    assert store.validate(ident.certificate) == (ident.certificate, root)


def test_every_demo_identity_validates(pki_dir: Path) -> None:
    store = TrustStore.from_dir(pki_dir, require_crl=True)
    for organ_id in [p.organ_id for p in pki.DEMO_PARTICIPANTS] + [pki.GATEWAY_ID]:
        ident = pki.load_identity(pki_dir, organ_id)
        assert store.validate(ident.certificate)[0] == ident.certificate


def test_expired_and_not_yet_valid(pki_dir: Path) -> None:
    store = TrustStore.from_dir(pki_dir)
    expired = pki.issue(
        pki_dir,
        "000.00.00.H56",
        key_type="ec",
        valid_from=NOW - 30 * DAY,
        not_after=NOW - DAY,
        save=False,
    )
    future = pki.issue(pki_dir, "000.00.00.H56", key_type="ec", valid_from=NOW + DAY, save=False)
    assert trust_code(store, expired) == "trust.expired"
    assert trust_code(store, future) == "trust.not_yet_valid"


def test_validation_time_is_a_parameter(pki_dir: Path) -> None:
    store = TrustStore.from_dir(pki_dir)
    ident = pki.load_identity(pki_dir, "000.00.04.H56")
    assert trust_code(store, ident, at=NOW - 365 * DAY) == "trust.not_yet_valid"
    assert trust_code(store, ident, at=NOW + 3000 * DAY) == "trust.expired"


def test_key_usage_must_allow_signing(pki_dir: Path) -> None:
    store = TrustStore.from_dir(pki_dir)
    encipher = pki.issue(
        pki_dir, "000.00.00.H56", key_type="ec", key_usage=frozenset({"key_agreement"}), save=False
    )
    no_usage = pki.issue(pki_dir, "000.00.00.H56", key_type="ec", key_usage=None, save=False)
    non_repudiation = pki.issue(
        pki_dir,
        "000.00.00.H56",
        key_type="ec",
        key_usage=frozenset({"content_commitment"}),
        save=False,
    )
    assert trust_code(store, encipher) == "trust.bad_key_usage"
    assert trust_code(store, no_usage) == "trust.bad_key_usage"
    assert store.validate(non_repudiation.certificate)[0] == non_repudiation.certificate


def test_a_different_ca_with_the_same_name_is_unknown(pki_dir: Path, foreign_dir: Path) -> None:
    store = TrustStore.from_dir(pki_dir)
    impostor = pki.issue(foreign_dir, "000.00.00.H56", key_type="ec", save=False)
    assert impostor.chain[-1].subject == pki.load_ca(pki_dir).certificate.subject
    assert trust_code(store, impostor) == "trust.unknown_ca"


def test_a_self_signed_leaf_is_unknown(pki_dir: Path) -> None:
    store = TrustStore.from_dir(pki_dir)
    ident = pki.issue(pki_dir, "000.00.00.H56", key_type="ec", save=False)
    selfie = (
        x509.CertificateBuilder()
        .subject_name(ident.certificate.subject)
        .issuer_name(ident.certificate.subject)
        .public_key(ident.key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
        .add_extension(
            ident.certificate.extensions.get_extension_for_class(x509.KeyUsage).value, critical=True
        )
        .sign(ident.key, hashes.SHA256())
    )
    with pytest.raises(TrustError) as failure:
        store.validate(selfie)
    assert failure.value.code == "trust.unknown_ca"


def test_a_leaf_cannot_act_as_a_ca(pki_dir: Path) -> None:
    store = TrustStore.from_dir(pki_dir)
    participant = pki.load_identity(pki_dir, "000.00.15.H56")
    forged = pki.issue(pki_dir, "000.00.00.H56", key_type="ec", save=False, issuer=participant)
    assert forged.chain[1] == participant.certificate
    assert trust_code(store, forged) == "trust.chain_invalid"


def test_intermediate_ca_chain(own_pki: Path) -> None:
    store = TrustStore.from_dir(own_pki)
    sub_ca = pki.issue_ca(own_pki, "LGSP Demo Issuing CA", key_type="ec")
    ident = pki.issue(own_pki, "000.00.00.H56", key_type="ec", issuer=sub_ca, save=False)
    chain = store.validate(ident.certificate, [sub_ca.certificate])
    assert chain == (ident.certificate, sub_ca.certificate, pki.load_ca(own_pki).certificate)
    assert trust_code(store, pki.Identity(ident.key, ident.certificate, (ident.certificate,))) == (
        "trust.unknown_ca"
    )


def test_intermediate_configured_in_the_store_completes_the_chain(own_pki: Path) -> None:
    sub_ca = pki.issue_ca(own_pki, "LGSP Demo Issuing CA", key_type="ec")
    pem = sub_ca.certificate.public_bytes(serialization.Encoding.PEM)
    (own_pki / "trust" / "ca" / "issuing.pem").write_bytes(pem)
    store = TrustStore.from_dir(own_pki)
    assert store.anchors == (pki.load_ca(own_pki).certificate,)
    ident = pki.issue(own_pki, "000.00.00.H56", key_type="ec", issuer=sub_ca, save=False)
    assert len(store.validate(ident.certificate)) == 3


def test_expired_intermediate(own_pki: Path) -> None:
    store = TrustStore.from_dir(own_pki)
    old_ca = pki.issue_ca(
        own_pki, "Old Issuing CA", key_type="ec", valid_from=NOW - 30 * DAY, not_after=NOW - DAY
    )
    ident = pki.issue(own_pki, "000.00.00.H56", key_type="ec", issuer=old_ca, save=False)
    assert trust_code(store, ident) == "trust.expired"


def test_revoked_leaf_after_reload(own_pki: Path) -> None:
    store = TrustStore.from_dir(own_pki, require_crl=True)
    ident = pki.issue(own_pki, "000.00.00.H56", key_type="ec")
    assert store.validate(ident.certificate)
    pki.revoke(own_pki, "000.00.00.H56")
    store.reload()
    assert trust_code(store, ident) == "trust.revoked"
    assert trust_code(TrustStore.from_dir(own_pki), ident) == "trust.revoked"


def test_store_reloads_by_itself_after_the_interval(own_pki: Path) -> None:
    store = TrustStore.from_dir(own_pki, reload_interval_s=0.0)
    ident = pki.issue(own_pki, "000.00.00.H56", key_type="ec")
    assert store.validate(ident.certificate)
    pki.revoke(own_pki, "000.00.00.H56")
    assert trust_code(store, ident) == "trust.revoked"


def test_revoked_intermediate_and_leaf_on_the_intermediate_crl(own_pki: Path) -> None:
    root = pki.load_ca(own_pki)
    sub_ca = pki.issue_ca(own_pki, "LGSP Demo Issuing CA", key_type="ec")
    ident = pki.issue(own_pki, "000.00.00.H56", key_type="ec", issuer=sub_ca, save=False)
    crl_dir = own_pki / "trust" / "crl"
    write_crl(
        crl_dir / "issuing.crl", pki.sign_crl(sub_ca, [ident.certificate.serial_number]), der=True
    )
    store = TrustStore.from_dir(own_pki, require_crl=True)
    assert trust_code(store, ident) == "trust.revoked"

    write_crl(crl_dir / "issuing.crl", pki.sign_crl(sub_ca), der=True)
    store.reload()
    assert len(store.validate(ident.certificate, [sub_ca.certificate])) == 3
    write_crl(crl_dir / "root.crl.pem", pki.sign_crl(root, [sub_ca.certificate.serial_number]))
    store.reload()
    assert trust_code(store, ident) == "trust.revoked"


def test_missing_crl_is_an_error_only_when_required(own_pki: Path) -> None:
    sub_ca = pki.issue_ca(own_pki, "LGSP Demo Issuing CA", key_type="ec")
    ident = pki.issue(own_pki, "000.00.00.H56", key_type="ec", issuer=sub_ca, save=False)
    assert len(TrustStore.from_dir(own_pki).validate(ident.certificate, ident.chain[1:])) == 3
    assert trust_code(TrustStore.from_dir(own_pki, require_crl=True), ident) == "trust.crl_missing"


def test_a_crl_not_signed_by_the_issuer_is_not_believed(own_pki: Path, foreign_dir: Path) -> None:
    ident = pki.issue(own_pki, "000.00.00.H56", key_type="ec")
    forged = pki.sign_crl(pki.load_ca(foreign_dir))  # same issuer name, other key, lists nothing
    assert forged.issuer == pki.load_ca(own_pki).certificate.subject
    (own_pki / "trust" / "crl" / "root.crl.pem").unlink()
    write_crl(own_pki / "trust" / "crl" / "forged.pem", forged)
    assert trust_code(TrustStore.from_dir(own_pki), ident) == "trust.crl_invalid"


def test_a_forged_crl_beside_the_real_one_is_ignored(own_pki: Path, foreign_dir: Path) -> None:
    ident = pki.issue(own_pki, "000.00.00.H56", key_type="ec")
    pki.revoke(own_pki, "000.00.00.H56")
    write_crl(own_pki / "trust" / "crl" / "forged.pem", pki.sign_crl(pki.load_ca(foreign_dir)))
    assert trust_code(TrustStore.from_dir(own_pki), ident) == "trust.revoked"


def test_stale_crl_is_used_unless_refused(own_pki: Path) -> None:
    root = pki.load_ca(own_pki)
    ident = pki.issue(own_pki, "000.00.00.H56", key_type="ec")
    stale = pki.sign_crl(root, last_update=NOW - 10 * DAY, next_update=NOW - DAY)
    write_crl(own_pki / "trust" / "crl" / "root.crl.pem", stale)
    store = TrustStore.from_dir(own_pki)
    assert store.crls[0].is_stale(NOW)
    assert store.validate(ident.certificate)
    refusing = TrustStore.from_dir(own_pki, refuse_stale_crl=True)
    assert trust_code(refusing, ident) == "trust.crl_stale"
    stale_revoking = pki.sign_crl(
        root, [ident.certificate.serial_number], last_update=NOW - 10 * DAY, next_update=NOW - DAY
    )
    write_crl(own_pki / "trust" / "crl" / "root.crl.pem", stale_revoking)
    assert trust_code(TrustStore.from_dir(own_pki), ident) == "trust.revoked"


def test_a_stale_crl_triggers_a_reload(own_pki: Path) -> None:
    root = pki.load_ca(own_pki)
    ident = pki.issue(own_pki, "000.00.00.H56", key_type="ec")
    crl_path = own_pki / "trust" / "crl" / "root.crl.pem"
    write_crl(crl_path, pki.sign_crl(root, last_update=NOW - 10 * DAY, next_update=NOW - DAY))
    store = TrustStore.from_dir(own_pki, reload_interval_s=None)
    assert store.validate(ident.certificate)
    write_crl(crl_path, pki.sign_crl(root, [ident.certificate.serial_number], number=2))
    os.utime(crl_path, ns=(1, 1))  # a different mtime even on coarse clocks
    assert trust_code(store, ident) == "trust.revoked"


def test_static_store_without_files(pki_dir: Path) -> None:
    root = pki.load_ca(pki_dir)
    ident = pki.issue(pki_dir, "000.00.00.H56", key_type="ec", save=False)
    store = TrustStore([root.certificate], [pki.sign_crl(root, [ident.certificate.serial_number])])
    assert trust_code(store, ident) == "trust.revoked"
    assert trust_code(TrustStore(), ident) == "trust.unknown_ca"


def test_configuration_errors(tmp_path: Path, own_pki: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        TrustStore.from_dir(tmp_path / "nowhere")
    assert missing.value.code == "config.trust_missing"
    (own_pki / "trust" / "crl" / "broken.crl").write_bytes(b"not a CRL")
    with pytest.raises(ConfigError) as broken:
        TrustStore.from_dir(own_pki)
    assert broken.value.code == "config.trust_file"


def test_deleted_crl_files_are_forgotten(own_pki: Path) -> None:
    copy = own_pki / "trust" / "crl" / "copy.pem"
    shutil.copy(own_pki / "trust" / "crl" / "root.crl.pem", copy)
    store = TrustStore.from_dir(own_pki)
    assert len(store.crls) == 2
    copy.unlink()
    store.reload()
    assert len(store.crls) == 1


def test_validating_after_the_root_expired(pki_dir: Path) -> None:
    store = TrustStore.from_dir(pki_dir)
    root = pki.load_ca(pki_dir).certificate
    leaf = pki.issue(pki_dir, "000.00.00.H56", key_type="ec", valid_days=5000, save=False)
    assert leaf.certificate.not_valid_after_utc > root.not_valid_after_utc
    assert trust_code(store, leaf, at=root.not_valid_after_utc + DAY) == "trust.expired"


# --- the decision cache ---------------------------------------------------------------------


def test_a_chain_validated_once_is_answered_from_the_cache(own_pki: Path) -> None:
    store = TrustStore.from_dir(own_pki, require_crl=True, reload_interval_s=None)
    ident = pki.issue(own_pki, "000.00.00.H56", key_type="ec")
    first = store.validate(ident.certificate, ident.chain[1:])
    pem = ident.certificate.public_bytes(serialization.Encoding.PEM)
    again = x509.load_pem_x509_certificate(pem)
    assert store.validate(again, ident.chain[1:]) == first  # the same chain, parsed afresh
    info = store.cache_info()
    assert info is not None
    assert (info.hits, info.misses, info.size) == (1, 1, 1)
    store.validate(ident.certificate)  # other intermediates offered: decided on its own
    assert store.cache_info() == type(info)(1, 2, 2)


def test_a_cached_chain_is_refused_once_its_certificate_is_revoked(own_pki: Path) -> None:
    store = TrustStore.from_dir(own_pki, require_crl=True, reload_interval_s=None)
    ident = pki.issue(own_pki, "000.00.00.H56", key_type="ec")
    for _ in range(2):
        store.validate(ident.certificate, ident.chain[1:])
    assert store.cache_info().hits == 1  # type: ignore[union-attr]
    pki.revoke(own_pki, "000.00.00.H56")
    assert store.validate(ident.certificate, ident.chain[1:])  # the CRL not re-read yet
    store.reload()  # what the reload interval does by itself
    assert trust_code(store, ident) == "trust.revoked"
    assert trust_code(store, ident) == "trust.revoked"  # refusals are not cached as trusted


def test_a_cached_chain_is_refused_after_its_certificate_expired(pki_dir: Path) -> None:
    now = dt.datetime.now(dt.UTC)  # not the module's NOW: the session PKI may be younger
    store = TrustStore.from_dir(pki_dir)
    short = pki.issue(
        pki_dir,
        "000.00.00.H56",
        key_type="ec",
        valid_from=now - DAY,
        not_after=now + DAY,
        save=False,
    )
    store.validate(short.certificate, short.chain[1:], at=now)
    assert store.validate(short.certificate, short.chain[1:], at=now + DAY / 2)
    assert store.cache_info().hits == 1  # type: ignore[union-attr]
    assert trust_code(store, short, at=now + 2 * DAY) == "trust.expired"
    assert trust_code(store, short, at=now - 2 * DAY) == "trust.not_yet_valid"


def test_a_cached_decision_ends_when_its_crl_goes_stale(own_pki: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    root = pki.load_ca(own_pki)
    ident = pki.issue(own_pki, "000.00.00.H56", key_type="ec")
    crl = pki.sign_crl(root, last_update=now - DAY, next_update=now + DAY)
    write_crl(own_pki / "trust" / "crl" / "root.crl.pem", crl)
    store = TrustStore.from_dir(own_pki, refuse_stale_crl=True, reload_interval_s=None)
    store.validate(ident.certificate, at=now)
    assert store.validate(ident.certificate, at=now + DAY / 2)
    assert trust_code(store, ident, at=now + 2 * DAY) == "trust.crl_stale"


def test_the_cache_is_bounded_and_can_be_off(pki_dir: Path) -> None:
    store = TrustStore.from_dir(pki_dir, cache_entries=2)
    idents = [pki.load_identity(pki_dir, p.organ_id) for p in pki.DEMO_PARTICIPANTS[:4]]
    for ident in idents:
        store.validate(ident.certificate)
    assert store.cache_info().size == 2  # type: ignore[union-attr]
    store.validate(idents[0].certificate)  # the oldest was evicted
    assert store.cache_info().hits == 0  # type: ignore[union-attr]
    uncached = TrustStore.from_dir(pki_dir, cache_entries=0)
    assert uncached.validate(idents[0].certificate)
    assert uncached.cache_info() is None
