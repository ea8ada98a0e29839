"""``scripts/fuzz``: run each fuzz target under atheris for a while, seeded, and report.

For each target: the seeds (conformance packages, the malicious-XML corpus, signed packages, a JWS,
signed southbound headers; ``tests/fuzz/targets.py``) are written fresh, the corpus the fuzzer
grows is kept under ``--workdir`` between runs, and a crash (any exception but the project's own
errors) leaves its input under ``artifacts/``. One line per target: executions, coverage
(libFuzzer's ``cov``/``ft``), corpus size, crashes; exit status 1 if any target crashed.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "fuzz")]

targets = importlib.import_module("targets")  # tests/fuzz/targets.py, after the path

HARNESS = REPO / "tests" / "fuzz" / "harness.py"
_STATUS = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)")
_EXECS = re.compile(r"stat::number_of_executed_units: (\d+)")


@dataclass(frozen=True)
class Outcome:
    target: str
    executions: int
    coverage: int
    features: int
    corpus: int
    crashes: tuple[Path, ...]
    exit_code: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.crashes

    def line(self) -> str:
        verdict = "ok" if self.ok else f"CRASH (exit {self.exit_code})"
        found = "".join(f"\n  crash input: {p}" for p in self.crashes)
        return (
            f"{self.target:<11} {verdict:<16} executions={self.executions} "
            f"cov={self.coverage} ft={self.features} corpus={self.corpus}{found}"
        )


def run(target: str, seconds: int, workdir: Path, python: str) -> Outcome:
    base = workdir / target
    seeds, corpus, artifacts = base / "seeds", base / "corpus", base / "artifacts"
    shutil.rmtree(seeds, ignore_errors=True)
    for directory in (seeds, corpus, artifacts):
        directory.mkdir(parents=True, exist_ok=True)
    for index, data in enumerate(targets.seeds(target)):
        (seeds / f"seed-{index:04d}").write_bytes(data)
    before = set(artifacts.iterdir())
    command = [
        python,
        str(HARNESS),
        target,
        f"-max_total_time={seconds}",
        "-timeout=20",
        "-rss_limit_mb=3072",
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/",
        str(corpus),
        str(seeds),
    ]
    log = base / "log.txt"
    with log.open("wb") as out:
        done = subprocess.run(
            command,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=seconds + 600,
        )
    text = log.read_text("utf-8", "replace")
    status = _STATUS.findall(text)
    execs = _EXECS.findall(text)
    last = status[-1] if status else ("0", "0", "0", "0")
    return Outcome(
        target=target,
        executions=int(execs[-1]) if execs else int(last[0]),
        coverage=int(last[1]),
        features=int(last[2]),
        corpus=len(list(corpus.iterdir())),
        crashes=tuple(sorted(set(artifacts.iterdir()) - before)),
        exit_code=done.returncode,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    parser.add_argument("--workdir", type=Path, default=REPO / "test-output" / "fuzz")
    parser.add_argument(
        "targets",
        nargs="*",
        choices=[[], *targets.TARGETS],
        default=[],
        metavar="TARGET",
        help=f"any of {', '.join(targets.TARGETS)}",
    )
    args = parser.parse_args(argv)
    chosen = args.targets or list(targets.TARGETS)
    outcomes = [run(t, args.seconds, args.workdir, sys.executable) for t in chosen]
    for outcome in outcomes:
        print(outcome.line(), flush=True)
    crashed = [o.target for o in outcomes if not o.ok]
    if crashed:
        print(f"fuzz: crashes in {', '.join(crashed)}; logs under {args.workdir}/TARGET/log.txt")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
