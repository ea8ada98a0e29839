"""The answer to an accepted package is ``json.dumps`` of its fields, byte for byte, whatever the
receipt holds (a receipt needing no escaping is appended as it is)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.api.documents import accepted_json
from gateway.core.methods import DeliveryMethod
from gateway.edxml.formats import PackageFormat
from gateway.edxml.model import PackageKind
from gateway.intake.pipeline import IntakeOutcome
from gateway.store.records import DeliveryRecord, DeliveryState, DocumentRecord

AT = datetime(2026, 12, 5, 7, 0, tzinfo=UTC)
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
JWS = st.lists(st.text(B64URL, max_size=400), min_size=3, max_size=3).map(".".join)
RECEIPTS = st.one_of(JWS, st.text(max_size=60), st.text(st.characters(max_codepoint=0x80)))


def _document(document_id: str | None) -> DocumentRecord:
    return DocumentRecord(
        dedup_key="k",
        kind=PackageKind.STATUS,
        sender="000.00.15.H56",
        document_id=document_id,
        format=PackageFormat.XML,
        signer_fingerprint="f" * 64,
        signer_subject="CN=x",
        algorithm="rsa-sha256",
        caller="000.00.15.H56",
        received_at=AT,
        id="0190b2c4-8f3e-7c1a-9d2b-3e4f5a6b7c8d",
        package_sha256="0" * 64,
        size_bytes=4000,
    )


def _delivery(recipient: str) -> DeliveryRecord:
    return DeliveryRecord(
        id=f"d-{recipient}",
        document="0190b2c4-8f3e-7c1a-9d2b-3e4f5a6b7c8d",
        recipient=recipient,
        method=DeliveryMethod.PUSH,
        state=DeliveryState.QUEUED,
        attempts=0,
        last_error=None,
        business_status=None,
        business_status_at=None,
        created_at=AT,
        updated_at=AT,
        delivered_at=None,
        acked_at=None,
    )


def _reference(outcome: IntakeOutcome) -> str:
    """What ``web.json_response`` wrote before: ``json.dumps`` of the whole answer."""
    doc = outcome.document
    body: dict[str, Any] = {
        "id": doc.id,
        "document_id": doc.document_id,
        "kind": doc.kind.value,
        "duplicate": not outcome.created,
        "recipients": [
            {
                "organ_id": d.recipient,
                "state": d.state.value,
                "delivery_id": d.id,
                "method": d.method.value,
            }
            for d in outcome.deliveries
        ],
        "receipt": outcome.receipt,
    }
    return json.dumps(body)


@settings(max_examples=300, deadline=None)
@given(
    receipt=RECEIPTS,
    created=st.booleans(),
    document_id=st.one_of(st.none(), st.text(max_size=40)),
    recipients=st.lists(st.text(max_size=20), max_size=3),
)
def test_the_accepted_answer_is_json_dumps_of_it(
    receipt: str, created: bool, document_id: str | None, recipients: list[str]
) -> None:
    outcome = IntakeOutcome(
        created=created,
        document=_document(document_id),
        deliveries=tuple(_delivery(r) for r in recipients),
        receipt=receipt,
    )
    assert accepted_json(outcome) == _reference(outcome)
