"""The garbage collector in a running gateway or worker: the start-up heap frozen, fewer walks.

CPython's cyclic collector runs by allocation counts. In a running gateway or worker (measured on
the small mix), a full collection walked the whole long-lived heap (the modules, the app, the
store's and the broker's clients) for 95 to 190 ms, holding every request meanwhile, and the
collections after start-up cost about 9 % of the process's CPU in all. ``settle_heap``, called
once the service has started, collects once, moves what is alive into the permanent generation
(``gc.freeze``: never walked again) and lets the young generation grow to ``GEN0_THRESHOLD``
allocations before it is collected: after it, collections cost about 0.6 % of the CPU and a full
one 4 to 10 ms. Reference counting still frees almost everything at once; the collector is only
for cycles, which it still finds.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 20_000  # allocations between young collections (CPython's default: 700)
GEN1_THRESHOLD = 10
GEN2_THRESHOLD = 10


def settle_heap() -> None:
    """Once a long-running process has started: collect, freeze what is alive, collect rarely."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
