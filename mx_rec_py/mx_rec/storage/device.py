"""The device (HBM) tier alone: every key of the shard has a row in the device variable."""
from typing import Tuple

import numpy as np

from mx_rec.key_process.hash_index import HashIndex, TableFullError
from mx_rec.storage.base import Placement
from mx_rec.tables.initializers import InitSpec, initial_rows


class DeviceStore:
    """Keys -> rows of a fixed-size device variable.

    Args:
        table_name: for error messages.
        capacity: rows in the variable available to keys.
        dim: embedding width.
        init: the table's initializer; new keys get ``initial_rows(init, key)``.
        value_dtype: numpy dtype of the rows.
    """

    def __init__(self, table_name: str, capacity: int, dim: int, init: InitSpec, value_dtype=np.float32) -> None:
        self.table_name = table_name
        self.dim = dim
        self.init = init
        self.value_dtype = value_dtype
        self.index = HashIndex(capacity, initial_slots=min(2 * capacity, 1 << 16))

    def locate(self, keys: np.ndarray, insert: bool) -> Placement:
        """See :meth:`mx_rec.storage.base.RowStore.locate`.

        Raises:
            RuntimeError: the table is full; names the table and the size to set. Nothing changes.
        """
        if not insert:
            rows = self.index.lookup(keys)
            return Placement(rows, np.empty(0, np.int64), np.empty((0, self.dim), self.value_dtype))
        try:
            rows, new_positions = self.index.lookup_or_insert(keys)
        except TableFullError as err:
            raise RuntimeError(
                f"table '{self.table_name}' is full: {err}. Set device_vocabulary_size to at least the number "
                f"of distinct keys the shard will hold (now {self.index.capacity}), or enable dynamic expansion"
            ) from None
        new_values = initial_rows(self.init, keys[new_positions], self.dim, self.value_dtype)
        return Placement(rows, rows[new_positions], new_values)

    def size(self) -> int:
        return len(self.index)

    def capacity(self) -> int:
        return self.index.capacity

    def items(self) -> Tuple[np.ndarray, np.ndarray]:
        return self.index.items()
