"""One table of a SavedModel: sorted keys and their rows in two ``tf.Variable``s, looked up with stock ops.

    keys  int64 [K], sorted, distinct     (the SavedModel's ``variables/``, not the graph proto)
    rows  float32 or float16 [K, dim]

A lookup is ``searchsorted`` (binary search) + ``gather`` + ``where``: exactly what
``MergedTable.lookup`` computes with numpy, i.e. ``sparse_lookup(is_train=False)``: ``-1`` (and
the table's masked padding keys) give zeros, a key without a row gives the lookup's
``serving_default_value`` (zeros when unset). float16 rows are cast to the lookup's dtype.

The variables are declared with an unknown leading dimension, so a SavedModel can be written with
stand-in values and its ``variables/`` files filled key range by key range afterwards
(``variables_bundle.py``): the loader takes the row count from the files.
"""
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

PADDING_KEY = -1
_INT32_MAX = 2**31 - 1


class ServingTable(tf.Module):
    """Keys and rows of one merged table.

    Args:
        name: the table's name (messages, op names). dim: row width. size: keys K the exported files
            hold (the variables get their values from ``variables/`` at load). row_dtype: float32 or float16.
    """

    def __init__(self, name: str, dim: int, size: int, row_dtype: tf.DType = tf.float32) -> None:
        super().__init__(name=None)
        self.table_name, self.dim, self.size = name, int(dim), int(size)
        self.keys = tf.Variable(tf.zeros([1], tf.int64), shape=tf.TensorShape([None]), trainable=False,
                                name="keys")
        self.rows = tf.Variable(tf.zeros([1, self.dim], row_dtype), shape=tf.TensorShape([None, self.dim]),
                                trainable=False, name="rows")

    def lookup(self, ids: tf.Tensor, dim: Optional[int] = None, default: Optional[Sequence[float]] = None,
               padding_keys: Sequence[int] = (), dtype: tf.DType = tf.float32) -> tf.Tensor:
        """Rows of ``ids`` (any integer dtype and shape S): ``dtype`` S + [dim].

        Args:
            dim: leading columns to return (default: the table's width).
            default: [dim] values for keys without a row (None: zeros). padding_keys: more keys that read zeros.
        """
        dim = self.dim if dim is None else int(dim)
        flat = tf.reshape(tf.cast(ids, tf.int64), [-1])
        default_row = tf.constant(np.zeros([1, dim]) if default is None else np.asarray(default).reshape(1, dim),
                                  dtype=dtype)
        if self.size == 0:
            out = tf.tile(default_row, tf.stack([tf.size(flat), 1]))
        else:
            keys = self.keys.read_value()
            index_dtype = tf.int32 if self.size < _INT32_MAX else tf.int64
            pos = tf.minimum(tf.searchsorted(keys, flat, out_type=index_dtype), self.size - 1)
            found = tf.equal(tf.gather(keys, pos), flat)
            rows = tf.gather(self.rows, pos)
            if dim != self.dim:
                rows = rows[:, :dim]
            out = tf.where(found[:, None], tf.cast(rows, dtype), default_row)
        padding = tf.equal(flat, PADDING_KEY)
        if len(padding_keys):
            masked = tf.constant(np.asarray(padding_keys, np.int64))
            padding = tf.logical_or(padding, tf.reduce_any(tf.equal(flat[:, None], masked[None, :]), axis=1))
        out = tf.where(padding[:, None], tf.zeros([1, dim], dtype), out)
        return tf.reshape(out, tf.concat([tf.shape(ids), [dim]], axis=0))
