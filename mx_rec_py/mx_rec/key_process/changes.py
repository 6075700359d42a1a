"""Which keys of a table shard changed since the last checkpoint, whatever tier holds them.

A delta checkpoint holds exactly the keys whose row, optimizer slots or admission count may have
changed since the previous save: the keys training lookups planned (a row written, created or
rejected by admission, a count raised) and the keys eviction removed. The table calls
:func:`planned` and :func:`removed` from its host step (two one-line hooks). A save first
:meth:`ChangeLog.take` s the log (before it reads any value), then :func:`commit` s once complete or
:func:`rollback` s when it failed: keys a pipeline plans while the save runs (a batch prepared ahead)
go to the next delta, never lost.

Tracking is off until :func:`enable` (``init(is_incremental_checkpoint=True)``): then each training
lookup appends its keys to a buffer, compacted into distinct keys and their sighting counts every
few million ids (the counts serve ``recent_key_count_threshold``).

Example:
    >>> enable(True); planned(table, np.array([3, 3, 7]))               # doctest: +SKIP
    >>> tracker(table).take()                    # (keys [3, 7], sightings [2, 1], removed [])  doctest: +SKIP
"""
import threading
import weakref
from typing import Optional, Tuple

import numpy as np

PADDING_KEY = -1
_COMPACT_AT = 1 << 22  # buffered ids before they are folded into distinct keys and counts

_enabled = False
_logs: "weakref.WeakKeyDictionary[object, ChangeLog]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


class ChangeLog:
    """Keys planned for training (with sightings) and keys removed since the last save, of one table shard."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = []
        self._buffered = 0
        self._keys = np.empty(0, np.int64)
        self._counts = np.empty(0, np.int64)
        self._removed = []
        self._taken = None  # (keys, counts, removed) a save in progress took

    def planned(self, keys: np.ndarray, weights: Optional[np.ndarray] = None) -> None:
        """Record keys int64 [N] of one training lookup (padding included; ``weights`` int64 [N]: sightings)."""
        keys = np.asarray(keys, np.int64).reshape(-1)
        weights = np.ones(keys.shape[0], np.int64) if weights is None else np.asarray(weights, np.int64).reshape(-1)
        with self._lock:
            self._buffer.append((keys, weights))
            self._buffered += keys.shape[0]
            if self._buffered >= _COMPACT_AT:
                self._compact()

    def removed(self, keys: np.ndarray) -> None:
        """Record keys int64 [E] removed from the shard (eviction)."""
        if keys.size:
            with self._lock:
                self._removed.append(np.asarray(keys, np.int64).reshape(-1))

    def _compact(self) -> None:
        if not self._buffer:
            return
        keys = np.concatenate([self._keys] + [k for k, _ in self._buffer])
        weights = np.concatenate([self._counts] + [w for _, w in self._buffer])
        real = keys != PADDING_KEY
        self._keys, inverse = np.unique(keys[real], return_inverse=True)
        self._counts = np.bincount(inverse, weights=weights[real], minlength=self._keys.shape[0]).astype(np.int64)
        self._buffer, self._buffered = [], 0

    def _merge(self, keys: np.ndarray, counts: np.ndarray, removed: np.ndarray) -> None:
        """Fold (distinct keys, counts, removed keys) back into the log (caller holds the lock)."""
        self._buffer.append((keys, counts))
        self._compact()
        if removed.size:
            self._removed.append(removed)

    def take(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(planned keys int64 [P] sorted, their sightings int64 [P], removed keys int64 [R] sorted) since the
        last committed save; from now on new records are the next save's. Taking again before
        :meth:`commit` returns what the first take returned plus what came since."""
        with self._lock:
            self._compact()
            removed = np.unique(np.concatenate(self._removed)) if self._removed else np.empty(0, np.int64)
            if self._taken is not None:
                keys, counts, was_removed = self._taken
                self._merge(keys, counts, was_removed)
                removed = np.union1d(removed, was_removed)
            self._taken = (self._keys, self._counts, removed)
            self._buffer, self._buffered, self._removed = [], 0, []
            self._keys, self._counts = np.empty(0, np.int64), np.empty(0, np.int64)
            return self._taken[0].copy(), self._taken[1].copy(), removed.copy()

    def commit(self) -> None:
        """The save that took the log is complete: what it took is gone."""
        with self._lock:
            self._taken = None

    def rollback(self) -> None:
        """The save that took the log failed: what it took is logged again."""
        with self._lock:
            if self._taken is not None:
                self._merge(*self._taken)
                self._taken = None

    def clear(self) -> None:
        with self._lock:
            self._buffer, self._buffered, self._removed, self._taken = [], 0, [], None
            self._keys, self._counts = np.empty(0, np.int64), np.empty(0, np.int64)


def enable(on: bool) -> None:
    """Start (True) or stop (False) tracking; either way every table's log starts empty."""
    global _enabled
    with _lock:
        _enabled = bool(on)
        _logs.clear()


def enabled() -> bool:
    return _enabled


def tracker(table) -> ChangeLog:
    """The change log of ``table`` (created empty on first use)."""
    with _lock:
        log = _logs.get(table)
        if log is None:
            log = _logs[table] = ChangeLog()
        return log


def planned(table, keys: np.ndarray, weights: Optional[np.ndarray] = None) -> None:
    """Hook of a training lookup's host step: ``keys`` int64 [N] may change (no-op unless enabled)."""
    if _enabled:
        tracker(table).planned(keys, weights)


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
