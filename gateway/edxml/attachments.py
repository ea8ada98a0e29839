"""Attachments: strict base64 decoding, manifest matching, and ZIP sniffing without extraction."""

from __future__ import annotations

import binascii
import io
import zipfile
from collections import Counter
from collections.abc import Iterable

from gateway.core.errors import LimitError, PackageError
from gateway.edxml.issues import Issue, error, warning
from gateway.edxml.limits import DEFAULT_LIMITS, ParseLimits
from gateway.edxml.model import (
    ZIP_MAGIC,
    Attachment,
    DocumentPackage,
    ManifestReference,
    Package,
    decode_base64_text,
)

ATTACHMENT_PATH = "/edXML/AttachmentEncoded/Attachment"
REFERENCE_PATH = "/edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference"
ZIP_CONTENT_TYPES = frozenset({"application/zip", "application/x-zip-compressed"})
EMPTY_ZIP_MAGIC = b"PK\x05\x06"  # end-of-central-directory record of an archive with no entries
MAX_ZIP_TOTAL_BYTES = 512 * 1024 * 1024
MAX_ZIP_ENTRIES = 10_000


def decode_attachment(att: Attachment, limits: ParseLimits = DEFAULT_LIMITS) -> bytes:
    """The attachment's bytes: strict base64 once whitespace is removed, within the size limit.

    Raises ``PackageError`` ``edxml.bad_base64`` or ``LimitError`` ``edxml.attachment_too_large``.
    """
    text = att.content_b64
    too_large = f"attachment {att.content_id!r} exceeds {limits.max_attachment_bytes} bytes"
    limit = limits.max_attachment_bytes
    if _size(text) > limit and _size("".join(text.split())) > limit:  # whitespace not counted
        raise LimitError(too_large, code="edxml.attachment_too_large")  # before decoding
    try:
        data = decode_base64_text(text)
    except (binascii.Error, ValueError) as exc:
        raise PackageError(
            f"attachment {att.content_id!r} is not valid base64: {exc}", code="edxml.bad_base64"
        ) from exc
    if len(data) > limits.max_attachment_bytes:
        raise LimitError(too_large, code="edxml.attachment_too_large")
    return data


_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_HEAD_CHARS, HEAD_BYTES = 8, 6  # the first 6 bytes, from 8 characters (ZIP magic is 4)
_PADDING = (b"", b"=", b"==")


def inspect_attachment(att: Attachment, limits: ParseLimits = DEFAULT_LIMITS) -> tuple[int, bytes]:
    """An attachment's decoded size and first ``HEAD_BYTES``; ``decode_attachment``'s refusals.

    Validation need not decode: a text of base64 characters only, its length a multiple of 4 and
    at most two ``=`` at the end is exactly what strict decoding accepts, and decodes to
    ``len(data) * 3 // 4`` bytes. That is checked in one C pass (``bytes.translate`` of the whole
    text: what is left must be the ``=`` it ends with; no stripped copy of a 361 KB text); any
    other text (whitespace, padding inside, non-ASCII) goes through ``decode_attachment`` itself,
    which then decides, and words the refusal. The tests hold the two to the same verdicts.
    """
    text = att.content_b64
    raw = text.encode("ascii") if text.isascii() else b""  # isascii: O(1) on a str
    padding = raw.translate(None, _BASE64_ALPHABET)  # all that is left of a plain text
    if (
        len(text) % 4
        or len(padding) > 2
        or padding != _PADDING[len(padding)]
        or not raw.endswith(padding)
        or len(raw) != len(text)
    ):
        data = decode_attachment(att, limits)
        return len(data), data[:HEAD_BYTES]
    size = (len(raw) - len(padding)) * 3 // 4
    if size > limits.max_attachment_bytes:
        too_large = f"attachment {att.content_id!r} exceeds {limits.max_attachment_bytes} bytes"
        raise LimitError(too_large, code="edxml.attachment_too_large")
    return size, binascii.a2b_base64(text[:_HEAD_CHARS])


def _size(compact: str) -> int:
    """About what base64 ``compact`` decodes to (at most 2 bytes more)."""
    return len(compact) // 4 * 3 - 2


def is_zip(data: bytes) -> bool:
    """Whether ``data`` starts like a ZIP archive (a local file header, or an empty archive).

    Only the first four bytes are looked at."""
    return data.startswith((ZIP_MAGIC, EMPTY_ZIP_MAGIC))


