"""Where the real conformance packages are: in the repository (``tests/data/conformance/``)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFORMANCE_DIR = REPO / "tests" / "data" / "conformance"
CONFORMANCE_FILES = sorted(CONFORMANCE_DIR.glob("*.edxml"))
# Not well-formed XML as published (an unclosed <From>, undeclared prefixes): refused by design.
MALFORMED_SAMPLES = frozenset({"edoc.edxml"})
WELL_FORMED_FILES = [p for p in CONFORMANCE_FILES if p.name not in MALFORMED_SAMPLES]
