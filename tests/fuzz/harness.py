"""atheris entry point of a fuzz target: ``python tests/fuzz/harness.py TARGET [libFuzzer args]``.

The gateway's and the adapters' modules are instrumented for coverage; libFuzzer's arguments
(corpus directories, ``-max_total_time``, ``-artifact_prefix``…) pass through. ``scripts/fuzz``
is the way to run it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

TESTS = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(TESTS), str(TESTS / "fuzz")]

with atheris.instrument_imports(include=["gateway", "adapters"]):
    import targets


def main() -> None:
    name, libfuzzer_args = sys.argv[1], sys.argv[2:]
    target = targets.TARGETS[name]
    atheris.Setup([sys.argv[0], *libfuzzer_args], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
