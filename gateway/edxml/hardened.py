"""Hardened XML loading: no DTDs, no entities, no network, no XInclude, bounded size and shape."""

from __future__ import annotations

from lxml import etree

from gateway.edxml.limits import DEFAULT_LIMITS, ParseLimits
from gateway.errors import LimitError, PackageError


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=True,
        remove_blank_text=False,
    )


def load_xml(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> etree._Element:
    """Parse untrusted bytes into an lxml root element, or raise a ``PackageError``.

    PRELIMINARY version: the full hardening (depth/element limits, DTD refusal, encoding checks)
    lives here once implemented.
    """
    if not data:
        raise PackageError("the package is empty", code="edxml.empty")
    if len(data) > limits.max_bytes:
        raise LimitError(f"the package exceeds {limits.max_bytes} bytes", code="edxml.too_large")
    try:
        return etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise PackageError(f"malformed XML: {exc}", code="edxml.malformed") from exc
