"""The interface between key processing and a table's storage tiers."""
from dataclasses import dataclass
from typing import Protocol, Tuple

import numpy as np


@dataclass
class Placement:
    """Where a batch's distinct keys live on the device, and what must be written first.

    Attributes:
        rows: int64 [U]; the device row of each key, -1 where the key has no row
            (absent at evaluation, or not admitted).
        write_rows: int64 [M]; device rows to overwrite before the gather; the graph reports
            them back through ``RowStore.confirm_written`` once written.
        write_values: float [M, dim]; their new contents (initial values of new keys, or rows
            swapped in from a lower tier). Writing them twice is harmless.
    """

    rows: np.ndarray
    write_rows: np.ndarray
    write_values: np.ndarray


class RowStore(Protocol):
    """A table shard's storage; ``locate`` is called once per lookup with the distinct keys."""

    def locate(self, keys: np.ndarray, insert) -> Placement:
        """Place int64 [U] distinct keys on the device, inserting new ones when ``insert``
        (a bool, or a bool [U] mask of the keys admitted)."""

    def remove(self, keys: np.ndarray) -> np.ndarray:
        """Drop keys from every tier; returns the freed device rows."""

    def confirm_written(self, rows: np.ndarray) -> None:
        """Rows int64 [M] of a ``Placement.write_rows`` have been written on the device."""

    def size(self) -> int:
        """Keys held, in every tier."""

    def capacity(self) -> int:
        """Keys that can be held without growing."""

    @property
    def padding_row(self) -> int:
        """A device row no key owns (the last one), kept as scratch."""

    def items(self) -> Tuple[np.ndarray, np.ndarray]:
        """(keys int64 [K], device-or-tier rows int64 [K])."""
