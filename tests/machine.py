"""What a test needs of the machine beyond Python: a missing tool skips it when run by hand, and
fails it under ``scripts/test`` (which sets ``LGSP_TEST_REQUIRE_TOOLS=1``), so CI never passes
over a test silently."""

from __future__ import annotations

import os

import pytest


def require(missing: list[str], why: str) -> None:
    """Skip (by hand) or fail (``scripts/test``) the calling test if anything is ``missing``."""
    if not missing:
        return
    message = f"{why} needs {', '.join(missing)} on this machine"
    if os.environ.get("LGSP_TEST_REQUIRE_TOOLS") == "1":
        pytest.fail(message + " (scripts/test requires every tool)", pytrace=False)
    pytest.skip(message)
