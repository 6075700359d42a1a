"""The row store of a table shard as key processing sees it: where a batch's keys live on the device."""
from dataclasses import dataclass, field
from typing import Protocol, Tuple, Union

import numpy as np


def _no_rows() -> np.ndarray:
    return np.empty(0, np.int64)


@dataclass
class SwapOut:
    """Device rows a placement moves down to the host (DDR/SSD), with what the host needs to take
    them back; the graph reads the rows and hands both to ``TieredStore.accept_swapped_out``.

    Attributes:
        rows: int64 [V]; device rows whose contents (and slots) leave before the writes.
        keys: int64 [V]; their keys. freq: int64 [V]; their access counts.
        host_slots: int64 [V]; the host slot each key kept while on the device, -1 for none.
    """

    rows: np.ndarray = field(default_factory=_no_rows)
    keys: np.ndarray = field(default_factory=_no_rows)
    freq: np.ndarray = field(default_factory=_no_rows)
    host_slots: np.ndarray = field(default_factory=_no_rows)


@dataclass
class Placement:
    """Where a batch's distinct keys live on the device, and what must be written first.

    Attributes:
        rows: int64 [U]; the device row of each key, -1 where the key has no row
            (absent at evaluation, or not admitted).
        write_rows: int64 [M]; device rows to overwrite before the gather; the graph reports
            them back through ``RowStore.confirm_written`` once written.
        write_values: float [M, dim]; their new contents (initial values of new keys, or rows
            swapped in from a lower tier: then [parts, M, dim]). Writing them twice is harmless.
        swap_out: the rows leaving the device first (DDR/SSD; empty otherwise).
    """

    rows: np.ndarray
    write_rows: np.ndarray
    write_values: np.ndarray
    swap_out: SwapOut = field(default_factory=SwapOut)


class RowStore(Protocol):
    """A table shard's keys -> device rows (``DeviceStore``, ``TieredStore``); ``locate`` is called
    once per lookup with the distinct keys."""

    def locate(self, keys: np.ndarray, insert: Union[bool, np.ndarray], lookup_id: int = 0) -> Placement:
        """Place int64 [U] distinct keys on the device, inserting new ones when ``insert``
        (a bool, or a bool [U] mask of the keys admitted); ``lookup_id`` names the lookup."""

    def remove(self, keys: np.ndarray) -> np.ndarray:
        """Drop keys from every tier; returns the freed device rows."""

    def confirm_written(self, rows: np.ndarray) -> None:
        """Rows int64 [M] of a ``Placement.write_rows`` have been written on the device."""

    def clear(self) -> None:
        """Drop every key."""

    def size(self) -> int:
        """Keys held, in every tier."""

    def capacity(self) -> int:
        """Keys that can be held without growing."""

    @property
    def padding_row(self) -> int:
        """A device row no key owns (the last one), kept as scratch."""

    def items(self) -> Tuple[np.ndarray, np.ndarray]:
        """(keys int64 [K], device rows int64 [K]) of the keys on the device."""
