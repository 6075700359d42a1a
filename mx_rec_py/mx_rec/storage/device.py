"""The device (HBM) tier alone: every key of the shard has a row in the device variable."""
from typing import Tuple, Union

import numpy as np

from mx_rec.key_process.hash_index import HashIndex, TableFullError

EXPANSION_CHUNK = 64
UNBOUNDED = 1 << 62
from mx_rec.storage.base import Placement
from mx_rec.storage.initial_rows import InitSpec, initial_rows


class DeviceStore:
    """Keys -> rows of a fixed-size device variable.

    A new key's row is *pending* until a completed graph write of its initial value is confirmed
    (:meth:`confirm_written`). Every lookup that gathers a pending row writes it first, with the same
    deterministic values, so lookups of one table need no ordering between them and a lookup never
    depends on another lookup's input pipeline.

    Args:
        table_name: for error messages.
        capacity: rows in the variable available to keys.
        dim: embedding width.
        init: the table's initializer; new keys get ``initial_rows(init, key)``.
        value_dtype: numpy dtype of the rows.
    """

    def __init__(self, table_name: str, capacity: int, dim: int, init: InitSpec, value_dtype=np.float32,
                 expandable: bool = False) -> None:
        self.table_name = table_name
        self.dim = dim
        self.init = init
        self.value_dtype = value_dtype
        self.expandable = expandable
        self.rows = min(capacity, EXPANSION_CHUNK) if expandable else capacity
        self.index = HashIndex(UNBOUNDED if expandable else capacity, initial_slots=min(2 * self.rows, 1 << 16))
        self._pending = np.zeros(self.rows, dtype=bool)

    @property
    def padding_row(self) -> int:
        """The scratch row after the keys' rows (no key owns it)."""
        return self.rows

    def _grow_to_fit(self) -> None:
        """Expansion: reserve rows in chunks of at least half the current size, never per key."""
        needed = self.index.rows_reserved
        if needed <= self.rows:
            return
        rows = max(needed, self.rows + self.rows // 2)
        rows = -(-rows // EXPANSION_CHUNK) * EXPANSION_CHUNK
        self._pending = np.concatenate([self._pending, np.zeros(rows - self.rows, dtype=bool)])
        self.rows = rows

    def locate(self, keys: np.ndarray, insert: Union[bool, np.ndarray], lookup_id: int = 0) -> Placement:
        """See :meth:`mx_rec.storage.base.RowStore.locate`; ``insert`` may be a bool [U] mask of the keys
        allowed in (admitted), the others keep row -1 unless they already have one.

        Raises:
            RuntimeError: the table is full; names the table and the size to set. Nothing changes.
        """
        if isinstance(insert, np.ndarray):
            rows = self.index.lookup(keys)
            admit = (rows < 0) & insert
            if admit.any():
                rows[admit] = self.locate(keys[admit], True).rows
        elif insert:
            try:
                rows, new_positions = self.index.lookup_or_insert(keys)
            except TableFullError as err:
                raise RuntimeError(
                    f"table '{self.table_name}' is full: {err}. Set device_vocabulary_size to at least the number "
                    f"of distinct keys the shard will hold (now {self.index.capacity}), or enable dynamic "
                    "expansion") from None
            self._grow_to_fit()
            self._pending[rows[new_positions]] = True
        else:
            rows = self.index.lookup(keys)
        to_write = self._pending[np.maximum(rows, 0)] & (rows >= 0)
        write_values = initial_rows(self.init, keys[to_write], self.dim, self.value_dtype)
        return Placement(rows, rows[to_write], write_values)

    def remove(self, keys: np.ndarray) -> np.ndarray:
        """Drop keys int64 [E]; returns the freed rows int64 [R] (reused by later keys)."""
        freed = self.index.remove(keys)
        self._pending[freed] = False
        return freed

    def load_keys(self, keys: np.ndarray) -> np.ndarray:
        """Insert distinct keys whose rows the caller writes itself (restore); returns rows int64 [K]."""
        try:
            rows, _ = self.index.lookup_or_insert(keys)
        except TableFullError as err:
            raise RuntimeError(f"table '{self.table_name}' cannot hold the checkpoint's keys: {err}; "
                               "set device_vocabulary_size accordingly") from None
        self._grow_to_fit()
        return rows

    def clear(self) -> None:
        """Drop every key."""
        self.index.clear()
        self._pending[:] = False

    def confirm_written(self, rows: np.ndarray) -> None:
        """Mark rows int64 [M] as holding their initial values on the device."""
        self._pending[rows] = False

    def size(self) -> int:
        return len(self.index)

    def capacity(self) -> int:
        """Rows reserved for keys (grows with expansion)."""
        return self.rows

    def items(self) -> Tuple[np.ndarray, np.ndarray]:
        return self.index.items()
