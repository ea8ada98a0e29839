"""The XSD check of an edXML tree: ``schemas/edxml.xsd`` compiled once, its violations as
``edxml.schema`` issues with readable element paths."""

from __future__ import annotations

import functools
import threading
from typing import Any

from lxml import etree

from gateway.core.resources import schema_path
from gateway.edxml.issues import ValidationReport, error
from gateway.edxml.model import EDXML_NS

ROOT_TAG = f"{{{EDXML_NS}}}edXML"

_schema_lock = threading.Lock()


@functools.cache
def _schema() -> etree.XMLSchema:
    """edxml.xsd, parsed without DTDs, entities or network access, and compiled once."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(schema_path("edxml.xsd")), parser))


def validate_schema(root: etree._Element) -> ValidationReport:
    """Validate an edXML tree against ``schemas/edxml.xsd``; each violation is ``edxml.schema``.

    The root must be ``edXML``: the schema declares some inner elements globally (see its header),
    and XSD cannot say which global element may be a document's root.
    """
    if root.tag != ROOT_TAG:
        message = f"line {root.sourceline}: the root element is {root.tag}, not {ROOT_TAG}"
        path = f"/{etree.QName(root).localname}"
        return ValidationReport((error("edxml.schema", path, message),))
    schema = _schema()
    with _schema_lock:  # the validator's error log is shared state
        valid = schema.validate(root)
        log: Any = schema.error_log  # lxml-stubs do not declare the log iterable
        entries = [(entry.path, entry.line, entry.message) for entry in log]
    if valid:
        return ValidationReport()
    tree = root.getroottree()
    return ValidationReport(
        tuple(
            error("edxml.schema", _element_path(tree, path), f"line {line}: {message}")
            for path, line, message in entries
        )
    )


def _element_path(tree: etree._ElementTree, xpath: str | None) -> str:
    """Turn libxml2's ``/*/*[2]`` into ``/edXML/edXMLEnvelope/…/To[2]``."""
    if not xpath:
        return "/"
    try:
        found: Any = tree.xpath(xpath)
    except etree.XPathError:
        return xpath
    if not isinstance(found, list) or not found or not isinstance(found[0], etree._Element):
        return xpath
    parts: list[str] = []
    element: etree._Element | None = found[0]
    while element is not None:
        parent = element.getparent()
        name = etree.QName(element).localname
        if parent is not None:
            same = [child for child in parent if child.tag == element.tag]
            if len(same) > 1:
                name += f"[{same.index(element) + 1}]"
        parts.append(name)
        element = parent
    return "/" + "/".join(reversed(parts))