def zip_entries(
    data: bytes,
    *,
    max_total_bytes: int = MAX_ZIP_TOTAL_BYTES,
    max_entries: int = MAX_ZIP_ENTRIES,
) -> list[str]:
    """The entry names of a ZIP archive, read from its central directory; nothing is extracted.

    Refuses (``LimitError`` ``edxml.zip_too_large``) an archive whose declared uncompressed sizes
    add up to more than ``max_total_bytes``, or that has more than ``max_entries`` entries: a zip
    bomb is stopped before anyone unpacks it (``zipfile`` never yields more than the declared
    size of an entry). A damaged archive is a ``PackageError`` ``edxml.bad_zip``.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, EOFError) as exc:
        raise PackageError(f"not a readable ZIP archive: {exc}", code="edxml.bad_zip") from exc
    if len(infos) > max_entries:
        raise LimitError(
            f"the ZIP archive has {len(infos)} entries, more than {max_entries}",
            code="edxml.zip_too_large",
        )
    total = sum(info.file_size for info in infos)
    if total > max_total_bytes:
        raise LimitError(
            f"the ZIP archive would unpack to {total} bytes, more than {max_total_bytes}",
            code="edxml.zip_too_large",
        )
    return [info.filename for info in infos]


def check_attachments(pkg: Package, limits: ParseLimits = DEFAULT_LIMITS) -> list[Issue]:
    """Issues of a package's attachments: manifest <-> attachment matching both ways, duplicate
    ContentIds, base64 validity and size, and ZIP payloads whose declared type or name disagrees.
    """
    if not isinstance(pkg, DocumentPackage):
        return []
    references = pkg.manifest.references if pkg.manifest else ()
    issues = _count_issues(pkg.attachments, limits)
    issues += _duplicate_issues((r.content_id for r in references), REFERENCE_PATH)
    issues += _duplicate_issues((a.content_id for a in pkg.attachments), ATTACHMENT_PATH)
    issues += _matching_issues(references, pkg.attachments)
    for index, att in enumerate(pkg.attachments, start=1):
        issues += _payload_issues(att, f"{ATTACHMENT_PATH}[{index}]", limits)
    return issues


def _count_issues(attachments: tuple[Attachment, ...], limits: ParseLimits) -> list[Issue]:
    if len(attachments) <= limits.max_attachments:
        return []
    message = f"{len(attachments)} attachments, more than {limits.max_attachments}"
    return [error("edxml.too_many_attachments", ATTACHMENT_PATH, message)]


def _duplicate_issues(content_ids: Iterable[str], base: str) -> list[Issue]:
    seen: Counter[str] = Counter()
    issues = []
    for index, content_id in enumerate(content_ids, start=1):
        seen[content_id] += 1
        if seen[content_id] == 2:
            path = f"{base}[{index}]/ContentId"
            message = f"ContentId {content_id!r} is used more than once"
            issues.append(error("edxml.duplicate_content_id", path, message))
    return issues


def _matching_issues(
    references: tuple[ManifestReference, ...], attachments: tuple[Attachment, ...]
) -> list[Issue]:
    declared = {r.content_id for r in references}
    present = {a.content_id for a in attachments}
    issues = [
        error(
            "edxml.attachment_mismatch",
            f"{REFERENCE_PATH}[{index}]/ContentId",
            f"the manifest declares {ref.content_id!r} but no attachment carries it",
        )
        for index, ref in enumerate(references, start=1)
        if ref.content_id not in present
    ]
    issues += [
        error(
            "edxml.attachment_mismatch",
            f"{ATTACHMENT_PATH}[{index}]/ContentId",
            f"attachment {att.content_id!r} is not declared in the manifest",
        )
        for index, att in enumerate(attachments, start=1)
        if att.content_id not in declared
    ]
    return issues


def _payload_issues(att: Attachment, path: str, limits: ParseLimits) -> list[Issue]:
    if not att.content_id.strip():
        return [error("edxml.missing_field", f"{path}/ContentId", "an attachment has no ContentId")]
    try:
        _size_bytes, head = inspect_attachment(att, limits)
    except PackageError as exc:  # LimitError included
        return [error(exc.code, f"{path}/ContentTransferEncoded", exc.message)]
    return _zip_issues(att, head, path)


def _zip_issues(att: Attachment, head: bytes, path: str) -> list[Issue]:
    """``head``: the first bytes of the decoded attachment (at least the 4 of a ZIP magic)."""
    declared = (att.content_type or att.mime_type or "").strip().lower()
    if not is_zip(head):
        if declared in ZIP_CONTENT_TYPES:
            message = f"declared {declared} but the payload is not a ZIP archive"
            return [warning("edxml.not_a_zip", f"{path}/ContentType", message)]
        return []
    issues = []
    if declared and declared not in ZIP_CONTENT_TYPES:
        message = f"the payload is a ZIP archive but is declared {declared}"
        issues.append(warning("edxml.zip_content_type", f"{path}/ContentType", message))
    name = att.attachment_name or ""
    if name and not name.lower().endswith(".zip"):
        message = f"the payload is a ZIP archive but is named {name!r}"
        issues.append(warning("edxml.zip_name_mismatch", f"{path}/AttachmentName", message))
    return issues
