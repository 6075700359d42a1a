"""Per-key admission counts and last-seen timestamps for a table shard (training lookups only)."""
from typing import Optional, Tuple

import numpy as np

from mx_rec.key_process.hash_index import HashIndex

_UNBOUNDED = 1 << 62
NO_TIMESTAMP = np.iinfo(np.int64).min


class KeyStats:
    """Every key a table has seen in training, admitted or not: its count and last-seen time.

    ``newest`` is the largest batch timestamp seen (int64 seconds; ``NO_TIMESTAMP`` before any).
    """

    def __init__(self, initial: int = 1024) -> None:
        self.index = HashIndex(_UNBOUNDED, initial_slots=2 * initial)
        self.counts = np.zeros(initial, dtype=np.int64)
        self.last_seen = np.full(initial, NO_TIMESTAMP, dtype=np.int64)
        self.newest = NO_TIMESTAMP

    def __len__(self) -> int:
        return len(self.index)

    def observe(self, keys: np.ndarray, occurrences: np.ndarray, coefficient: int,
                timestamp: Optional[int]) -> np.ndarray:
        """Count one training batch.

        Args:
            keys: int64 [U] distinct keys. occurrences: int32/int64 [U], sightings of each in the batch.
            coefficient: weight of one sighting (``faae_coefficient``).
            timestamp: the batch's time in seconds, or None when the table does not evict.

        Returns:
            int64 [U], each key's count after this batch.
        """
        slots, _ = self.index.lookup_or_insert(keys)
        self._grow(self.index.rows_reserved)
        self.counts[slots] += occurrences.astype(np.int64) * coefficient
        if timestamp is not None:
            self.last_seen[slots] = timestamp
            self.newest = max(self.newest, int(timestamp))
        return self.counts[slots]

    def counts_of(self, keys: np.ndarray) -> np.ndarray:
        """int64 [U] counts of keys (0 for keys never seen)."""
        slots = self.index.lookup(keys)
        return np.where(slots >= 0, self.counts[np.maximum(slots, 0)], 0)

    def stale(self, max_age: int) -> np.ndarray:
        """Keys int64 [E] last seen more than ``max_age`` seconds before ``newest``."""
        if self.newest == NO_TIMESTAMP:
            return np.empty(0, np.int64)
        keys, slots = self.index.items()
        return keys[self.last_seen[slots] < self.newest - max_age]

    def remove(self, keys: np.ndarray) -> None:
        """Forget keys: a key seen again starts from count 0."""
        slots = self.index.remove(keys)
        self.counts[slots] = 0
        self.last_seen[slots] = NO_TIMESTAMP

    def items(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(keys int64 [K], counts int64 [K], last_seen int64 [K])."""
        keys, slots = self.index.items()
        return keys, self.counts[slots], self.last_seen[slots]

    def load(self, keys: np.ndarray, counts: np.ndarray, last_seen: np.ndarray, newest: int) -> None:
        """Replace the contents (used by checkpoint restore)."""
        self.index.clear()
        slots, _ = self.index.lookup_or_insert(np.ascontiguousarray(keys, dtype=np.int64))
        self._grow(self.index.rows_reserved)
        self.counts[:] = 0
        self.last_seen[:] = NO_TIMESTAMP
        self.counts[slots] = counts
        self.last_seen[slots] = last_seen
        self.newest = int(newest)

    def _grow(self, needed: int) -> None:
        if needed <= self.counts.shape[0]:
            return
        size = self.counts.shape[0]
        while size < needed:
            size *= 2
        self.counts = np.concatenate([self.counts, np.zeros(size - self.counts.shape[0], np.int64)])
        self.last_seen = np.concatenate([self.last_seen,
                                         np.full(size - self.last_seen.shape[0], NO_TIMESTAMP, np.int64)])
