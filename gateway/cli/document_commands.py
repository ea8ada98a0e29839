"""``lgsp sign|verify|inspect|new-document|new-status``: work with one package file."""

from __future__ import annotations

import argparse
import json
import mimetypes
import secrets
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.core.errors import ConfigError, PackageError
from gateway.demo import pki
from gateway.edxml import build, json_codec
from gateway.edxml.formats import PackageFormat, jws_payload, sniff_format
from gateway.edxml.model import DocumentPackage, Organization, Package, StatusCode
from gateway.edxml.xml_codec import parse_package, serialize_package
from gateway.signatures.algorithms import DEFAULT_ALLOWED, SignatureAlgorithm
from gateway.signatures.jws import sign_jws
from gateway.signatures.truststore import TrustStore
from gateway.signatures.verify import VerifiedDocument, Verifier
from gateway.signatures.xmldsig import sign_xml


def register(commands: argparse._SubParsersAction[Any]) -> None:
    sign = commands.add_parser("sign", help="sign a package as a participant")
    sign.add_argument("input", type=Path, metavar="IN", help="the package (edXML, JSON or JWS)")
    sign.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="OUT",
        help="where to write the signed package",
    )
    sign.add_argument(
        "--pki",
        type=Path,
        required=True,
        metavar="DIR",
        help="the PKI directory holding the participant's key (lgsp pki init)",
    )
    sign.add_argument(
        "--as",
        dest="organ_id",
        required=True,
        metavar="ORGANID",
        help="the participant whose key signs",
    )
    sign.set_defaults(handler=_sign)

    verify = commands.add_parser("verify", help="verify a package's signature and trust")
    verify.add_argument("file", type=Path, metavar="FILE", help="a signed edXML or JWS package")
    verify.add_argument(
        "--pki",
        type=Path,
        required=True,
        metavar="DIR",
        help="the trust store directory (trust/ca, trust/crl)",
    )
    verify.add_argument("--allow-sha1", action="store_true", help="accept RSA-SHA1 signatures")
    verify.add_argument("-v", "--verbose", action="store_true", help="list every warning")
    verify.add_argument(
        "--json",
        action="store_true",
        help="on refusal, print the problem document (RFC 9457) as JSON",
    )
    verify.set_defaults(handler=_verify)

    inspect = commands.add_parser("inspect", help="header summary and attachments of a package")
    inspect.add_argument("file", type=Path, metavar="FILE", help="an edXML, JSON or JWS package")
    inspect.add_argument("--json", action="store_true", help="print the summary as JSON")
    inspect.set_defaults(handler=_inspect)

    new_doc = commands.add_parser(
        "new-document",
        help="build an unsigned document package",
        description="Build an unsigned edXML (or JSON) document. Its DocumentId is the sender, "
        "today's date and the number/notation: without --number each document gets "
        "a new number, so sending another one the same day is not a duplicate.",
    )
    new_doc.add_argument(
        "--from", dest="sender", required=True, metavar="ORGANID", help="the sender's OrganId"
    )
    new_doc.add_argument(
        "--to",
        dest="recipients",
        action="append",
        required=True,
        metavar="ORGANID",
        help="a recipient's OrganId; repeatable",
    )
    new_doc.add_argument(
        "--number", default=None, help="CodeNumber (số); default: a new number from the time of day"
    )
    new_doc.add_argument("--notation", default="UBND-VP", help="CodeNotation (ký hiệu)")
    new_doc.add_argument(
        "--subject", default="V/v thử nghiệm liên thông văn bản", help="the subject (trích yếu)"
    )
    new_doc.add_argument("--content", default=None, help="the content (default: the subject)")
    new_doc.add_argument(
        "--attach",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a file to attach; repeatable",
    )
    new_doc.add_argument(
        "--format",
        choices=["xml", "json"],
        default="xml",
        help="edXML (default) or the JSON document model",
    )
    new_doc.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="OUT",
        help="where to write it (default: standard output)",
    )
    new_doc.set_defaults(handler=_new_document)

    new_status = commands.add_parser("new-status", help="build a status package answering one")
    new_status.add_argument(
        "--for",
        dest="document",
        type=Path,
        required=True,
        metavar="FILE",
        help="the document package the status answers",
    )
    new_status.add_argument(
        "--from",
        dest="sender",
        required=True,
        metavar="ORGANID",
        help="the OrganId answering (a recipient of the document)",
    )
    new_status.add_argument("--code", required=True, help="StatusCode 01-16")
    new_status.add_argument("--description", default=None, help="a free-text description")
    new_status.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="OUT",
        help="where to write it (default: standard output)",
    )
    new_status.set_defaults(handler=_new_status)


def unique_number(now: datetime | None = None) -> str:
    """A CodeNumber that differs from one call to the next: the time of day (HHMMSS) and three
    random digits (two documents the same second almost never collide)."""
    at = build.wall_clock(now)
    return f"{at:%H%M%S}{secrets.randbelow(1000):03d}".lstrip("0") or "1"


