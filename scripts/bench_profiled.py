"""``bench_profiled.py OUT LGSP-ARGS...``: ``lgsp`` under cProfile (the benches' ``--profile``)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def profiled_main(argv: Sequence[str]) -> int:
    """``OUT ARGS…``: run ``lgsp ARGS…`` under cProfile (CPU time), stats to OUT.pid."""
    import cProfile  # noqa: PLC0415 (only the profiling runs need it)

    from gateway.cli import main as lgsp_main  # noqa: PLC0415

    out, args = argv[0], list(argv[1:])
    sys.argv = ["lgsp", *args]
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    try:
        return lgsp_main()
    finally:
        profile.disable()
        profile.dump_stats(f"{out}.{os.getpid()}")


if __name__ == "__main__":
    if len(sys.argv) > 2:
        sys.exit(profiled_main(sys.argv[1:]))
    sys.exit("usage: bench_profiled.py OUT LGSP-ARGS...")
