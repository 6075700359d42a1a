"""Lookahead for DDR/SSD tables: the input pipeline tells the step which keys come next.

In modify-graph mode a lookup's dedup runs in the ``tf.data`` threads, a batch or two ahead of
the step. For a table whose device variable is a cache, that dedup also *publishes* the batch's
distinct keys under a sequence number that travels with the batch. While step t trains, the
lookup asks for batch t+1's keys and places them on the device (swaps included), so that step
t+1's lookup only checks that its keys are the ones placed. When the next keys are not there yet
(the pipeline is slower than the step, or the iterator was re-initialised), nothing is prepared
and the lookup places its batch itself: lookahead changes where rows live and when they move,
never the numbers.
"""
import itertools
import threading
from typing import Dict, Optional, Tuple

import numpy as np

from mx_rec.key_process.dedup import dedup

MAX_PUBLISHED = 16  # batches the pipeline may run ahead; older ones are dropped


class NextKeys:
    """Distinct keys of batches the pipeline has deduplicated and the step has not consumed yet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sequence = itertools.count(1)
        self._keys: Dict[int, np.ndarray] = {}

    def publish(self, unique: np.ndarray) -> int:
        """Record a batch's distinct keys int64 [U]; returns its sequence number (int, increasing)."""
        with self._lock:
            seq = next(self._sequence)
            self._keys[seq] = unique
            if len(self._keys) > MAX_PUBLISHED:
                del self._keys[min(self._keys)]
            return seq

    def after(self, seq: int) -> Optional[np.ndarray]:
        """The distinct keys of batch ``seq + 1`` if the pipeline has made it, else None; forgets
        every batch up to ``seq + 1`` (a batch is only placed ahead once)."""
        with self._lock:
            keys = self._keys.pop(seq + 1, None)
            for old in [s for s in self._keys if s <= seq + 1]:
                del self._keys[old]
            return keys

    def dedup_stage(self, keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.int64]:
        """The dedup key stage that publishes: (unique int64 [U], inverse int32 [N] (padding -> U),
        counts int64 [U], sequence number int64 scalar)."""
        unique, inverse, counts = dedup(keys)
        return unique, inverse, counts.astype(np.int64), np.int64(self.publish(unique))
