"""Key -> row index: open addressing with linear probing over int64 keys (numba kernels).

The padding key -1 doubles as the empty-slot marker, since it is never stored.
Rows are handed out from a free list first, then in increasing order, up to ``capacity``.
The slot arrays hold int64 keys and, when every row fits (``capacity`` < 2**31), int32 rows: 12 bytes
a slot instead of 16 (the kernels take either; rows handed to callers are int64 whatever the index keeps).
"""
from typing import Tuple

import numba
import numpy as np

from mx_rec.key_process.hashing import mix64

_EMPTY = -1
_MAX_LOAD = 0.5
_INT32_ROWS = 1 << 31  # capacities below this keep int32 rows


def rows_dtype(capacity: int) -> np.dtype:
    """The dtype an index of ``capacity`` rows keeps its slots' rows in: int32 below 2**31, else int64."""
    return np.dtype(np.int32) if capacity < _INT32_ROWS else np.dtype(np.int64)


@numba.njit(cache=True, nogil=True, inline="always")
def find_row(slot_keys, slot_rows, k):
    """Row of key ``k`` (int64) in an index's slot arrays (``HashIndex.slot_arrays``; rows int32 or
    int64), -1 if absent."""
    mask = np.uint64(slot_keys.shape[0] - 1)
    s = mix64(np.uint64(k)) & mask
    while True:
        sk = slot_keys[s]
        if sk == k:
            return slot_rows[s]
        if sk == _EMPTY:
            return -1
        s = (s + np.uint64(1)) & mask


@numba.njit(cache=True, nogil=True)
def _probe(slot_keys, slot_rows, keys, out_rows):
    missing = 0
    for i in range(keys.shape[0]):
        out_rows[i] = find_row(slot_keys, slot_rows, keys[i])
        if out_rows[i] < 0:
            missing += 1
    return missing


@numba.njit(cache=True, nogil=True)
def _insert_missing(slot_keys, slot_rows, keys, rows, free_rows, n_free, next_row):
    """Give every key whose row is -1 a row; returns (n_free, next_row) after allocation."""
    mask = np.uint64(slot_keys.shape[0] - 1)
    for i in range(keys.shape[0]):
        if rows[i] >= 0:
            continue
        if n_free > 0:
            n_free -= 1
            r = free_rows[n_free]
        else:
            r = next_row
            next_row += 1
        k = keys[i]
        s = mix64(np.uint64(k)) & mask
        while slot_keys[s] != _EMPTY:
            s = (s + np.uint64(1)) & mask
        slot_keys[s] = k
        slot_rows[s] = r
        rows[i] = r
    return n_free, next_row


@numba.njit(cache=True, nogil=True)
def _rehash(old_keys, old_rows, new_keys, new_rows):
    mask = np.uint64(new_keys.shape[0] - 1)
    for j in range(old_keys.shape[0]):
        k = old_keys[j]
        if k == _EMPTY:
            continue
        s = mix64(np.uint64(k)) & mask
        while new_keys[s] != _EMPTY:
            s = (s + np.uint64(1)) & mask
        new_keys[s] = k
        new_rows[s] = old_rows[j]


@numba.njit(cache=True, nogil=True)
def _remove(slot_keys, slot_rows, keys, freed):
    """Delete keys with backward-shift deletion; writes their rows to ``freed``, returns how many."""
    mask = np.uint64(slot_keys.shape[0] - 1)
    n_freed = 0
    for i in range(keys.shape[0]):
        k = keys[i]
        if k == _EMPTY:
            continue
        s = mix64(np.uint64(k)) & mask
        while slot_keys[s] != k:
            if slot_keys[s] == _EMPTY:
                break
            s = (s + np.uint64(1)) & mask
        if slot_keys[s] != k:
            continue
        freed[n_freed] = slot_rows[s]
        n_freed += 1
        hole = s
        j = s
        while True:
            j = (j + np.uint64(1)) & mask
            kj = slot_keys[j]
            if kj == _EMPTY:
                break
            home = mix64(np.uint64(kj)) & mask
            # the entry at j may move into the hole unless its home lies cyclically in (hole, j]
            if hole <= j:
                stays = hole < home <= j
            else:
                stays = home > hole or home <= j
            if not stays:
                slot_keys[hole] = kj
                slot_rows[hole] = slot_rows[j]
                hole = j
        slot_keys[hole] = _EMPTY
        slot_rows[hole] = -1
    return n_freed


class TableFullError(RuntimeError):
    """Raised when a batch needs more rows than the index may hand out."""


