"""Fixtures shared by every test: where the reference material and conformance packages are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LGSP_SHARED_DIR", REPO.parent / "shared"))
CONFORMANCE_DIR = SHARED / "conformance" / "edxml"
CONFORMANCE_FILES = sorted(CONFORMANCE_DIR.glob("*.edxml"))


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    assert CONFORMANCE_DIR.is_dir(), f"reference samples missing at {CONFORMANCE_DIR}"
    return CONFORMANCE_DIR


def conformance_ids() -> list[str]:
    return [p.name for p in CONFORMANCE_FILES]
