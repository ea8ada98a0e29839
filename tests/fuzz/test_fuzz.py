"""The fuzz targets: every seed and every past finding runs clean, and ``scripts/fuzz`` works.

``regressions/TARGET/`` keeps each input a fuzzer once crashed a target with (named after what it
found); they are also seeds of later runs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import targets

REPO = Path(__file__).resolve().parents[2]
REGRESSIONS = Path(__file__).resolve().parent / "regressions"


def regression_inputs(target: str) -> list[Path]:
    directory = REGRESSIONS / target
    return sorted(directory.iterdir()) if directory.is_dir() else []


@pytest.mark.parametrize(
    ("target", "path"),
    [(t, p) for t in targets.TARGETS for p in regression_inputs(t)],
    ids=lambda v: v.name if isinstance(v, Path) else v,
)
def test_past_findings_are_refused_with_our_errors(target: str, path: Path) -> None:
    targets.TARGETS[target](path.read_bytes())


@pytest.mark.parametrize("target", list(targets.TARGETS))
def test_every_seed_runs_clean(target: str) -> None:
    for data in targets.seeds(target):
        targets.TARGETS[target](data)


@pytest.mark.slow
def test_scripts_fuzz_runs_every_target_for_a_few_seconds(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(REPO / "scripts" / "fuzz"), "--seconds", "3", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(targets.TARGETS)
    for line in lines:
        assert " ok " in line, line
        executions = int(line.split("executions=")[1].split()[0])
        assert executions > 10, line
