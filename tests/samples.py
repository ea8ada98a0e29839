"""Where the shared reference material and the real conformance packages are."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LGSP_SHARED_DIR", REPO.parent / "shared"))
CONFORMANCE_DIR = SHARED / "conformance" / "edxml"
CONFORMANCE_FILES = sorted(CONFORMANCE_DIR.glob("*.edxml"))
# Not well-formed XML as published (an unclosed <From>, undeclared prefixes): refused by design.
MALFORMED_SAMPLES = frozenset({"edoc.edxml"})
WELL_FORMED_FILES = [p for p in CONFORMANCE_FILES if p.name not in MALFORMED_SAMPLES]
