"""Eviction in a running session: drop stale keys and reset their freed rows and slots.

``EvictHook`` fires every ``evict_step_interval`` steps and/or every ``evict_time_interval``
wall-clock seconds; each firing removes, per evicting table, the keys whose last-seen batch
timestamp is more than ``eviction_threshold`` seconds older than the newest batch. Freed rows get
zeros and their optimizer slots their initial values, so a key that reuses the row (or comes back)
starts from its deterministic initial value, fresh slots and a zero count.
"""
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf

from mx_rec.config.initializer import ConfigInitializer
from mx_rec.system.log import logger
from mx_rec.tables.table import EmbeddingTable


class RowReset:
    """Graph ops that reset given rows of a table's variable and slots (built before the graph is final)."""

    def __init__(self, table: EmbeddingTable) -> None:
        self.table = table
        with tf.name_scope(f"{table.table_name}_evict"):
            self.rows = tf.compat.v1.placeholder(tf.int64, [None], name="freed_rows")
            n = tf.shape(self.rows)[0]
            ops = [tf.raw_ops.ResourceScatterUpdate(
                resource=table.variable.handle, indices=self.rows,
                updates=tf.zeros(tf.stack([n, table.dim]), table.variable.dtype.base_dtype))]
            for (_, _), (slot, init) in sorted(table.slots.items()):
                ops.append(tf.raw_ops.ResourceScatterUpdate(
                    resource=slot.handle, indices=self.rows,
                    updates=tf.fill(tf.stack([n, table.dim]), tf.cast(init, slot.dtype.base_dtype))))
            self.op = tf.group(*ops)

    def __call__(self, session, rows: np.ndarray) -> None:
        if rows.size:
            session.run(self.op, {self.rows: rows})


def evicting_tables() -> List[EmbeddingTable]:
    """Tables of the live configuration that have an ``eviction_threshold``."""
    return [t for t in ConfigInitializer.get_instance().tables.values()
            if t.lifecycle is not None and t.lifecycle.evicts]


class EvictHook(tf.compat.v1.train.SessionRunHook):
    """Evicts stale keys while training (Rec SDK signature).

    Args:
        evict_enable: False (the default, as in Rec SDK) makes the hook do nothing.
        evict_time_interval: wall-clock seconds between evictions.
        evict_step_interval: steps between evictions (None: time only).
    """

    def __init__(self, evict_enable: bool = False, evict_time_interval: int = 60 * 60 * 24,
                 evict_step_interval: Optional[int] = None, _clock: Callable[[], float] = time.monotonic) -> None:
        if evict_step_interval is not None and (not isinstance(evict_step_interval, int) or evict_step_interval < 1):
            raise ValueError(f"EvictHook: evict_step_interval must be an int >= 1, got {evict_step_interval!r}")
        if not isinstance(evict_time_interval, (int, float)) or evict_time_interval <= 0:
            raise ValueError(f"EvictHook: evict_time_interval must be > 0 seconds, got {evict_time_interval!r}")
        self.evict_enable = evict_enable
        self.evict_time_interval = evict_time_interval
        self.evict_step_interval = evict_step_interval
        self._clock = _clock
        self._resets: Dict[str, RowReset] = {}
        self._steps = 0
        self._last = 0.0
        self.evicted = 0

    def begin(self) -> None:
        if self.evict_enable:
            self._resets = {t.table_name: RowReset(t) for t in evicting_tables()}
        self._last = self._clock()

    def after_run(self, run_context, run_values) -> None:
        if not self._resets:
            return
        self._steps += 1
        by_step = self.evict_step_interval is not None and self._steps % self.evict_step_interval == 0
        by_time = self._clock() - self._last >= self.evict_time_interval
        if by_step or by_time:
            self.evict(run_context.session)

    def evict(self, session) -> int:
        """Evict now; returns the number of keys removed."""
        removed = 0
        for reset in self._resets.values():
            before = reset.table.size()
            reset(session, reset.table.evict_stale())
            removed += before - reset.table.size()
        self._last = self._clock()
        self.evicted += removed
        logger.info("eviction: %d key(s) removed", removed)
        return removed
