"""Attachments: strict base64, size limits, manifest matching, ZIP sniffing and zip-bomb refusal."""

from __future__ import annotations

import base64
import io
import itertools
import zipfile

import pytest

from gateway.core.errors import LimitError, PackageError
from gateway.edxml.attachments import (
    check_attachments,
    decode_attachment,
    inspect_attachment,
    is_zip,
    zip_entries,
)
from gateway.edxml.issues import Issue
from gateway.edxml.limits import ParseLimits
from gateway.edxml.model import (
    ZIP_MAGIC,
    Attachment,
    DocumentPackage,
    Manifest,
    ManifestReference,
    MessageHeader,
    Organization,
    ResponseFor,
    StatusCode,
    StatusHeader,
    StatusPackage,
    TraceHeaderList,
)

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"


def make_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():  # a fixed time: the same bytes in every process
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def attachment(content_id: str, data: bytes, **fields: str) -> Attachment:
    return Attachment(content_id=content_id, content_b64=Attachment.encode(data), **fields)


def package(
    references: tuple[ManifestReference, ...], attachments: tuple[Attachment, ...]
) -> DocumentPackage:
    header = MessageHeader(from_=Organization("000.00.00.G22"), to=(Organization("000.00.00.H41"),))
    return DocumentPackage(
        header=header,
        trace_header_list=TraceHeaderList(),
        manifest=Manifest(references=references),
        attachments=attachments,
    )


def codes(issues: list[Issue]) -> list[tuple[str, str, str]]:
    return [(i.code, i.severity.value, i.path) for i in issues]


# -- decode_attachment --------------------------------------------------------------------------


def test_decode_ignores_whitespace_and_line_breaks() -> None:
    b64 = Attachment.encode(PDF)
    wrapped = "\n  ".join(b64[i : i + 8] for i in range(0, len(b64), 8)) + "\r\n"
    assert decode_attachment(Attachment("cid:1", content_b64=wrapped)) == PDF


@pytest.mark.parametrize(
    "content",
    [
        "${__StringFromFile(test.txt,,,)}",  # what edoc.edxml carries: a JMeter placeholder
        "QUJD*RA==",  # a character outside the alphabet
        "QUJDRA=",  # wrong padding
        "QUJDR",  # truncated
        "QUJD-_==",  # the URL-safe alphabet is not base64
    ],
)
def test_decode_refuses_invalid_base64(content: str) -> None:
    with pytest.raises(PackageError) as caught:
        decode_attachment(Attachment("cid:1", content_b64=content))
    assert caught.value.code == "edxml.bad_base64"
    assert not isinstance(caught.value, LimitError)


def test_decode_accepts_and_refuses_exactly_what_strict_b64decode_does() -> None:
    texts = ["".join(t) for n in range(7) for t in itertools.product("AQ=/*", repeat=n)]
    texts += [f"{t[:2]}\n {t[2:]}" for t in texts[::7]]  # whitespace anywhere is dropped
    texts += ["QUJD\u00a0RA==", "QUJDRA==\u2028", "é"]  # non-ASCII whitespace and letters
    for text in texts:
        try:
            expected: bytes | None = base64.b64decode("".join(text.split()), validate=True)
        except ValueError:  # binascii.Error included
            expected = None
        try:
            got: bytes | None = decode_attachment(Attachment("cid:1", content_b64=text))
        except PackageError:
            got = None
        assert got == expected, text
        try:  # the intake's check, which does not decode a plain text: the same verdicts
            seen: tuple[int, bytes] | None = inspect_attachment(
                Attachment("cid:1", content_b64=text)
            )
        except PackageError:
            seen = None
        assert seen == (None if expected is None else (len(expected), expected[:6])), text


