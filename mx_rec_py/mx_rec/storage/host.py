"""The host (DDR) tier: rows of keys that are not on the device, with their optimizer slots.

A row is stored full-width: embedding [dim] followed by each slot [dim], in the table's slot order.
When a row moves up to the device its slot is *lent* rather than freed: the key keeps its place
in the index, so that the row comes back to the same slot without a second hash insert. Lent
slots do not count as held keys (``len``, ``contains``, ``items``, ``least_used`` skip them).
"""
from typing import Tuple

import numpy as np

from mx_rec.key_process.hash_index import HashIndex
from mx_rec.storage.tiered_kernels import write_parts


class HostFullError(RuntimeError):
    """More rows than the host tier may hold."""


class HostStore:
    """Keys -> full-width rows in host memory, up to ``capacity`` keys.

    Args:
        capacity: most keys held. width: values per row (dim * (1 + slots)). dtype: numpy dtype.
        lendable: most slots lent out at once (the device cache's rows).
    """

    def __init__(self, capacity: int, width: int, dtype, lendable: int = 0) -> None:
        self.capacity = int(capacity)
        self.width = width
        slots = self.capacity + int(lendable)
        self.index = HashIndex(slots, initial_slots=min(2 * slots, 1 << 16))
        self.values = np.zeros((min(slots, 4096), width), dtype=dtype)
        self.freq = np.zeros(self.values.shape[0], dtype=np.int64)  # accesses so far (LFU demotion to SSD)
        self.lent = np.zeros(self.values.shape[0], dtype=bool)
        self.n_lent = 0
        self.slot_key = np.full(self.values.shape[0], -1, dtype=np.int64)  # the key of each slot, -1 when free

    def __len__(self) -> int:
        return len(self.index) - self.n_lent

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """bool [K]: which keys are held here."""
        slots = self.index.lookup(keys)
        return (slots >= 0) & ~self.lent[np.maximum(slots, 0)]

    def holds(self, keys: np.ndarray, wanted: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Copy the rows of ``keys`` int64 [K] held here (not lent) where ``wanted`` bool [K] into
        ``out`` [K, width]; returns bool [K], which were copied."""
        slots = self.index.lookup(keys)
        found = wanted & (slots >= 0) & ~self.lent[np.maximum(slots, 0)]
        out[found] = self.values[slots[found]]
        return found

    def lend(self, slots: np.ndarray) -> None:
        """The rows at held slots int64 [K] moved up to the device; their keys keep the slots."""
        self.lent[slots] = True
        self.n_lent += slots.shape[0]

    def give_back(self, slots: np.ndarray, parts: Tuple[np.ndarray, ...], freq: np.ndarray) -> None:
        """Rows come back to the lent slots int64 [K] of their keys, as parts (the embedding [K, dim],
        then each slot [K, dim]), with their access counts [K].

        Raises:
            HostFullError: they do not fit; nothing changes.
        """
        if len(self) + slots.shape[0] > self.capacity:
            raise HostFullError(f"{slots.shape[0]} rows do not fit: {len(self)} of {self.capacity} held")
        write_parts(self.values, slots, tuple(np.ascontiguousarray(p, dtype=self.values.dtype) for p in parts))
        self.freq[slots] = freq
        self.lent[slots] = False
        self.n_lent -= slots.shape[0]

    def take(self, keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Remove keys (all must be held, none lent); returns their rows [K, width] and access counts [K]."""
        slots = self.index.lookup(keys)
        values, freq = self.values[slots].copy(), self.freq[slots].copy()
        self.index.remove(keys)
        self.slot_key[slots] = -1
        return values, freq

    def least_used(self, n: int) -> np.ndarray:
        """The ``n`` held keys with the fewest accesses (int64 [n]); among equal counts the smallest
        keys, so that the choice does not depend on where keys sit in the index."""
        keys, slots = self._held()
        if n >= keys.shape[0]:
            return keys
        freq = self.freq[slots]
        cut = np.partition(freq, n - 1)[n - 1]
        below = keys[freq < cut]
        tied = keys[freq == cut]
        return np.concatenate([below, np.partition(tied, n - below.shape[0] - 1)[:n - below.shape[0]]])

    def put(self, keys: np.ndarray, values: np.ndarray, freq=None) -> None:
        """Hold distinct, absent keys with their rows [K, width] (and access counts [K]).

        Raises:
            HostFullError: they do not fit; nothing changes.
        """
        if len(self) + keys.shape[0] > self.capacity:
            raise HostFullError(f"{keys.shape[0]} rows do not fit: {len(self)} of {self.capacity} held")
        slots, _ = self.index.lookup_or_insert(keys)
        self._grow(self.index.rows_reserved)
        self.slot_key[slots] = keys
        self.values[slots] = values
        self.freq[slots] = 1 if freq is None else freq

    def remove(self, keys: np.ndarray) -> None:
        """Drop keys if held (or lent)."""
        slots = self.index.lookup(np.ascontiguousarray(keys, dtype=np.int64))
        lent = slots[(slots >= 0) & self.lent[np.maximum(slots, 0)]]
        self.lent[lent] = False
        self.n_lent -= lent.shape[0]
        self.slot_key[slots[slots >= 0]] = -1
        self.index.remove(keys)

    def items(self) -> Tuple[np.ndarray, np.ndarray]:
        """(keys int64 [K], rows [K, width]) of the held keys."""
        keys, slots = self._held()
        return keys, self.values[slots]

    def clear(self) -> None:
        self.index.clear()
        self.lent[:] = False
        self.n_lent = 0
        self.slot_key[:] = -1

    def _held(self) -> Tuple[np.ndarray, np.ndarray]:
        """(keys, slots) held and not lent, in slot order; a scan of the slots in use (rows of
        ``values``), not of the hash table."""
        used = self.index.rows_reserved
        slots = np.flatnonzero((self.slot_key[:used] >= 0) & ~self.lent[:used])
        return self.slot_key[slots], slots

    def _grow(self, needed: int) -> None:
        size = self.values.shape[0]
        if needed <= size:
            return
        while size < needed:
            size *= 2
        size = min(size, self.index.capacity)
        extra = size - self.values.shape[0]
        self.values = np.concatenate([self.values, np.zeros((extra, self.width), self.values.dtype)])
        self.freq = np.concatenate([self.freq, np.zeros(extra, np.int64)])
        self.lent = np.concatenate([self.lent, np.zeros(extra, bool)])
        self.slot_key = np.concatenate([self.slot_key, np.full(extra, -1, np.int64)])
