"""Certificates from untrusted bytes: parsed once per distinct encoding, refusals never kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from pki_fixtures import shared_pki

from gateway.demo import pki
from gateway.signatures.certificates import load_untrusted_der


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


def test_a_malformed_certificate_is_refused_every_time(pki_dir: Path) -> None:
    [leaf, *_] = pki.load_identity(pki_dir, "000.00.04.H56").chain
    broken = leaf.public_bytes(Encoding.DER)[:-1]  # cut short: no longer a certificate
    for _ in range(2):
        with pytest.raises(ValueError, match="malformed certificate"):
            load_untrusted_der(broken)
