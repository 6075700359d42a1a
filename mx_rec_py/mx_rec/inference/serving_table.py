"""One table of a SavedModel: sorted keys and their rows in two ``tf.Variable``s, looked up with stock ops.

    keys  int64 [K], sorted, distinct     (the SavedModel's ``variables/``, not the graph proto)
    rows  float32 or float16 [K + 1 + D, dim]: the keys' rows, a zero row, the D lookup defaults

A lookup is ``searchsorted`` (binary search) + ``where`` on the indices + one ``gather``: exactly what
``MergedTable.lookup`` computes with numpy, i.e. ``sparse_lookup(is_train=False)``: ``-1`` (and
the table's masked padding keys) give zeros, a key without a row gives the lookup's
``serving_default_value`` (zeros when unset). float16 rows are cast to the lookup's dtype.

The variables are declared with an unknown leading dimension, so a SavedModel can be written with
stand-in values and its ``variables/`` files filled key range by key range afterwards
(``variables_bundle.py``): the loader takes the row count from the files.
"""
from typing import List, Optional, Sequence

import numpy as np
import tensorflow as tf

PADDING_KEY = -1
_INT32_MAX = 2**31 - 1


class ServingTable(tf.Module):
    """Keys and rows of one merged table, plus a zero row (padding) and one row per lookup default.

    Args:
        name: the table's name (messages, op names). dim: row width. size: keys K the exported files
            hold (the variables get their values from ``variables/`` at load). row_dtype: float32 or float16.
        defaults: the ``serving_default_value`` rows its lookups use (each [<= dim] floats; None: zeros).

    ``rows`` holds K + 1 + len(distinct defaults) rows: the table's, then :meth:`extra_rows`, so a
    lookup is one gather of computed indices (no select over the gathered rows).
    """

    def __init__(self, name: str, dim: int, size: int, row_dtype: tf.DType = tf.float32,
                 defaults: Sequence[Optional[Sequence[float]]] = ()) -> None:
        super().__init__(name=None)
        self.table_name, self.dim, self.size = name, int(dim), int(size)
        self._defaults: List[tuple] = []
        for default in defaults:
            row = self._full_row(default)
            if default is not None and row not in self._defaults:
                self._defaults.append(row)
        self.keys = tf.Variable(tf.zeros([1], tf.int64), shape=tf.TensorShape([None]), trainable=False,
                                name="keys")
        self.rows = tf.Variable(tf.zeros([1, self.dim], row_dtype), shape=tf.TensorShape([None, self.dim]),
                                trainable=False, name="rows")

    def _full_row(self, default: Optional[Sequence[float]]) -> tuple:
        values = np.zeros(self.dim, np.float64)
        if default is not None:
            given = np.asarray(default, np.float64).reshape(-1)
            values[:given.shape[0]] = given
        return tuple(values.tolist())

    def extra_rows(self) -> np.ndarray:
        """float64 [1 + defaults, dim]: the zero row (index K), then each distinct default (K + 1 + j)."""
        return np.array([self._full_row(None)] + self._defaults, np.float64).reshape(-1, self.dim)

    def lookup(self, ids: tf.Tensor, dim: Optional[int] = None, default: Optional[Sequence[float]] = None,
               padding_keys: Sequence[int] = (), dtype: tf.DType = tf.float32) -> tf.Tensor:
        """Rows of ``ids`` (any integer dtype and shape S): ``dtype`` S + [dim].

        Args:
            dim: leading columns to return (default: the table's width).
            default: [dim] values for keys without a row (None: zeros); one of the constructor's ``defaults``.
            padding_keys: more keys that read zeros.
        """
        dim = self.dim if dim is None else int(dim)
        flat = tf.reshape(tf.cast(ids, tf.int64), [-1])
        index_dtype = tf.int32 if self.size + 1 + len(self._defaults) < _INT32_MAX else tf.int64
        zero_index = self.size
        default_index = zero_index if default is None else self.size + 1 + self._defaults.index(self._full_row(default))
        if self.size == 0:
            index = tf.fill(tf.shape(flat), tf.constant(default_index, index_dtype))
        else:
            keys = self.keys.read_value()
            pos = tf.minimum(tf.searchsorted(keys, flat, out_type=index_dtype), self.size - 1)
            index = tf.where(tf.equal(tf.gather(keys, pos), flat), pos, tf.constant(default_index, index_dtype))
        padding = tf.equal(flat, PADDING_KEY)
        if len(padding_keys):
            masked = tf.constant(np.asarray(padding_keys, np.int64))
            padding = tf.logical_or(padding, tf.reduce_any(tf.equal(flat[:, None], masked[None, :]), axis=1))
        index = tf.where(padding, tf.constant(zero_index, index_dtype), index)
        out = tf.gather(self.rows, index)
        if dim != self.dim:
            out = out[:, :dim]
        if out.dtype != dtype:
            out = tf.cast(out, dtype)
        return tf.reshape(out, tf.concat([tf.shape(ids), [dim]], axis=0))