def test_inspect_refuses_and_measures_large_texts_as_decoding_does() -> None:
    payload = ZIP_MAGIC + bytes(range(256)) * 1000
    text = Attachment.encode(payload)
    assert inspect_attachment(Attachment("cid:1", content_b64=text)) == (len(payload), payload[:6])
    assert text.endswith("=")
    assert not text.endswith("==")
    bad_texts = (
        text[:100] + "*" + text[101:],
        text[:-4] + "=" + text[-3:],
        text + "\n" + text,
        text[:100] + "=" + text[101:],  # two "=" as padding would have, one of them inside
        text[:-1] + "\u00e9",  # the length of a plain text, but not ASCII
    )
    for bad in bad_texts:
        with pytest.raises(PackageError) as caught:
            decode_attachment(Attachment("cid:1", content_b64=bad))
        with pytest.raises(PackageError) as inspected:
            inspect_attachment(Attachment("cid:1", content_b64=bad))
        assert inspected.value.code == caught.value.code == "edxml.bad_base64"
    limits = ParseLimits(max_attachment_bytes=len(payload) - 1)
    with pytest.raises(LimitError) as too_large:
        inspect_attachment(Attachment("cid:1", content_b64=text), limits)
    assert too_large.value.code == "edxml.attachment_too_large"


def test_the_size_limit_does_not_count_line_breaks() -> None:
    limits = ParseLimits(max_attachment_bytes=30)
    wrapped = "\n".join(Attachment.encode(b"x" * 30))  # one line per character
    assert decode_attachment(Attachment("cid:1", content_b64=wrapped), limits) == b"x" * 30


def test_decode_enforces_the_decoded_size_limit() -> None:
    limits = ParseLimits(max_attachment_bytes=10)
    assert decode_attachment(attachment("cid:1", b"x" * 10), limits) == b"x" * 10
    for size in (11, 12, 13, 10_000):  # just over (exact check) and far over (checked up front)
        with pytest.raises(LimitError) as caught:
            decode_attachment(attachment("cid:1", b"x" * size), limits)
        assert caught.value.code == "edxml.attachment_too_large"
        assert caught.value.http_status == 413


# -- ZIP ----------------------------------------------------------------------------------------


def test_is_zip_sniffs_archives_not_names() -> None:
    assert is_zip(make_zip({"a.doc": b"hello"}))
    assert is_zip(make_zip({}))  # an empty archive starts with its end-of-directory record
    assert not is_zip(PDF)
    assert not is_zip(b"")
    assert not is_zip(b"PK")


def test_zip_entries_lists_names_without_extracting() -> None:
    data = make_zip({"32da2890.edxml": b"<edXML/>", "dir/b.pdf": PDF})
    assert zip_entries(data) == ["32da2890.edxml", "dir/b.pdf"]


def test_zip_entries_refuses_a_zip_bomb_by_declared_size() -> None:
    bomb = make_zip({"zeros.bin": bytes(5 * 1024 * 1024)})
    assert len(bomb) < 10_000  # highly compressed: the declared size is what counts
    with pytest.raises(LimitError) as caught:
        zip_entries(bomb, max_total_bytes=1024 * 1024)
    assert caught.value.code == "edxml.zip_too_large"
    assert zip_entries(bomb, max_total_bytes=5 * 1024 * 1024) == ["zeros.bin"]


def test_zip_entries_refuses_too_many_entries() -> None:
    data = make_zip({f"f{i}.txt": b"" for i in range(20)})
    with pytest.raises(LimitError) as caught:
        zip_entries(data, max_entries=19)
    assert caught.value.code == "edxml.zip_too_large"
    assert len(zip_entries(data, max_entries=20)) == 20


@pytest.mark.parametrize("data", [PDF, b"PK\x03\x04truncated", make_zip({"a": b"b"})[:-10]])
def test_zip_entries_refuses_damaged_archives(data: bytes) -> None:
    with pytest.raises(PackageError) as caught:
        zip_entries(data)
    assert caught.value.code == "edxml.bad_zip"


# -- check_attachments ---------------------------------------------------------------------------

REF = "/edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference"
ATT = "/edXML/AttachmentEncoded/Attachment"


def test_matching_manifest_and_attachments_have_no_issue() -> None:
    pkg = package(
        (ManifestReference("cid:1", "application/pdf"), ManifestReference("cid:2")),
        (
            attachment("cid:1", PDF, attachment_name="a.pdf", content_type="application/pdf"),
            attachment(
                "cid:2",
                make_zip({"x": b"y"}),
                attachment_name="b.zip",
                content_type="application/zip",
            ),
        ),
    )
    assert check_attachments(pkg) == []


