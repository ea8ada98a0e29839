"""Validation of edXML packages: semantic rules on the records, and the XSD on the XML tree.

Errors reject a package; warnings are logged and the package goes on. Rules come from Bkav's
production checks and the reference's formats (reference §1.3, §1.4, §2); only what routing,
revocation or attachment integrity depends on is an error, because real producers are sloppy.

The rules, their codes and severities are tabled in ``docs/validation.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone

from gateway.edxml.attachments import check_attachments
from gateway.edxml.issues import Issue, Severity, ValidationReport, error, warning
from gateway.edxml.model import (
    Business,
    BusinessDocType,
    DocumentPackage,
    MessageHeader,
    Organization,
    Package,
    ResponseFor,
    StatusPackage,
    TraceHeaderList,
)
from gateway.edxml.xsd import validate_schema

__all__ = ["Issue", "Severity", "ValidationReport", "validate_package", "validate_schema"]

# ``validate_schema`` lives in ``gateway.edxml.xsd`` and is re-exported here, beside the rules.

HEADER = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"
TRACE = "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList"
BUSINESS = f"{TRACE}/Bussiness"
VIETNAM_TZ = timezone(timedelta(hours=7))

ORGAN_ID_STRICT = re.compile(r"[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}")
ORGAN_ID_TOLERANT = re.compile(r"[0-9A-Z]{2,3}(\.[0-9A-Z]{2,3}){2,3}")
TAX_CODE = re.compile(r"[0-9]{10}(-?[0-9]{3})?")
DOCUMENT_ID = re.compile(r"[^,\s]+,[0-9]{4}/[0-9]{2}/[0-9]{2},[^/]+/.+")
UUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
DATE_FORMAT = "%Y/%m/%d"
TIMESTAMP_FORMAT = "%Y/%m/%d %H:%M:%S"

ORGANIZATION_FIELDS = (
    ("OrganizationInCharge", "organization_in_charge"),
    ("OrganName", "organ_name"),
    ("OrganAdd", "organ_add"),
    ("Email", "email"),
    ("Telephone", "telephone"),
    ("Fax", "fax"),
    ("Website", "website"),
)
HEADER_GROUPS = (  # element, attribute, its required (element, attribute) children
    ("Code", "code", (("CodeNumber", "code_number"), ("CodeNotation", "code_notation"))),
    (
        "PromulgationInfo",
        "promulgation_info",
        (("Place", "place"), ("PromulgationDate", "promulgation_date")),
    ),
    ("DocumentType", "document_type", (("Type", "type"), ("TypeName", "type_name"))),
    (
        "SignerInfo",
        "signer_info",
        (("Competence", "competence"), ("Position", "position"), ("FullName", "full_name")),
    ),
    ("OtherInfo", "other_info", ()),
)
ORGANIZATION_CAPS = (
    ("OrganName", "organ_name", 500),
    ("OrganAdd", "organ_add", 500),
    ("Email", "email", 100),
    ("Telephone", "telephone", 20),
    ("Fax", "fax", 20),
)


def validate_package(pkg: Package, *, today: date | None = None) -> ValidationReport:
    """All semantic issues of a package; ``today`` (default: now in Vietnam) bounds dates."""
    if isinstance(pkg, StatusPackage):  # no date of a status package is bounded by today
        return ValidationReport(tuple(_status_issues(pkg)))
    return ValidationReport(tuple(_document_issues(pkg, today or datetime.now(VIETNAM_TZ).date())))


# -- status packages --------------------------------------------------------------------------


def _status_issues(pkg: StatusPackage) -> list[Issue]:
    h = pkg.header
    rf = h.response_for
    base = f"{HEADER}/ResponseFor"
    issues = _organ_id(h.from_.organ_id, f"{HEADER}/From/OrganId", "sender")
    if _blank(rf.document_id):
        issues.append(error("edxml.missing_field", f"{base}/DocumentId", "no referenced document"))
    else:
        issues += _document_id(rf.document_id, f"{base}/DocumentId")
    if _blank(rf.organ_id):
        message = "no OrganId of the referenced document's sender"
        issues.append(error("edxml.missing_field", f"{base}/OrganId", message))
    else:
        issues += _organ_id(rf.organ_id, f"{base}/OrganId", "recipient")
    issues += _date(rf.promulgation_date, f"{base}/PromulgationDate", DATE_FORMAT)
    if h.status_code.is_reserved:
        message = f"StatusCode {h.status_code.value} is reserved (no known meaning)"
        issues.append(warning("edxml.reserved_status_code", f"{HEADER}/StatusCode", message))
    issues += _required([("Timestamp", h.timestamp)], HEADER)
    issues += _date(h.timestamp, f"{HEADER}/Timestamp", TIMESTAMP_FORMAT)
    return issues


# -- document packages ------------------------------------------------------------------------


def _document_issues(pkg: DocumentPackage, today: date) -> list[Issue]:
    h = pkg.header
    return [
        *_organization(h.from_, f"{HEADER}/From", "sender"),
        *_recipients(h.to),
        *_header_fields(h, today),
        *_response_fors(h.response_for),
        *_trace(pkg.trace_header_list),
        *_business(pkg),
        *check_attachments(pkg),
    ]


def _organization(org: Organization, path: str, role: str) -> list[Issue]:
    issues = _organ_id(org.organ_id, f"{path}/OrganId", role)
    issues += _required(((name, getattr(org, attr)) for name, attr in ORGANIZATION_FIELDS), path)
    issues += _caps(((f"{path}/{n}", getattr(org, a), cap) for n, a, cap in ORGANIZATION_CAPS))
    return issues


def _recipients(to: tuple[Organization, ...]) -> list[Issue]:
    if not to:
        return [error("edxml.no_recipient", f"{HEADER}/To", "the document has no recipient")]
    issues: list[Issue] = []
    seen: set[str] = set()
    for index, org in enumerate(to, start=1):
        path = f"{HEADER}/To[{index}]"
        issues += _organization(org, path, "recipient")
        if org.organ_id in seen:
            message = f"recipient {org.organ_id!r} is listed more than once"
            issues.append(error("edxml.duplicate_recipient", f"{path}/OrganId", message))
        seen.add(org.organ_id)
    return issues


def _header_fields(h: MessageHeader, today: date) -> list[Issue]:
    issues = _required(
        [
            ("DocumentId", h.document_id),
            ("Subject", h.subject),
            ("Content", h.content),
            ("DueDate", h.due_date),
            ("ToPlaces", _joined(h.to_places)),
        ],
        HEADER,
    )
    for element, attr, children in HEADER_GROUPS:
        group = getattr(h, attr)
        if group is None:
            issues += _required([(element, None)], HEADER)
        else:
            fields = ((name, getattr(group, child)) for name, child in children)
            issues += _required(fields, f"{HEADER}/{element}")
    issues += _document_id(h.document_id, f"{HEADER}/DocumentId")
    issues += _values(h)
    issues += _header_caps(h)
    issues += _date(h.due_date, f"{HEADER}/DueDate", DATE_FORMAT)
    promulgation = h.promulgation_info.promulgation_date if h.promulgation_info else None
    path = f"{HEADER}/PromulgationInfo/PromulgationDate"
    return issues + _date(promulgation, path, DATE_FORMAT, not_after=today)


def _values(h: MessageHeader) -> list[Issue]:
    return [
        *_domain(
            h.document_type.type if h.document_type else None,
            f"{HEADER}/DocumentType/Type",
            {"1", "2"},
        ),
        *_domain(
            h.other_info.priority if h.other_info else None,
            f"{HEADER}/OtherInfo/Priority",
            {"0", "1", "2", "3", "4"},
        ),
        *_domain(h.steering_type, f"{HEADER}/SteeringType", {"0", "1", "2", "3"}),
    ]


def _header_caps(h: MessageHeader) -> list[Issue]:
    code, other = h.code, h.other_info
    caps: list[tuple[str, str | None, int]] = [
        (f"{HEADER}/Subject", h.subject, 500),
        (f"{HEADER}/Content", h.content, 500),
        (f"{HEADER}/Code/CodeNumber", code.code_number if code else None, 11),
        (f"{HEADER}/Code/CodeNotation", code.code_notation if code else None, 30),
        (
            f"{HEADER}/OtherInfo/SphereOfPromulgation",
            other.sphere_of_promulgation if other else None,
            100,
        ),
        (f"{HEADER}/OtherInfo/TyperNotation", other.typer_notation if other else None, 10),
    ]
    caps += [
        (f"{HEADER}/ToPlaces/Place[{i}]", place, 150)
        for i, place in enumerate(h.to_places or (), start=1)
    ]
    return _caps(caps)


def _response_fors(response_fors: tuple[ResponseFor, ...]) -> list[Issue]:
    issues: list[Issue] = []
    for index, rf in enumerate(response_fors, start=1):
        path = f"{HEADER}/ResponseFor[{index}]"
        if not _blank(rf.organ_id):
            issues += _organ_id(rf.organ_id, f"{path}/OrganId", "referenced", Severity.WARNING)
        issues += _document_id(rf.document_id, f"{path}/DocumentId")
        issues += _date(rf.promulgation_date, f"{path}/PromulgationDate", DATE_FORMAT)
    return issues


def _trace(trace: TraceHeaderList) -> list[Issue]:
    if not trace.trace_headers:
        return _required([("TraceHeader", None)], TRACE)
    issues: list[Issue] = []
    for index, hop in enumerate(trace.trace_headers, start=1):
        path = f"{TRACE}/TraceHeader[{index}]"
        issues += _organ_id(hop.organ_id, f"{path}/OrganId", "hop", Severity.WARNING)
        issues += _required([("Timestamp", hop.timestamp)], path)
        issues += _date(hop.timestamp, f"{path}/Timestamp", TIMESTAMP_FORMAT)
    return issues


def _business(pkg: DocumentPackage) -> list[Issue]:
    business = pkg.trace_header_list.business
    if business is None:
        return _required([("Bussiness", None)], TRACE)
    issues = _document_id(business.document_id, f"{BUSINESS}/DocumentId")
    kind = business.business_doc_type
    if kind is BusinessDocType.REVOKE:
        if not any(not _blank(rf.document_id) for rf in pkg.header.response_for):
            message = "a revocation must name the revoked document in ResponseFor/DocumentId"
            issues.append(error("edxml.missing_reference", f"{HEADER}/ResponseFor", message))
    elif kind is BusinessDocType.UPDATE:
        issues += _update(business)
    elif kind is BusinessDocType.REPLACE:
        issues += _replace(business)
    return issues


def _update(business: Business) -> list[Issue]:
    info = business.business_document_info
    path = f"{BUSINESS}/BussinessDocumentInfo"
    if info is None:
        message = "an update must say what it changes in BussinessDocumentInfo"
        return [error("edxml.missing_reference", path, message)]
    issues: list[Issue] = []
    for index, receiver in enumerate(info.receivers or (), start=1):
        at = f"{path}/ReceiverList/Receiver[{index}]"
        issues += _organ_id(receiver.organ_id, f"{at}/OrganId", "update receiver")
        issues += _domain(receiver.receiver_type, f"{at}/ReceiverType", {"0", "1"})
    return issues


def _replace(business: Business) -> list[Issue]:
    infos = business.replacement_info_list or ()
    path = f"{BUSINESS}/ReplacementInfoList"
    if not infos:
        message = "a replacement must name what it replaces in ReplacementInfoList"
        return [error("edxml.missing_reference", path, message)]
    issues: list[Issue] = []
    for index, info in enumerate(infos, start=1):
        at = f"{path}/ReplacementInfo[{index}]"
        if _blank(info.document_id):
            message = "a ReplacementInfo must name the replaced document"
            issues.append(error("edxml.missing_reference", f"{at}/DocumentId", message))
        else:
            issues += _document_id(info.document_id, f"{at}/DocumentId")
        for position, organ_id in enumerate(info.organ_ids, start=1):
            where = f"{at}/OrganIdList/OrganId[{position}]"
            issues += _organ_id(organ_id, where, "replacement recipient")
    return issues


# -- single-value rules -----------------------------------------------------------------------


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def _joined(values: tuple[str, ...] | None) -> str | None:
    return None if values is None else "".join(values)


def _organ_id(
    value: str | None, path: str, role: str, severity: Severity = Severity.ERROR
) -> list[Issue]:
    if not value:
        return [Issue("edxml.bad_organ_id", path, f"the {role} has no OrganId", severity)]
    if ORGAN_ID_STRICT.fullmatch(value) or TAX_CODE.fullmatch(value):
        return []
    if ORGAN_ID_TOLERANT.fullmatch(value):
        message = f"{role} OrganId {value!r} is not of the form NNN.NN.NN.XNN"
        return [warning("edxml.non_strict_organ_id", path, message)]
    message = f"{role} OrganId {value!r} is neither an agency code nor a tax code"
    return [Issue("edxml.bad_organ_id", path, message, severity)]


def is_organ_id(value: str) -> bool:
    """An agency code (strict, or a lenient form the platforms use) or a tax code."""
    return bool(
        ORGAN_ID_STRICT.fullmatch(value)
        or TAX_CODE.fullmatch(value)
        or ORGAN_ID_TOLERANT.fullmatch(value)
    )


def _required(fields: Iterable[tuple[str, str | None]], base: str) -> list[Issue]:
    return [
        warning("edxml.missing_field", f"{base}/{name}", f"{name} is missing or empty")
        for name, value in fields
        if _blank(value)
    ]


def _caps(values: Iterable[tuple[str, str | None, int]]) -> list[Issue]:
    return [
        warning("edxml.too_long", path, f"{len(value)} characters, more than {cap}")
        for path, value, cap in values
        if value is not None and len(value) > cap
    ]


def _domain(value: str | None, path: str, allowed: set[str]) -> list[Issue]:
    if _blank(value) or value is None or value.strip() in allowed:
        return []
    message = f"{value!r} is not one of {', '.join(sorted(allowed))}"
    return [warning("edxml.bad_value", path, message)]


def _document_id(value: str | None, path: str) -> list[Issue]:
    if value is None or _blank(value):
        return []
    text = value.strip()
    if DOCUMENT_ID.fullmatch(text) or UUID.fullmatch(text):
        return []
    message = f"{value!r} is neither 'OrganId,yyyy/MM/dd,number/notation' nor a UUID"
    return [warning("edxml.document_id_format", path, message)]


_CANONICAL = {  # the usual spelling of each format: read without strptime's regex machinery
    DATE_FORMAT: re.compile(r"([0-9]{4})/([0-9]{2})/([0-9]{2})"),
    TIMESTAMP_FORMAT: re.compile(
        r"([0-9]{4})/([0-9]{2})/([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})"
    ),
}


def _parse_date(text: str, fmt: str) -> datetime:
    """``datetime.strptime(text, fmt)``; its canonical spelling is read directly (what strptime
    accepts of that spelling is exactly what ``datetime`` accepts; anything else, and any value
    ``datetime`` refuses, goes to strptime, which decides)."""
    canonical = _CANONICAL.get(fmt)
    match = canonical.fullmatch(text) if canonical else None
    if match is not None:
        try:
            parts = [int(part) for part in match.groups()] + [0, 0, 0]
            return datetime(parts[0], parts[1], parts[2], parts[3], parts[4], parts[5])
        except ValueError:
            pass
    return datetime.strptime(text, fmt)


def _date(value: str | None, path: str, fmt: str, *, not_after: date | None = None) -> list[Issue]:
    if value is None or _blank(value):
        return []
    try:
        parsed = _parse_date(value.strip(), fmt)
    except ValueError:
        shape = fmt.replace("%Y", "yyyy").replace("%m", "MM").replace("%d", "dd")
        shape = shape.replace("%H", "HH").replace("%M", "mm").replace("%S", "ss")
        return [warning("edxml.bad_date", path, f"{value!r} is not a date as {shape}")]
    if not_after is not None and parsed.date() > not_after:
        return [warning("edxml.future_date", path, f"{value!r} is after {not_after:%Y/%m/%d}")]
    return []
