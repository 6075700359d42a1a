"""A merged table of a local model: sorted keys and their rows, in memory or memory-mapped.

    <model>/tables/<table>/keys.npy   int64 [K], sorted, distinct
    <model>/tables/<table>/rows.npy   value dtype (float32) [K, dim]

Lookups binary-search the keys (``np.searchsorted``), so a memory-mapped table reads only the
pages its keys fall on. Key -1 is padding and gives zeros; a key without a row gives the lookup's
default (``serving_default_value``, else zeros), as ``sparse_lookup(is_train=False)`` does.
"""
from typing import Optional, Sequence

import numpy as np

from mx_rec.system import files as fs

PADDING_KEY = -1


class MergedTable:
    """One table of an exported model.

    Args:
        directory: the table's folder (``keys.npy``, ``rows.npy``), on any filesystem TF has.
        mmap: True maps both files read-only instead of loading them (local files only: others are loaded).
    """

    def __init__(self, directory: str, mmap: bool = False) -> None:
        self.keys = _load(fs.join(directory, "keys.npy"), mmap)
        self.rows = _load(fs.join(directory, "rows.npy"), mmap)
        self.dim = int(self.rows.shape[1])

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def lookup(self, ids: np.ndarray, dim: Optional[int] = None, default: Optional[Sequence[float]] = None,
               padding_keys: Sequence[int] = ()) -> np.ndarray:
        """Rows of ``ids`` (integers, any shape S): value dtype S + [dim].

        Args:
            dim: leading columns to return (default: the table's width).
            default: [dim] values for keys without a row (None: zeros). Padding (-1) is always zeros.
            padding_keys: the table's masked padding keys, zeros too (as in training).
        """
        dim = self.dim if dim is None else int(dim)
        flat = np.asarray(ids).reshape(-1).astype(np.int64, copy=False)
        out = np.zeros((flat.shape[0], dim), dtype=self.rows.dtype)
        if default is not None:
            out[:] = np.asarray(default, dtype=self.rows.dtype)
        if len(self):
            pos = np.minimum(np.searchsorted(self.keys, flat), len(self) - 1)
            found = np.asarray(self.keys[pos]) == flat
            if found.any():
                hit = pos[found]
                order = np.argsort(hit, kind="stable")  # ascending reads: sequential pages of a mapped file
                values = np.empty((hit.shape[0], dim), dtype=self.rows.dtype)
                values[order] = self.rows[hit[order], :dim]
                out[found] = values
        out[flat == PADDING_KEY] = 0
        if len(padding_keys):
            out[np.isin(flat, np.asarray(padding_keys, dtype=np.int64))] = 0
        return out.reshape(tuple(np.shape(ids)) + (dim,))


def _load(path: str, mmap: bool) -> np.ndarray:
    if fs.is_local(path):
        return np.load(path, mmap_mode="r" if mmap else None)
    with fs.open_read(path) as f:
        return np.load(f, allow_pickle=False)
