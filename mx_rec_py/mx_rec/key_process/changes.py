"""Which keys of a table shard changed since the last checkpoint, whatever tier holds them.

A delta checkpoint holds exactly the keys whose row, optimizer slots or admission count may have
changed since the previous save: the keys training lookups planned (a row written, created or
rejected by admission, a count raised) and the keys eviction removed. The table calls
:func:`planned` and :func:`removed` from its host step (two one-line hooks). A save first
:meth:`ChangeLog.take` s the log (before it reads any value), then :func:`commit` s once complete or
:func:`rollback` s when it failed: keys a pipeline plans while the save runs (a batch prepared ahead)
go to the next delta, never lost.

Tracking is off until :func:`enable` (``init(is_incremental_checkpoint=True)``): then each training
lookup adds its distinct keys and their sightings to the log (the counts serve
``recent_key_count_threshold``).

Example:
    >>> enable(True); planned(table, np.array([3, 7]), np.array([2, 1]))  # doctest: +SKIP
    >>> tracker(table).take()                    # (keys [3, 7], sightings [2, 1], removed [])  doctest: +SKIP
"""
import threading
from typing import Optional, Tuple

import numpy as np

from mx_rec.key_process.dedup import dedup
from mx_rec.key_process.hash_index import HashIndex

_UNBOUNDED = 1 << 62

_enabled = False  # init(is_incremental_checkpoint=...): every table's log records only while on


class ChangeLog:
    """Keys planned for training (with sightings) and keys removed since the last save, of one table shard.

    Planned keys go into a hash index (the one tables use) with a count per key: a training batch costs
    one index probe of the distinct keys its plan found, whatever the number of batches since the save.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index = HashIndex(_UNBOUNDED, initial_slots=1 << 12)
        self._counts = np.zeros(1 << 11, np.int64)
        self._removed = []
        self._taken = None  # (keys, counts, removed) a save in progress took

    def planned(self, keys: np.ndarray, weights: Optional[np.ndarray] = None) -> None:
        """Record keys int64 [N] of one training lookup (padding -1 skipped; ``weights`` int64 [N]: sightings)."""
        unique, inverse, occurrences = dedup(np.asarray(keys, np.int64).reshape(-1))
        if weights is not None:
            valid = inverse < unique.shape[0]
            occurrences = np.bincount(inverse[valid], weights=np.asarray(weights).reshape(-1)[valid],
                                      minlength=unique.shape[0])
        self.planned_distinct(unique, occurrences)

    def planned_distinct(self, unique: np.ndarray, occurrences: np.ndarray) -> None:
        """Record distinct keys int64 [U] (no padding) seen ``occurrences`` int64 [U] times: what a
        lookup's plan already counted, so the batch is not deduplicated twice."""
        with self._lock:
            self._add(unique, occurrences)

    def removed(self, keys: np.ndarray) -> None:
        """Record keys int64 [E] removed from the shard (eviction)."""
        if keys.size:
            with self._lock:
                self._removed.append(np.asarray(keys, np.int64).reshape(-1))

    def _add(self, keys: np.ndarray, counts: np.ndarray) -> None:
        """Add sightings of distinct keys (caller holds the lock)."""
        if not keys.size:
            return
        slots, _ = self._index.lookup_or_insert(np.ascontiguousarray(keys, np.int64))
        if self._index.rows_reserved > self._counts.shape[0]:
            size = self._counts.shape[0]
            while size < self._index.rows_reserved:
                size *= 2
            self._counts = np.concatenate([self._counts, np.zeros(size - self._counts.shape[0], np.int64)])
        self._counts[slots] += counts.astype(np.int64)

    def _drain(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Everything logged, sorted by key, and the log emptied (caller holds the lock)."""
        keys, slots = self._index.items()
        order = np.argsort(keys)
        keys, counts = keys[order], self._counts[slots[order]]
        removed = np.unique(np.concatenate(self._removed)) if self._removed else np.empty(0, np.int64)
        self._index.clear()
        self._counts[:] = 0
        self._removed = []
        return keys, counts, removed

    def take(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(planned keys int64 [P] sorted, their sightings int64 [P], removed keys int64 [R] sorted) since the
        last committed save; from now on new records are the next save's. Taking again before
        :meth:`commit` returns what the first take returned plus what came since."""
        with self._lock:
            if self._taken is not None:
                self._add(*self._taken[:2])
                self._removed.append(self._taken[2])
            self._taken = self._drain()
            return tuple(a.copy() for a in self._taken)

    def commit(self) -> None:
        """The save that took the log is complete: what it took is gone."""
        with self._lock:
            self._taken = None

    def rollback(self) -> None:
        """The save that took the log failed: what it took is logged again."""
        with self._lock:
            if self._taken is not None:
                self._add(*self._taken[:2])
                self._removed.append(self._taken[2])
                self._taken = None

    def clear(self) -> None:
        with self._lock:
            self._drain()
            self._taken = None


def enable(on: bool) -> None:
    """Start (True) or stop (False) tracking; tables made from now on start with an empty log (a
    restore or a base save empties the logs of the tables already there)."""
    global _enabled
    _enabled = bool(on)


def enabled() -> bool:
    return _enabled


def tracker(table) -> ChangeLog:
    """The change log of ``table`` (each table owns one: ``EmbeddingTable.changes``)."""
    return table.changes


def planned(table, unique: np.ndarray, occurrences: np.ndarray) -> None:
    """Hook of a training lookup's host step, after its plan: the distinct keys int64 [U] it planned
    (seen ``occurrences`` int64 [U] times) may change (no-op unless enabled)."""
    if _enabled:
        tracker(table).planned_distinct(unique, occurrences)


def removed(table, keys: np.ndarray) -> None:
    """Hook of eviction: ``keys`` int64 [E] left the table (no-op unless enabled)."""
    if _enabled:
        tracker(table).removed(keys)


def reset(tables) -> None:
    """After a restore: the tables' logs start empty."""
    for table in tables:
        tracker(table).clear()


def commit(tables) -> None:
    """After a complete save: what it took from the tables' logs is gone."""
    for table in tables:
        tracker(table).commit()


def rollback(tables) -> None:
    """After a failed save: what it took from the tables' logs is logged again."""
    for table in tables:
        tracker(table).rollback()
