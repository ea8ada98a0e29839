"""``lgsp archive verify-bundle``: check an evidence bundle offline, with nothing but its bytes
and the trust anchors (no gateway, no store).

In order: the file is exactly what its members give (``bundle_format.read_zip``); the manifest
is signed by the gateway and lists every member's SHA-256; every package hashes to what its
received event recorded; every event's digest, recomputed from its record, lies on a path whose
chain hashes end at a checkpoint; each checkpoint is signed by the gateway over that hash and
time-stamped by the TSA over its statement; the receipt is the gateway's over the document's
recorded claims. Any failure is a ``SignatureError`` naming what failed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509

from gateway.core.errors import LgspError, SignatureError
from gateway.evidence.bundle_format import (
    BUNDLE_FORMAT,
    BUNDLE_TYPE,
    CHECKPOINTS,
    MANIFEST,
    PACKAGES,
    PATH,
    RECEIPT,
    RECORDS,
    Trust,
    read_zip,
    sha256_hex,
)
from gateway.evidence.checkpoints import CHECKPOINT_TYPE, fingerprint
from gateway.evidence.tsa import check_token
from gateway.intake.receipts import Receipt
from gateway.signatures.jws import JwsCheck, verify_jws
from gateway.signatures.truststore import TrustStore
from gateway.store.chain import DOCUMENT_FIELDS, EVENT_FIELDS, RECEIVED, entry_digest, link

_DOC = {name: i for i, name in enumerate(DOCUMENT_FIELDS)}


@dataclass(slots=True)
class BundleReport:
    """What a bundle proves, as lines for a person; ``pinned`` False when it was checked only
    against the anchors it carries itself."""

    document: str
    pinned: bool
    lines: list[str] = field(default_factory=list)


def check_bundle(data: bytes, trust: Trust | None = None) -> BundleReport:
    """Check a bundle; its report, or ``SignatureError`` naming the first thing that fails."""
    members = read_zip(data)
    given = trust if trust is not None else Trust.from_members(members)
    if not given.anchors:
        raise SignatureError(
            "no trust anchor to check the signatures against", code="evidence.untrusted"
        )
    store = TrustStore(given.anchors)
    manifest, signer = _manifest(members, given, store)
    pinned = given.gateway_certs or (signer,)
    report = BundleReport(str(manifest["document"]), pinned=bool(given.gateway_certs))
    try:
        records = _records(members)
        main = _main_document(records, report.document)
        _packages(members, records)
        _Paths(members, pinned, store, given.anchors, report).check(records)
        _receipt(members, main, pinned, store, _when(manifest.get("made_at"), "the manifest"))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise SignatureError(
            f"the bundle's records are malformed: {exc!r}", code="evidence.bundle_invalid"
        ) from exc
    report.lines[:0] = [
        f"document {main[_DOC['id']]} ({main[_DOC['document_id']]}) from "
        f"{main[_DOC['sender']]}, received {main[_DOC['received_at']]}",
        f"package sha256:{main[_DOC['package_sha256']]}: its bytes as received",
        f"{len(records)} events of it, its deliveries and "
        f"{len({r['event']['document'] for r in records}) - 1} status answers, each on the chain",
        "receipt: signed by the gateway over the recorded document",
    ]
    report.lines.append(
        f"gateway certificate sha256:{fingerprint(signer)} ({signer.subject.rfc4514_string()})"
    )
    report.lines += [
        f"anchor sha256:{fingerprint(a)} ({a.subject.rfc4514_string()})" for a in given.anchors
    ]
    return report


def _signed(token: bytes, what: str, pinned: tuple[x509.Certificate, ...] | None) -> JwsCheck:
    try:
        checked = verify_jws(token)
    except LgspError as exc:
        raise SignatureError(f"{what}: {exc}", code="evidence.bundle_invalid") from exc
    if pinned is not None and fingerprint(checked.signer_certificate) not in {
        fingerprint(c) for c in pinned
    }:
        raise SignatureError(
            f"{what}: not signed by the gateway's certificate", code="evidence.signer"
        )
    return checked


def _chained(store: TrustStore, checked: JwsCheck, at: datetime, what: str) -> None:
    try:
        store.validate(checked.signer_certificate, checked.certificates[1:], at=at)
    except LgspError as exc:
        raise SignatureError(
            f"{what}: the signer's certificate is not trusted: {exc}",
            code="evidence.bundle_invalid",
        ) from exc


def _claims(checked: JwsCheck, what: str) -> dict[str, Any]:
    try:
        claims = json.loads(checked.payload)
    except ValueError as exc:
        raise SignatureError(f"{what}: unreadable claims", code="evidence.bundle_invalid") from exc
    if not isinstance(claims, dict):
        raise SignatureError(f"{what}: unreadable claims", code="evidence.bundle_invalid")
    return claims


def _manifest(
    members: dict[str, bytes], trust: Trust, store: TrustStore
) -> tuple[dict[str, Any], x509.Certificate]:
    if MANIFEST not in members:
        raise SignatureError("no manifest", code="evidence.bundle_invalid")
    checked = _signed(members[MANIFEST], "the manifest", trust.gateway_certs or None)
    claims = _claims(checked, "the manifest")
    if claims.get("typ") != BUNDLE_TYPE or claims.get("format") != BUNDLE_FORMAT:
        raise SignatureError(
            "the manifest is not an evidence bundle's (format 1)", code="evidence.bundle_invalid"
        )
    _chained(store, checked, _when(claims.get("made_at"), "the manifest"), "the manifest")
    files = {n: sha256_hex(d) for n, d in members.items() if n != MANIFEST}
    if claims.get("files") != files:
        listed = claims.get("files") if isinstance(claims.get("files"), dict) else {}
        changed = sorted(set(files.items()) ^ set(dict(listed or {}).items()))
        raise SignatureError(
            f"the members differ from the signed manifest: {changed[0][0]}",
            code="evidence.bundle_invalid",
        )
    return claims, checked.signer_certificate


def _when(value: object, what: str) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise SignatureError(f"{what}: no readable time", code="evidence.bundle_invalid") from exc


def _json_member(members: dict[str, bytes], name: str) -> Any:
    try:
        return json.loads(members[name])
    except (KeyError, ValueError) as exc:
        raise SignatureError(
            f"{name} is missing or unreadable", code="evidence.bundle_invalid"
        ) from exc


def _records(members: dict[str, bytes]) -> list[dict[str, Any]]:
    records = _json_member(members, RECORDS).get("entries")
    if not isinstance(records, list) or not records:
        raise SignatureError(f"{RECORDS} holds no events", code="evidence.bundle_invalid")
    last = 0
    for record in records:
        event = record.get("event") if isinstance(record, dict) else None
        if not isinstance(event, dict) or sorted(event) != sorted(EVENT_FIELDS):
            raise SignatureError(
                f"{RECORDS}: an event without exactly the chained fields",
                code="evidence.bundle_invalid",
            )
        if not isinstance(event["id"], int) or event["id"] <= last:
            raise SignatureError(
                f"{RECORDS}: events out of chain order at {event['id']}",
                code="evidence.bundle_invalid",
            )
        last = event["id"]
        covers = record.get("covers")
        if (event["kind"] == RECEIVED) != (covers is not None):
            raise SignatureError(
                f"{RECORDS}: event {last} and the records it covers disagree",
                code="evidence.bundle_invalid",
            )
        record["digest"] = entry_digest(event, covers)
    return records


def _main_document(records: list[dict[str, Any]], document: str) -> list[Any]:
    received = {r["event"]["document"]: r["covers"] for r in records if r["covers"] is not None}
    if document not in received:
        raise SignatureError(
            f"the bundle has no received event of document {document}",
            code="evidence.bundle_invalid",
        )
    for record in records:
        covers = received.get(record["event"]["document"])
        if covers is None:
            raise SignatureError(
                f"event {record['event']['id']}: its document was not received here",
                code="evidence.bundle_invalid",
            )
        doc_id = covers[0][_DOC["id"]]
        if doc_id != document and covers[0][_DOC["in_reply_to"]] != document:
            raise SignatureError(
                f"event {record['event']['id']}: about another document",
                code="evidence.bundle_invalid",
            )
    return list(received[document][0])


def _packages(members: dict[str, bytes], records: list[dict[str, Any]]) -> None:
    expected = {r["covers"][2][0]: r["covers"][2][1] for r in records if r["covers"] is not None}
    present = {n[len(PACKAGES) : -4] for n in members if n.startswith(PACKAGES)}
    if present != set(expected):
        raise SignatureError(
            "the packages differ from the received events'", code="evidence.bundle_invalid"
        )
    for sha, size in expected.items():
        data = members[f"{PACKAGES}{sha}.bin"]
        if hashlib.sha256(data).hexdigest() != sha or len(data) != size:
            raise SignatureError(
                f"package {sha} does not hash to its recorded SHA-256 and size",
                code="evidence.bundle_invalid",
            )


@dataclass(frozen=True, slots=True)
class _Paths:
    """The chain paths and the checkpoints they end at."""

    members: dict[str, bytes]
    pinned: tuple[x509.Certificate, ...]
    store: TrustStore
    anchors: tuple[x509.Certificate, ...]
    report: BundleReport

    def check(self, records: list[dict[str, Any]]) -> None:
        digests = {r["event"]["id"]: r["digest"] for r in records}
        segments = _json_member(self.members, PATH).get("segments")
        if not isinstance(segments, list) or not segments:
            raise SignatureError(f"{PATH} holds no path", code="evidence.bundle_invalid")
        on_path: set[int] = set()
        used: set[str] = set()
        for segment in segments:
            seq, running, expected = segment["checkpoint"], segment["start_hash"], segment["start"]
            for entry_id, digest in segment["digests"]:
                if entry_id != expected:
                    raise SignatureError(
                        f"the path to checkpoint {seq} skips from {expected} to {entry_id}",
                        code="evidence.bundle_invalid",
                    )
                if entry_id in digests and digests[entry_id] != digest:
                    raise SignatureError(
                        f"event {entry_id}: its record does not hash to the path's digest",
                        code="evidence.bundle_invalid",
                    )
                running, expected = link(running, digest), entry_id + 1
                on_path.add(entry_id)
            if expected != seq + 1:
                raise SignatureError(
                    f"the path to checkpoint {seq} does not reach it",
                    code="evidence.bundle_invalid",
                )
            used |= self.checkpoint(seq, running)
        if set(digests) - on_path:
            raise SignatureError(
                f"event {min(set(digests) - on_path)} is on no path to a checkpoint",
                code="evidence.bundle_invalid",
            )
        if {n for n in self.members if n.startswith(CHECKPOINTS)} != used:
            raise SignatureError(
                "the checkpoints differ from the paths'", code="evidence.bundle_invalid"
            )

    def checkpoint(self, seq: int, chain_hash: str) -> set[str]:
        """Check checkpoint ``seq`` against the hash its path reached; the members it used."""
        name, what = f"{CHECKPOINTS}{seq}", f"checkpoint {seq}"
        if f"{name}.jws" not in self.members:
            raise SignatureError(f"{what} is missing", code="evidence.bundle_invalid")
        statement = self.members[f"{name}.jws"]
        checked = _signed(statement, what, self.pinned)
        claims = _claims(checked, what)
        signed_at = _when(claims.get("signed_at"), what)
        _chained(self.store, checked, signed_at, what)
        if claims.get("typ") != CHECKPOINT_TYPE or claims.get("seq") != seq:
            raise SignatureError(
                f"{what}: not a checkpoint of entry {seq}", code="evidence.bundle_invalid"
            )
        if claims.get("hash") != chain_hash:
            raise SignatureError(
                f"{what}: the path's chain hash is not the signed one",
                code="evidence.bundle_invalid",
            )
        used = {f"{name}.jws"}
        line = f"checkpoint {seq} of store {claims.get('store')}: signed {signed_at.isoformat()}"
        if f"{name}.tsr" in self.members:
            try:
                at = check_token(self.members[f"{name}.tsr"], statement, self.anchors)
            except LgspError as exc:
                raise SignatureError(f"{what}: {exc}", code="evidence.bundle_invalid") from exc
            used.add(f"{name}.tsr")
            line += f", time-stamped {at.isoformat()} by the TSA"
        else:
            line += ", not time-stamped (no TSA was configured)"
        self.report.lines.append(line)
        return used


def _receipt(
    members: dict[str, bytes],
    main: list[Any],
    pinned: tuple[x509.Certificate, ...],
    store: TrustStore,
    signed_at: datetime,
) -> None:
    if RECEIPT not in members:
        raise SignatureError("no receipt", code="evidence.bundle_invalid")
    checked = _signed(members[RECEIPT], "the receipt", pinned)
    expected = Receipt(
        id=main[_DOC["id"]],
        package_sha256=main[_DOC["package_sha256"]],
        sender=main[_DOC["sender"]],
        document_id=main[_DOC["document_id"]],
        accepted_at=_when(main[_DOC["received_at"]], "the document"),
    ).claims()
    if _claims(checked, "the receipt") != expected:
        raise SignatureError(
            "the receipt's claims are not the recorded document's", code="evidence.bundle_invalid"
        )
    _chained(store, checked, signed_at, "the receipt")  # signed again with the bundle
