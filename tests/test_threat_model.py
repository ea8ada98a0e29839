"""Every test the threat model names as a control's proof exists (a renamed or deleted test
must take its row with it, or the row must name another)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREAT_MODEL = ROOT / "docs" / "threat-model.md"
REFERENCE = re.compile(r"`([^`]*::[^`]*)`")


def _test_file(name: str) -> Path:
    """``tests/a/test_b.py`` as written, or a bare ``test_b.py`` found once under tests/."""
    if "/" in name:
        return ROOT / name
    found = sorted((ROOT / "tests").rglob(name))
    assert len(found) == 1, f"{name}: {len(found)} files of that name under tests/"
    return found[0]


def _references() -> list[tuple[int, Path, str]]:
    """(line number, test file, test name) of every ``file::test`` and ``::test`` named."""
    refs: list[tuple[int, Path, str]] = []
    for number, line in enumerate(THREAT_MODEL.read_text(encoding="utf-8").splitlines(), 1):
        current: Path | None = None
        for token in REFERENCE.findall(line):
            path, _, name = token.partition("::")
            if path:
                current = _test_file(path.strip())
            assert current is not None, f"line {number}: {token} names no file before it"
            refs.append((number, current, name.split("[")[0].strip()))
    return refs


def test_every_test_the_threat_model_names_exists() -> None:
    refs = _references()
    assert len(refs) > 50  # the table was read
    missing = [
        f"line {number}: {path.relative_to(ROOT)}::{name}"
        for number, path, name in refs
        if not path.is_file()
        or not re.search(
            rf"^\s*(async )?def {re.escape(name)}\(", path.read_text(encoding="utf-8"), re.M
        )
    ]
    assert not missing, "the threat model names tests that do not exist:\n" + "\n".join(missing)
