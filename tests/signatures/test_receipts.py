"""Intake receipts: the payload is `json.dumps` of the claims, byte for byte; joserfc verifies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pki_fixtures import shared_pki

from gateway.demo import pki
from gateway.intake.receipts import Receipt, ReceiptSigner, payload_of
from gateway.signatures.identity import Identity
from gateway.signatures.jws import verify_jws

TEXT = st.text(st.characters(codec="utf-8"), max_size=60)  # quotes, controls, non-ASCII too
AT = st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=7))]))


def _reference(receipt: Receipt) -> bytes:
    """What ``ReceiptSigner`` signed before its payload was written by hand."""
    return json.dumps(receipt.claims(), separators=(",", ":"), sort_keys=True).encode()


@settings(max_examples=300, deadline=None)
@given(
    id=TEXT,
    package_sha256=TEXT,
    sender=TEXT,
    document_id=st.one_of(st.none(), TEXT),
    accepted_at=AT,
)
def test_the_payload_is_json_dumps_of_the_claims(**kw: Any) -> None:
    receipt = Receipt(**kw)
    assert payload_of(receipt) == _reference(receipt)


class _Text(str):
    """A text that is not exactly ``str`` (the payload then goes through ``json.dumps``)."""


def test_values_of_other_types_go_through_json_dumps() -> None:
    at = datetime(2026, 12, 5, 7, 0, tzinfo=UTC)
    odd = Receipt(id=_Text("a"), package_sha256="b", sender="c", document_id=None, accepted_at=at)
    assert payload_of(odd) == _reference(odd)


@pytest.fixture(scope="session")
def gateway_identity(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    issued = pki.issue(shared_pki(tmp_path_factory), "gateway", key_type="ec", save=False)
    return Identity(key=issued.key, certificate=issued.certificate, chain=issued.chain)


def test_a_receipt_verifies_with_joserfc_and_carries_its_claims(gateway_identity: Identity) -> None:
    receipt = Receipt(
        id="0190b2c4-8f3e-7c1a-9d2b-3e4f5a6b7c8d",
        package_sha256="0" * 64,
        sender="000.00.15.H56",
        document_id="000.00.15.H56,2024/05/20,1/UBND-VP Quảng Xương",
        accepted_at=datetime(2026, 12, 5, 7, 0, 1, 5, tzinfo=UTC),
    )
    signer = ReceiptSigner(gateway_identity)
    assert signer.algorithm == "ES256"
    check = verify_jws(signer.sign(receipt), allowed_algs=frozenset({"ES256"}))
    assert check.payload == _reference(receipt)
    assert json.loads(check.payload) == receipt.claims()