def _sign(args: argparse.Namespace) -> int:
    ident = pki.load_identity(args.pki, args.organ_id)
    data = args.input.read_bytes()
    fmt = sniff_format(data)
    if fmt is PackageFormat.XML:
        signed = sign_xml(data, ident.key, ident.chain)
    else:
        payload = data if fmt is PackageFormat.JSON else jws_payload(data)
        signed = sign_jws(payload, ident.key, ident.chain).encode("ascii")
    args.output.write_bytes(signed)
    print(f"signed {args.input} as {args.organ_id} -> {args.output} ({fmt.value})")
    return 0


def _verifier(pki_dir: Path, *, allow_sha1: bool) -> Verifier:
    allowed = DEFAULT_ALLOWED | {SignatureAlgorithm.RSA_SHA1} if allow_sha1 else DEFAULT_ALLOWED
    return Verifier(TrustStore.from_dir(pki_dir), algorithms_for=lambda _sender: allowed)


def _verify(args: argparse.Namespace) -> int:
    data = args.file.read_bytes()
    verifier = _verifier(args.pki, allow_sha1=args.allow_sha1)
    fmt = sniff_format(data)
    if fmt is PackageFormat.JSON:
        raise PackageError(
            "a bare JSON document carries no signature; sign it as JWS first", code="jws.malformed"
        )
    result = verifier.verify_xml(data) if fmt is PackageFormat.XML else verifier.verify_jws(data)
    _print_verified(result, verbose=args.verbose)
    return 0


def _print_verified(result: VerifiedDocument, *, verbose: bool) -> None:
    print(f"OK: signature valid and trusted ({result.format})")
    print(f"  sender      {result.sender}")
    print(f"  signer      {result.signer_subject}")
    print(f"  bound by    {result.bound_by}")
    print(f"  algorithm   {result.algorithm}")
    print(f"  fingerprint sha256:{result.certificate_fingerprint}")
    print("  chain")
    for depth, cert in enumerate(result.chain):
        print(f"    {depth}: {cert.subject.rfc4514_string()}")
    if verbose:
        for issue in result.warnings:
            print(f"  warning {issue.code} at {issue.path}: {issue.message}")
    elif result.warnings:
        codes = sorted({issue.code for issue in result.warnings})
        print(f"  {len(result.warnings)} validation warnings ({', '.join(codes)}); -v lists them")


def _read_package(path: Path) -> tuple[Package, PackageFormat]:
    data = path.read_bytes()
    fmt = sniff_format(data)
    if fmt is PackageFormat.XML:
        return parse_package(data), fmt
    payload = data if fmt is PackageFormat.JSON else jws_payload(data)
    return json_codec.loads(payload), fmt


def _inspect(args: argparse.Namespace) -> int:
    from gateway.edxml.summary import summarize, summary_lines  # noqa: PLC0415

    package, fmt = _read_package(args.file)
    summary = summarize(package, fmt)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        print("\n".join(summary_lines(summary)))
    return 0


def _organization(organ_id: str) -> Organization:
    for participant in pki.DEMO_PARTICIPANTS:
        if participant.organ_id == organ_id:
            return Organization(
                organ_id=organ_id,
                organ_name=participant.name,
                organization_in_charge=participant.name,
            )
    return Organization(organ_id=organ_id, organ_name=organ_id, organization_in_charge=organ_id)


def _attachment(path: Path) -> tuple[str, bytes, str]:
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return path.name, path.read_bytes(), content_type


def _new_document(args: argparse.Namespace) -> int:
    document = build.new_document(
        _organization(args.sender),
        [_organization(r) for r in args.recipients],
        code_number=args.number or unique_number(),
        code_notation=args.notation,
        subject=args.subject,
        content=args.content or args.subject,
        attachments=[_attachment(p) for p in args.attach],
    )
    data = serialize_package(document) if args.format == "xml" else json_codec.dumps(document)
    _write(data, args.output, f"DocumentId {document.document_id}")
    return 0


def _new_status(args: argparse.Namespace) -> int:
    original, _fmt = _read_package(args.document)
    if not isinstance(original, DocumentPackage):
        raise PackageError(
            f"{args.document} is a status package, not a document", code="edxml.unknown_kind"
        )
    try:
        code = StatusCode(args.code.zfill(2))
    except ValueError as exc:
        raise ConfigError(
            f"--code {args.code!r} is not a StatusCode 01-16", code="config.bad_argument"
        ) from exc
    status = build.status_for(
        original, _organization(args.sender), code, description=args.description
    )
    _write(serialize_package(status), args.output)
    return 0


def _write(data: bytes, output: Path | None, what: str = "") -> None:
    if output is None:
        sys.stdout.buffer.write(data)
    else:
        output.write_bytes(data)
        print(f"wrote {output} ({len(data)} bytes{', ' + what if what else ''})")