def test_manifest_entry_without_attachment_and_the_reverse_are_errors() -> None:
    pkg = package(
        (ManifestReference("cid:1"), ManifestReference("cid:2")),
        (attachment("cid:1", PDF), attachment("cid:3", PDF)),
    )
    assert codes(check_attachments(pkg)) == [
        ("edxml.attachment_mismatch", "error", f"{REF}[2]/ContentId"),
        ("edxml.attachment_mismatch", "error", f"{ATT}[2]/ContentId"),
    ]


def test_attachments_without_a_manifest_are_all_mismatched() -> None:
    pkg = DocumentPackage(
        header=package((), ()).header,
        trace_header_list=TraceHeaderList(),
        manifest=None,
        attachments=(attachment("cid:1", PDF),),
    )
    assert codes(check_attachments(pkg)) == [
        ("edxml.attachment_mismatch", "error", f"{ATT}[1]/ContentId"),
    ]


def test_duplicate_content_ids_are_errors() -> None:
    pkg = package(
        (ManifestReference("cid:1"), ManifestReference("cid:1")),
        (attachment("cid:1", PDF), attachment("cid:1", b"other")),
    )
    assert codes(check_attachments(pkg)) == [
        ("edxml.duplicate_content_id", "error", f"{REF}[2]/ContentId"),
        ("edxml.duplicate_content_id", "error", f"{ATT}[2]/ContentId"),
    ]


def test_invalid_base64_and_oversize_are_errors_on_the_content_element() -> None:
    pkg = package(
        (ManifestReference("cid:1"), ManifestReference("cid:2")),
        (
            Attachment("cid:1", content_b64="${__StringFromFile(test.txt,,,)}"),
            attachment("cid:2", b"x" * 100),
        ),
    )
    issues = check_attachments(pkg, ParseLimits(max_attachment_bytes=50))
    assert codes(issues) == [
        ("edxml.bad_base64", "error", f"{ATT}[1]/ContentTransferEncoded"),
        ("edxml.attachment_too_large", "error", f"{ATT}[2]/ContentTransferEncoded"),
    ]


def test_too_many_attachments_is_an_error() -> None:
    ids = [f"cid:{i}" for i in range(3)]
    pkg = package(tuple(ManifestReference(c) for c in ids), tuple(attachment(c, PDF) for c in ids))
    assert codes(check_attachments(pkg, ParseLimits(max_attachments=2))) == [
        ("edxml.too_many_attachments", "error", ATT),
    ]
    assert check_attachments(pkg, ParseLimits(max_attachments=3)) == []


def test_attachment_without_content_id_is_an_error() -> None:
    pkg = package((ManifestReference(""),), (attachment("", PDF),))
    assert codes(check_attachments(pkg)) == [
        ("edxml.missing_field", "error", f"{ATT}[1]/ContentId"),
    ]


def test_zip_sniffing_warns_when_type_or_name_disagree() -> None:
    archive = make_zip({"32da2890.edxml": b"<edXML/>"})
    pkg = package(
        (ManifestReference("cid:1"), ManifestReference("cid:2"), ManifestReference("cid:3")),
        (
            # the VPCP samples: a ZIP, declared application/zip, named .doc
            attachment(
                "cid:1", archive, attachment_name="1896_QD-TTg.doc", content_type="application/zip"
            ),
            attachment("cid:2", archive, attachment_name="b.zip", content_type="application/pdf"),
            attachment("cid:3", PDF, attachment_name="c.zip", mime_type="application/zip"),
        ),
    )
    assert codes(check_attachments(pkg)) == [
        ("edxml.zip_name_mismatch", "warning", f"{ATT}[1]/AttachmentName"),
        ("edxml.zip_content_type", "warning", f"{ATT}[2]/ContentType"),
        ("edxml.not_a_zip", "warning", f"{ATT}[3]/ContentType"),
    ]


def test_status_packages_have_no_attachments_to_check() -> None:
    status = StatusPackage(
        StatusHeader(
            from_=Organization("000.00.00.H41"),
            response_for=ResponseFor("000.00.00.G22", document_id="x"),
            status_code=StatusCode.INBOX,
        )
    )
    assert check_attachments(status) == []
