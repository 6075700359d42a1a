"""The host (DDR) tier: rows of keys that are not on the device, with their optimizer slots.

A row is stored full-width: embedding [dim] followed by each slot [dim], in the table's slot order.
"""
from typing import Tuple

import numpy as np

from mx_rec.key_process.hash_index import HashIndex


class HostFullError(RuntimeError):
    """More rows than the host tier may hold."""


class HostStore:
    """Keys -> full-width rows in host memory, up to ``capacity`` keys.

    Args:
        capacity: most keys held. width: values per row (dim * (1 + slots)). dtype: numpy dtype.
    """

    def __init__(self, capacity: int, width: int, dtype) -> None:
        self.capacity = int(capacity)
        self.width = width
        self.index = HashIndex(self.capacity, initial_slots=min(2 * self.capacity, 1 << 16))
        self.values = np.zeros((min(self.capacity, 4096), width), dtype=dtype)
        self.freq = np.zeros(self.values.shape[0], dtype=np.int64)  # accesses so far (LFU demotion to SSD)

    def __len__(self) -> int:
        return len(self.index)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """bool [K]: which keys are held here."""
        return self.index.lookup(keys) >= 0

    def take(self, keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Remove keys (all must be held); returns their rows [K, width] and access counts [K]."""
        slots = self.index.lookup(keys)
        values, freq = self.values[slots].copy(), self.freq[slots].copy()
        self.index.remove(keys)
        return values, freq

    def least_used(self, n: int) -> np.ndarray:
        """The ``n`` held keys with the fewest accesses (int64 [n])."""
        keys, slots = self.index.items()
        if n >= keys.shape[0]:
            return keys
        return keys[np.argpartition(self.freq[slots], n - 1)[:n]]

    def put(self, keys: np.ndarray, values: np.ndarray, freq=None) -> None:
        """Hold distinct, absent keys with their rows [K, width] (and access counts [K]).

        Raises:
            HostFullError: they do not fit; nothing changes.
        """
        if len(self.index) + keys.shape[0] > self.capacity:
            raise HostFullError(f"{keys.shape[0]} rows do not fit: {len(self.index)} of {self.capacity} held")
        slots, _ = self.index.lookup_or_insert(keys)
        self._grow(self.index.rows_reserved)
        self.values[slots] = values
        self.freq[slots] = 1 if freq is None else freq

    def remove(self, keys: np.ndarray) -> None:
        """Drop keys if held."""
        self.index.remove(keys)

    def items(self) -> Tuple[np.ndarray, np.ndarray]:
        """(keys int64 [K], rows [K, width])."""
        keys, slots = self.index.items()
        return keys, self.values[slots]

    def clear(self) -> None:
        self.index.clear()

    def _grow(self, needed: int) -> None:
        size = self.values.shape[0]
        if needed <= size:
            return
        while size < needed:
            size *= 2
        size = min(size, self.capacity)
        extra = size - self.values.shape[0]
        self.values = np.concatenate([self.values, np.zeros((extra, self.width), self.values.dtype)])
        self.freq = np.concatenate([self.freq, np.zeros(extra, np.int64)])
