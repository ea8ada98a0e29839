"""Intake records for the store's tests: a plausible new document, and a status package."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from gateway.edxml.formats import PackageFormat
from gateway.edxml.model import PackageKind, StatusCode
from gateway.store import NewDocument


def new_document(**overrides: Any) -> NewDocument:
    """A plausible intake record of a new document; override any field."""
    fields: dict[str, Any] = {
        "dedup_key": f"000.00.00.H56|{secrets.token_hex(4)}|0",
        "kind": PackageKind.DOCUMENT,
        "sender": "000.00.00.H56",
        "document_id": "000.00.00.H56,2024/05/02,123/UBND-VP",
        "format": PackageFormat.XML,
        "signer_fingerprint": "ab" * 32,
        "signer_subject": "CN=UBND tỉnh Thanh Hóa",
        "algorithm": "rsa-sha256",
        "caller": "client:000.00.00.H56",
        "received_at": datetime.now(UTC),
        "subject": "Công văn về việc triển khai",
    }
    fields.update(overrides)
    return NewDocument(**fields)


def new_status(sender: str, **overrides: Any) -> NewDocument:
    """A status package's intake record from ``sender``: an acceptance, with no subject."""
    fields: dict[str, Any] = {
        "kind": PackageKind.STATUS,
        "sender": sender,
        "status_code": StatusCode.ACCEPTANCE,
        "subject": None,
    }
    return new_document(**{**fields, **overrides})
