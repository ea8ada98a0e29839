"""The running service's collector: the start-up heap frozen, young collections rarer, cycles
still collected (checked in a child process, so that pytest's own collector is left alone)."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import gc
from gateway.core.heap import GEN0_THRESHOLD, settle_heap

kept = [object() for _ in range(1000)]
settle_heap()
assert gc.get_freeze_count() >= 1000, gc.get_freeze_count()
assert gc.get_threshold()[0] == GEN0_THRESHOLD
assert gc.isenabled()

class Node:
    pass

a, b = Node(), Node()
a.other, b.other = b, a
del a, b
assert gc.collect() >= 2  # a cycle made after start-up is still found
print("ok")
"""


def test_settle_heap_freezes_what_is_alive_and_still_collects_new_cycles() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
