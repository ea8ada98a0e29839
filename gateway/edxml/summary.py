"""A human summary of a package (header fields and attachments) for ``lgsp inspect``."""

from __future__ import annotations

import binascii
from typing import Any

from gateway.edxml.formats import PackageFormat
from gateway.edxml.model import Attachment, DocumentPackage, Package, StatusPackage


def _attachment_size(attachment: Attachment) -> int | None:
    try:
        return len(attachment.data())
    except (binascii.Error, ValueError):
        return None


def summarize(package: Package, fmt: PackageFormat) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "format": fmt.value,
        "kind": package.kind.value,
        "sender": package.sender,
        "recipients": list(package.recipients),
        "document_id": package.document_id,
        "signed": package.signature_xml is not None or fmt is PackageFormat.JWS,
    }
    if isinstance(package, StatusPackage):
        header = package.header
        summary |= {
            "status_code": header.status_code.value,
            "status_name": header.status_code.name.lower(),
            "description": header.description,
            "timestamp": header.timestamp,
        }
        return summary
    return summary | _document_fields(package)


def _document_fields(package: DocumentPackage) -> dict[str, Any]:
    header = package.header
    business = package.trace_header_list.business
    return {
        "business_doc_type": business.business_doc_type.name.lower() if business else None,
        "code": str(header.code) if header.code else None,
        "subject": header.subject,
        "promulgation_date": (
            header.promulgation_info.promulgation_date if header.promulgation_info else None
        ),
        "trace": [
            {"organ_id": t.organ_id, "timestamp": t.timestamp}
            for t in package.trace_header_list.trace_headers
        ],
        "attachments": [
            {
                "content_id": a.content_id,
                "name": a.attachment_name,
                "content_type": a.content_type,
                "size_bytes": _attachment_size(a),
                "zip": a.is_zip(),
            }
            for a in package.attachments
        ],
    }


def summary_lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    for key, value in summary.items():
        if key in ("attachments", "trace", "recipients"):
            continue
        lines.append(f"{key:<18} {value if value is not None else '-'}")
    lines.append(f"{'recipients':<18} {', '.join(summary['recipients']) or '-'}")
    for hop in summary.get("trace", []):
        lines.append(f"{'trace':<18} {hop['organ_id']} at {hop['timestamp']}")
    for att in summary.get("attachments", []):
        size = att["size_bytes"]
        size_text = f"{size} bytes" if size is not None else "invalid base64"
        zip_text = ", zip" if att["zip"] else ""
        lines.append(
            f"{'attachment':<18} {att['name']} ({att['content_type']}, {size_text}{zip_text}) "
            f"{att['content_id']}"
        )
    return lines
