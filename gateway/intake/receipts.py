"""Intake receipts: a JWS signed by the gateway over what it accepted, and when."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring_ascii

from gateway.signatures.identity import Identity
from gateway.signatures.jws import CompactSigner
from gateway.store.records import DocumentRecord

RECEIPT_TYPE = "lgsp-receipt+jwt"
# The payload as ``json.dumps(claims, separators=(",", ":"), sort_keys=True)`` writes it: the
# claims' names sorted, each text value as json's ASCII-escaped string (the C encoder json uses);
# ``tests/signatures/test_receipts.py`` holds it to ``json.dumps``.
_PAYLOAD = (
    '{"accepted_at":%s,"document_id":%s,"id":%s,"package_sha256":%s,"sender":%s,"typ":'
    + encode_basestring_ascii(RECEIPT_TYPE)
    + "}"
)


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof that the gateway received a package: its id, SHA-256, sender and acceptance time."""

    id: str
    package_sha256: str
    sender: str
    document_id: str | None
    accepted_at: datetime

    @classmethod
    def of(cls, document: DocumentRecord) -> Receipt:
        """The receipt of a recorded document (what intake answers, what a bundle carries)."""
        return cls(
            id=document.id,
            package_sha256=document.package_sha256,
            sender=document.sender,
            document_id=document.document_id,
            accepted_at=document.received_at,
        )

    def claims(self) -> dict[str, object]:
        return {
            "typ": RECEIPT_TYPE,
            "id": self.id,
            "package_sha256": self.package_sha256,
            "sender": self.sender,
            "document_id": self.document_id,
            "accepted_at": self.accepted_at.isoformat(),
        }


class ReceiptSigner:
    """Signs receipts with the gateway's own identity (``pki/gateway``): ES256 for its P-256 key."""

    def __init__(self, identity: Identity) -> None:
        self._signer = CompactSigner.of(identity.key, identity.chain, alg=identity.jws_algorithm)
        self.algorithm = self._signer.algorithm

    def sign(self, receipt: Receipt) -> str:
        return self._signer.sign(payload_of(receipt))


def payload_of(receipt: Receipt) -> bytes:
    """The signed payload: the claims as compact JSON, names sorted, ASCII (a value that is not
    exactly ``str`` goes through ``json.dumps`` itself)."""
    texts = (receipt.id, receipt.package_sha256, receipt.sender)
    doc = receipt.document_id
    if all(type(t) is str for t in texts) and (doc is None or type(doc) is str):
        return (
            _PAYLOAD
            % (
                encode_basestring_ascii(receipt.accepted_at.isoformat()),
                "null" if doc is None else encode_basestring_ascii(doc),
                encode_basestring_ascii(receipt.id),
                encode_basestring_ascii(receipt.package_sha256),
                encode_basestring_ascii(receipt.sender),
            )
        ).encode("ascii")
    return json.dumps(receipt.claims(), separators=(",", ":"), sort_keys=True).encode()
