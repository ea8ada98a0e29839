"""The chaos soak's documents: a mixed load of signed packages, each with its expected deliveries.

Every 20 documents (all distinct, all signed before the run by the demo participants' keys):

======== === ======================================================= =================
kind     n   from -> to                                              delivered by
======== === ======================================================= =================
small    5   district -> department (+ the business, every other)     push + mailbox
province 3   district -> province                                    push
party    3   district -> party committee                             push
status   4   district's status answers to the department's originals push
original 2   department -> district + commune                        mailbox
national 2   district -> national 000.00.00.G22                      national (the simulator)
real     1   edoc_new.edxml (~370 KB) district -> department          push (claim check)
======== === ======================================================= =================

Each push recipient has an endpoint of its own on the soak's receivers (the fault windows make
one answer 5xx, one time out and one slow), the mailboxes are read by the soak's mailbox reader
and the national agencies' system reads the simulator.
"""

from __future__ import annotations

import hashlib
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_packages import REAL_SAMPLE

from gateway.core.methods import DeliveryMethod
from gateway.demo import pki
from gateway.demo.participants import organization
from gateway.edxml import build
from gateway.edxml.model import DocumentPackage, StatusCode, TraceHeader
from gateway.edxml.xml_codec import parse_package, serialize_package
from gateway.signatures.xmldsig import sign_xml

PROVINCE = "000.00.00.H56"
DEPARTMENT = "000.00.04.H56"
DISTRICT = "000.00.15.H56"
COMMUNE = "000.01.15.H56"
PARTY = "000.00.00.A56"
BUSINESS = "0101234567"
NATIONAL = "000.00.00.G22"

# Push recipients and their endpoint on the receivers (the fault each endpoint may suffer).
PUSH_ENDPOINTS = {DEPARTMENT: "department", PROVINCE: "province", PARTY: "party"}
MAILBOXES = (DISTRICT, COMMUNE, BUSINESS)
METHOD_OF = {
    **dict.fromkeys(PUSH_ENDPOINTS, DeliveryMethod.PUSH),
    **dict.fromkeys(MAILBOXES, DeliveryMethod.MAILBOX),
    NATIONAL: DeliveryMethod.NATIONAL,
}
CYCLE = (
    "original", "small", "province", "status", "party", "national", "small", "status",
    "province", "small", "original", "party", "status", "small", "national", "province",
    "status", "party", "small", "real",
)  # fmt: skip
STATUS_CODES = tuple(StatusCode)
REAL_MARKER = "SOAKNUMBER"
ORIGINAL_LAG = 20  # a status answers an original submitted at least this many documents before


@dataclass(frozen=True, slots=True)
class Doc:
    """One package of the load: who sends it, to whom, and its bytes."""

    index: int
    kind: str
    sender: str
    recipients: tuple[str, ...]
    body: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def real_template() -> bytes:
    """edoc_new.edxml from the district to the department, unsigned, its number a marker."""
    template = parse_package(REAL_SAMPLE.read_bytes())
    assert isinstance(template, DocumentPackage)
    header = template.header
    assert header.code is not None
    header = replace(
        header,
        from_=organization(DISTRICT),
        to=(organization(DEPARTMENT),),
        document_id=f"{DISTRICT},2024/05/20,{REAL_MARKER}/UBND-VP",
        code=replace(header.code, code_number=REAL_MARKER, code_notation="UBND-VP"),
    )
    trace = replace(
        template.trace_header_list, trace_headers=(TraceHeader(DISTRICT, build.format_timestamp()),)
    )
    return serialize_package(
        replace(template, header=header, trace_header_list=trace, signature_xml=None)
    )


class Mix:
    """Makes the soak's documents, in order (``make(count)``), signed with the demo keys."""

    def __init__(self, pki_dir: Path) -> None:
        self._identities = {o: pki.load_identity(pki_dir, o) for o in (DISTRICT, DEPARTMENT)}
        self._run = secrets.token_hex(3)
        self._originals: list[tuple[int, DocumentPackage]] = []
        self._start = datetime.now(UTC) - timedelta(days=1)
        self._real = real_template()

    def make(self, count: int) -> Iterator[Doc]:
        for index in range(count):
            yield self._one(index, CYCLE[index % len(CYCLE)])

    def _document(
        self, index: int, sender: str, recipients: tuple[str, ...], attachment_bytes: int = 1024
    ) -> DocumentPackage:
        return build.new_document(
            organization(sender),
            [organization(r) for r in recipients],
            code_number=str(index),
            code_notation=f"SOAK-{self._run}",
            subject=f"V/v thử nghiệm độ bền (soak) số {index}",
            content="Nội dung",
            attachments=[
                ("cong-van.pdf", secrets.token_bytes(attachment_bytes), "application/pdf")
            ],
        )

    def _signed(self, sender: str, data: bytes) -> bytes:
        identity = self._identities[sender]
        return sign_xml(data, identity.key, identity.chain)

    def _one(self, index: int, kind: str) -> Doc:
        if kind == "real":
            number = f"{self._run}-{index}".encode()
            body = self._signed(DISTRICT, self._real.replace(REAL_MARKER.encode(), number))
            return Doc(index, kind, DISTRICT, (DEPARTMENT,), body)
        if kind == "status":
            original = self._original_for(index)
            status = build.status_for(
                original,
                organization(DISTRICT),
                STATUS_CODES[index % len(STATUS_CODES)],
                now=self._start + timedelta(seconds=index),
            )
            body = self._signed(DISTRICT, serialize_package(status))
            return Doc(index, kind, DISTRICT, (DEPARTMENT,), body)
        sender, recipients = {
            "small": (DISTRICT, (DEPARTMENT, BUSINESS) if index % 2 else (DEPARTMENT,)),
            "province": (DISTRICT, (PROVINCE,)),
            "party": (DISTRICT, (PARTY,)),
            "original": (DEPARTMENT, (DISTRICT, COMMUNE)),
            "national": (DISTRICT, (NATIONAL,)),
        }[kind]
        document = self._document(index, sender, recipients)
        if kind == "original":
            self._originals.append((index, document))
        return Doc(
            index, kind, sender, recipients, self._signed(sender, serialize_package(document))
        )

    def _original_for(self, index: int) -> DocumentPackage:
        """The latest original at least ``ORIGINAL_LAG`` documents earlier (else the first)."""
        earlier = [doc for i, doc in self._originals if i <= index - ORIGINAL_LAG]
        if earlier:
            return earlier[-1]
        if self._originals:
            return self._originals[0][1]
        raise RuntimeError("a status before any original: CYCLE must start with one")
