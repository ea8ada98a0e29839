"""``bench_profiled.py OUT LGSP-ARGS...``: ``lgsp`` under cProfile (for ``--profile-dir``)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence


def profiled_main(argv: Sequence[str]) -> int:
    """``OUT ARGS…``: run ``lgsp ARGS…`` under cProfile (CPU time), stats to OUT.pid."""
    import cProfile  # noqa: PLC0415 (only the profiling runs need it)

    # The installed gateway, or the bench's --code-dir copy (PYTHONPATH): never forced to the
    # checkout by a sys.path entry, so a profile is of the code the bench runs.
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
