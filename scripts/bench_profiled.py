"""``bench_profiled.py OUT LGSP-ARGS...``: ``lgsp`` under cProfile (for ``--profile-dir``), and
where the profiled processes' CPU went (``profile_summary``)."""

from __future__ import annotations

import os
import pstats
import sys
import time
from collections.abc import Sequence
from pathlib import Path


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


# Where a profiled process's CPU goes, by the file each function lives in (first match wins).
PROFILE_GROUPS = (
    (
        "store: SQLAlchemy + driver",
        ("sqlalchemy", "asyncpg", "aiosqlite", "greenlet", "sqlite3", "gateway/store"),
    ),
    ("broker client", ("aio_pika", "aiormq", "pamqp")),
    ("HTTP (aiohttp, yarl, multidict)", ("aiohttp", "yarl", "multidict")),
    (
        "XML + signatures",
        (
            "lxml",
            "cryptography",
            "joserfc",
            "gateway/signatures",
            "gateway/edxml",
            "gateway/intake/receipts",
            "adapters/http_push",
            "hashlib",
        ),
    ),
    ("logging + metrics", ("structlog", "prometheus_client", "json")),
    ("gateway (the rest)", ("gateway/", "adapters/")),
    (
        "event loop + threads",
        ("asyncio", "selectors", "epoll", "threading", "contextvars", "queue", "socket"),
    ),
)


def profile_summary(profile_dir: Path) -> dict[str, dict[str, float]]:
    """Each profiled process's CPU (own time of its functions) per ``PROFILE_GROUPS`` group, in
    percent; what no group claims (builtins, stdlib) is ``other``. Threads' CPU shows up under
    whatever the main thread was doing (cProfile samples the main thread on process time)."""
    summary: dict[str, dict[str, float]] = {}
    for path in sorted(profile_dir.glob("*.*")):
        shares: dict[str, float] = {}
        stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
        for (file, _line, name), (_cc, _nc, own_s, _cum, _callers) in stats.items():
            where = f"{file} {name}"
            group = next(
                (g for g, keys in PROFILE_GROUPS if any(k in where for k in keys)), "other"
            )
            shares[group] = shares.get(group, 0.0) + own_s
        total = sum(shares.values()) or 1.0
        summary[path.name] = {
            g: round(v / total * 100, 1) for g, v in sorted(shares.items(), key=lambda kv: -kv[1])
        }
    return summary


if __name__ == "__main__":
    if len(sys.argv) > 2:
        sys.exit(profiled_main(sys.argv[1:]))
    sys.exit("usage: bench_profiled.py OUT LGSP-ARGS...")
