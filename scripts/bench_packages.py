"""The benchmarks' signed packages: small status packages and re-addressed copies of a real one."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gateway.demo import pki  # noqa: E402
from gateway.demo.layout import DemoSetup  # noqa: E402
from gateway.demo.participants import organization  # noqa: E402
from gateway.edxml import build  # noqa: E402
from gateway.edxml.model import (  # noqa: E402
    DocumentPackage,
    StatusCode,
    TraceHeader,
)
from gateway.edxml.xml_codec import parse_package, serialize_package  # noqa: E402
from gateway.signatures.xmldsig import sign_xml  # noqa: E402

REAL_SAMPLE = REPO / "tests" / "data" / "conformance" / "edoc_new.edxml"
DEPARTMENT = "000.00.04.H56"  # the push recipient
DISTRICT = "000.00.15.H56"  # the sender of every timed package
STATUS_CODES = tuple(StatusCode)


class Signer:
    """Signs packages as one demo participant (RSA-2048, the demo PKI's key type)."""

    def __init__(self, setup: DemoSetup, organ_id: str) -> None:
        self._identity = pki.load_identity(setup.pki_dir, organ_id)

    def sign(self, data: bytes) -> bytes:
        return sign_xml(data, self._identity.key, self._identity.chain)


def original_documents(count: int) -> list[DocumentPackage]:
    """Documents from the department to the district: the ones the status packages answer."""
    return [
        build.new_document(
            organization(DEPARTMENT),
            [organization(DISTRICT)],
            code_number=str(100_000 + i),
            code_notation="SNV-VP",
            subject="V/v thử nghiệm hiệu năng",
            content="Nội dung",
            attachments=[("cong-van.pdf", secrets.token_bytes(512), "application/pdf")],
        )
        for i in range(count)
    ]


def status_packages(
    signer: Signer, originals: Sequence[DocumentPackage], count: int, *, first: int = 0
) -> list[bytes]:
    """``count`` signed ~2 KB status packages from the district, all distinct (timestamp)."""
    start = datetime.now(UTC) - timedelta(days=1)
    return [
        signer.sign(
            serialize_package(
                build.status_for(
                    originals[i % len(originals)],
                    organization(DISTRICT),
                    STATUS_CODES[i % len(STATUS_CODES)],
                    now=start + timedelta(seconds=i),
                )
            )
        )
        for i in range(first, first + count)
    ]


def real_packages(signer: Signer, count: int, *, first: int = 0) -> list[bytes]:
    """``count`` signed copies of edoc_new (~370 KB) from the district to the department."""
    template = parse_package(REAL_SAMPLE.read_bytes())
    assert isinstance(template, DocumentPackage)
    header = template.header
    assert header.code is not None
    marker = "BENCHNUMBER"
    header = replace(
        header,
        from_=organization(DISTRICT),
        to=(organization(DEPARTMENT),),
        document_id=f"{DISTRICT},2024/05/20,{marker}/UBND-VP",
        code=replace(header.code, code_number=marker, code_notation="UBND-VP"),
    )
    trace = replace(
        template.trace_header_list, trace_headers=(TraceHeader(DISTRICT, build.format_timestamp()),)
    )
    data = serialize_package(
        replace(template, header=header, trace_header_list=trace, signature_xml=None)
    )
    run = secrets.token_hex(3)
    return [
        signer.sign(data.replace(marker.encode(), f"{run}-{first + i}".encode()))
        for i in range(count)
    ]
