"""The machine's phase during a benchmark run: how busy it was, what waited for a core, how fast.

On this shared 2-vCPU machine the same code gives figures a third apart from one hour to the
next (``docs/performance.md``), so a run's JSON line carries what says which hour it ran in:

* ``machine.busy_share``: the share of all cores' time spent running anything (``/proc/stat``,
  over the measured run); ``machine.steal_share``: the share the hypervisor gave to others.
* ``cpu_wait_ms_per_package``: per process, the time its threads were runnable but waited for a
  core (``/proc/<pid>/task/*/schedstat``), per package, beside ``cpu_ms_per_package``.
* ``reference_verify_ms``: the CPU of one verification of the mix's first package in the bench
  process (``Verifier.verify_xml``, best of ``REFERENCE_ROUNDS`` rounds), measured while the
  services idle: the same work on every run, so runs of different days can be set side by side.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REFERENCE_ROUNDS = 5
REFERENCE_CALLS = 200


@dataclass(frozen=True)
class MachineTimes:
    """``/proc/stat``'s first line in seconds: all cores' busy, idle and stolen time."""

    busy_s: float
    idle_s: float
    steal_s: float

    @classmethod
    def now(cls) -> MachineTimes:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
        tick_s = 1 / os.sysconf("SC_CLK_TCK")
        return cls(
            busy_s=(user + nice + system + irq + softirq) * tick_s,
            idle_s=(idle + iowait) * tick_s,
            steal_s=steal * tick_s,
        )

    def shares_since(self, before: MachineTimes) -> dict[str, float]:
        busy, idle = self.busy_s - before.busy_s, self.idle_s - before.idle_s
        steal = self.steal_s - before.steal_s
        total = max(busy + idle + steal, 1e-9)
        return {"busy_share": round(busy / total, 3), "steal_share": round(steal / total, 3)}


def wait_s(pid: int) -> float:
    """Seconds the threads of ``pid`` have been runnable but waiting for a core (0.0 if gone).

    Threads that ended are not counted (their schedstat goes with them): the services' threads
    live as long as the run."""
    total_ns = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0.0
    for task in tasks:
        try:
            total_ns += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total_ns / 1e9


def per_package_ms(
    after: dict[str, float], before: dict[str, float], packages: int
) -> dict[str, float]:
    """Each part's ``after - before`` seconds, in ms per package."""
    scale = 1000 / max(1, packages)
    return {k: round((v - before.get(k, 0.0)) * scale, 2) for k, v in after.items()}


def reference_ms(work: Callable[[], object], *, calls: int = REFERENCE_CALLS) -> float:
    """CPU ms of one call of ``work``: best of ``REFERENCE_ROUNDS`` rounds of ``calls``."""
    best = float("inf")
    for _ in range(REFERENCE_ROUNDS):
        started = time.process_time()
        for _ in range(calls):
            work()
        best = min(best, (time.process_time() - started) / calls)
    return round(best * 1000, 3)
