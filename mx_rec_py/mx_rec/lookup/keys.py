"""Ids to table keys: unsigned ids, and a table's padding keys.

Unsigned ids (a documented rule, not a silent wrap): a table's keys are signed (int64 or int32).
Unsigned ids of the same width are read by their bits: uint64 id ``u`` is key ``u`` when
``u < 2**63`` and ``u - 2**64`` otherwise (likewise uint32 on an int32 table). The map is one to
one, so distinct ids stay distinct keys (hashed 64-bit ids keep every bit); the one id that
meets a special key is ``2**64 - 1`` (all bits set), which is ``-1``: padding. Narrower unsigned
ids (uint8/16, and uint32 on an int64 table) are cast, their values unchanged. uint64 ids on an
int32 table cannot be mapped one to one and are refused, naming the table. Exported models read
ids the same way (numpy's uint64 -> int64 conversion keeps the bits).

Padding keys: ``create_table(padding_keys=..., padding_keys_mask=True)`` makes those ids padding;
:func:`mask_padding_keys` turns them into -1 before anything else sees them, so every tier, rank
count, multi-lookup and modify-graph path treats them exactly as -1 (pure ops, which graph
modification can replay inside the input pipeline).
"""
from typing import Sequence

import numpy as np
import tensorflow as tf

from mx_rec.constants.constants import PADDING_KEY

_SIGNED = {8: tf.int8, 16: tf.int16, 32: tf.int32, 64: tf.int64}


def _width(dtype: tf.DType) -> int:
    return dtype.size * 8


def signed_ids(table_name: str, key_dtype: tf.DType, ids: tf.Tensor) -> tf.Tensor:
    """``ids`` as the table's key dtype when they are unsigned (see the module rule); others unchanged.

    Raises:
        TypeError: uint64 ids on an int32 table, naming the table.
    """
    if not ids.dtype.is_unsigned:
        return ids
    if _width(ids.dtype) < _width(key_dtype):
        return tf.cast(ids, key_dtype)
    if _width(ids.dtype) == _width(key_dtype):
        return tf.bitcast(ids, key_dtype)
    raise TypeError(f"sparse_lookup on table '{table_name}': {ids.dtype.name} ids do not fit the table's key_dtype "
                    f"{key_dtype.name} one to one; create the table with key_dtype=tf.int64")


def signed_array(table_name: str, key_dtype: tf.DType, array: np.ndarray) -> np.ndarray:
    """numpy counterpart of :func:`signed_ids` (ids given as a list or array)."""
    if not np.issubdtype(array.dtype, np.unsignedinteger):
        return array
    width = array.dtype.itemsize * 8
    if width < _width(key_dtype):
        return array.astype(key_dtype.as_numpy_dtype)
    if width == _width(key_dtype):
        return np.ascontiguousarray(array).view(key_dtype.as_numpy_dtype)
    raise TypeError(f"sparse_lookup on table '{table_name}': {array.dtype} ids do not fit the table's key_dtype "
                    f"{key_dtype.name} one to one; create the table with key_dtype=tf.int64")


def mask_padding_keys(keys: tf.Tensor, padding_keys: Sequence[int]) -> tf.Tensor:
    """int64 keys [N] with every id in ``padding_keys`` (sorted, distinct ints) replaced by -1."""
    if not padding_keys:
        return keys
    pads = tf.constant(np.asarray(padding_keys, dtype=np.int64), name="padding_keys")
    if len(padding_keys) == 1:
        hit = tf.equal(keys, pads[0])
    else:
        position = tf.minimum(tf.searchsorted(pads, keys), len(padding_keys) - 1)
        hit = tf.equal(tf.gather(pads, position), keys)
    return tf.where(hit, tf.constant(PADDING_KEY, tf.int64), keys)