class HashIndex:
    """Maps int64 keys to row numbers in ``[0, capacity)``.

    Args:
        capacity: the most rows that may be in use at once (below 2**31: the slots keep int32 rows).
        initial_slots: starting size of the slot array (rounded up to a power of two);
            the array doubles whenever the load factor would pass 0.5.

    Memory: ``nbytes`` bytes, 12 a slot (16 when ``capacity`` >= 2**31) plus the free list
    (8 bytes a freed row not yet reused); the slots are 2 to 4 a key held.

    Example:
        >>> index = HashIndex(100)
        >>> rows, new = index.lookup_or_insert(np.array([7, 3], np.int64))   # rows [0, 1], new [0, 1]
    """

    def __init__(self, capacity: int, initial_slots: int = 1024) -> None:
        self.capacity = int(capacity)
        slots = 16
        while slots < initial_slots:
            slots *= 2
        self._rows_dtype = rows_dtype(self.capacity)
        self._slot_keys = np.full(slots, _EMPTY, dtype=np.int64)
        self._slot_rows = np.full(slots, -1, dtype=self._rows_dtype)
        self._free_rows = np.empty(0, dtype=np.int64)
        self._n_free = 0
        self._next_row = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def rows_reserved(self) -> int:
        """Rows ever handed out (the high-water mark), int."""
        return self._next_row

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Rows of ``keys`` (int64 [U], distinct, no -1) as int64 [U]; -1 where absent."""
        rows = np.empty(keys.shape[0], dtype=np.int64)
        _probe(self._slot_keys, self._slot_rows, keys, rows)
        return rows

    @property
    def nbytes(self) -> int:
        """Bytes the index holds: its slot arrays and free list (int)."""
        return self._slot_keys.nbytes + self._slot_rows.nbytes + self._free_rows.nbytes

    @property
    def slot_arrays(self) -> Tuple[np.ndarray, np.ndarray]:
        """The live slot arrays (keys int64 [S], rows int32 or int64 [S] (see :func:`rows_dtype`); S a power
        of two, empty key -1) for kernels that probe the index themselves; read-only for them, and replaced
        when the index grows."""
        return self._slot_keys, self._slot_rows

    def insert_absent(self, keys: np.ndarray) -> np.ndarray:
        """``lookup_or_insert(keys)[0]`` for keys known to be absent (int64 [U], distinct, no -1), without
        probing for them first; returns their new rows int64 [U].

        Raises:
            TableFullError: as :meth:`lookup_or_insert`; the index is left unchanged.
        """
        rows = np.full(keys.shape[0], -1, dtype=np.int64)
        if keys.shape[0]:
            self._insert_rows(keys, rows, keys.shape[0])
        return rows

    def _insert_rows(self, keys: np.ndarray, rows: np.ndarray, missing: int) -> None:
        """Give the ``missing`` keys whose ``rows`` entry is -1 a row, all or none (TableFullError)."""
        available = self.capacity - self._size
        if missing > available:
            raise TableFullError(
                f"{missing} new keys in this batch but only {available} of {self.capacity} rows free; "
                f"at least {self._size + missing} rows are needed")
        self._reserve_slots(self._size + missing)
        self._n_free, self._next_row = _insert_missing(
            self._slot_keys, self._slot_rows, keys, rows, self._free_rows, self._n_free, self._next_row)
        self._size += missing

    def lookup_or_insert(self, keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Rows of distinct keys, inserting absent ones; all-or-nothing.

        Args:
            keys: int64 [U], distinct, without the padding key.

        Returns:
            rows: int64 [U]; new_positions: int64 [M], indices into ``keys`` that were inserted.

        Raises:
            TableFullError: the absent keys do not fit; the index is left unchanged.
        """
        rows = np.empty(keys.shape[0], dtype=np.int64)
        missing = _probe(self._slot_keys, self._slot_rows, keys, rows)
        if missing == 0:
            return rows, np.empty(0, dtype=np.int64)
        new_positions = np.flatnonzero(rows < 0)
        self._insert_rows(keys, rows, missing)
        return rows, new_positions

    def remove(self, keys: np.ndarray) -> np.ndarray:
        """Delete distinct keys (absent ones are skipped); their rows become free for reuse.

        Returns:
            int64 [R], the rows that were freed.
        """
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        freed = np.empty(keys.shape[0], dtype=np.int64)
        n = _remove(self._slot_keys, self._slot_rows, keys, freed)
        freed = freed[:n]
        free = np.concatenate([self._free_rows[:self._n_free], freed])
        self._free_rows, self._n_free = free, free.shape[0]
        self._size -= n
        return freed

    def clear(self) -> None:
        """Forget every key; all rows become free, handed out again from row 0."""
        self._slot_keys[:] = _EMPTY
        self._slot_rows[:] = -1
        self._free_rows = np.empty(0, dtype=np.int64)
        self._n_free = self._next_row = self._size = 0

    def items(self) -> Tuple[np.ndarray, np.ndarray]:
        """All (keys int64 [K], rows int64 [K]) pairs, in slot order."""
        used = self._slot_keys != _EMPTY
        return self._slot_keys[used], self._slot_rows[used].astype(np.int64)

    def _reserve_slots(self, n_keys: int) -> None:
        slots = self._slot_keys.shape[0]
        if n_keys <= slots * _MAX_LOAD:
            return
        while n_keys > slots * _MAX_LOAD:
            slots *= 2
        # Only the used slots (at most half) wait beside the new arrays: 2.5x the old arrays at the
        # peak instead of 3x (old and new at once).
        used = self._slot_keys != _EMPTY
        keys, rows = self._slot_keys[used], self._slot_rows[used]
        del used
        old_slots, self._slot_keys, self._slot_rows = self._slot_keys.shape[0], None, None
        try:
            self._slot_keys = np.full(slots, _EMPTY, dtype=np.int64)
            self._slot_rows = np.full(slots, -1, dtype=self._rows_dtype)
        except MemoryError:  # keep every key: back to the old size (its memory was just freed)
            slots = old_slots
            self._slot_keys = np.full(slots, _EMPTY, dtype=np.int64)
            self._slot_rows = np.full(slots, -1, dtype=self._rows_dtype)
            _rehash(keys, rows, self._slot_keys, self._slot_rows)
            raise
        _rehash(keys, rows, self._slot_keys, self._slot_rows)
