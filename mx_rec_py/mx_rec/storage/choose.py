"""Which backend a table gets, decided once when the table is created."""
from typing import Optional, Sequence

import tensorflow as tf

from mx_rec.storage.backend import Backend
from mx_rec.storage.device_backend import DeviceBackend
from mx_rec.storage.initial_rows import InitSpec
from mx_rec.storage.tiered_backend import TieredBackend


def choose_backend(table_name: str, dim: int, value_dtype: tf.DType, init: InitSpec, device_rows: int,
                   host_rows: int = 0, ssd_rows: int = 0, ssd_paths: Optional[Sequence[str]] = None,
                   rank: int = 0, expandable: bool = False, storage_dtype: Optional[tf.DType] = None) -> Backend:
    """The backend of one shard: tiered (DDR, and SSD when ``ssd_rows``) when ``host_rows`` > 0, else
    the device alone (``expandable``: dynamic expansion). Row counts are this shard's. ``storage_dtype``:
    the device variable's dtype when it is not value_dtype (float16 / bfloat16; the device backend only:
    ``tables.config`` refuses it with host_vocabulary_size).

    Example:
        >>> backend = choose_backend("user", 16, tf.float32, spec, device_rows=800, host_rows=8000)  # doctest: +SKIP
    """
    if host_rows > 0:
        return TieredBackend(table_name, dim, value_dtype, init, device_rows, host_rows, ssd_rows, ssd_paths, rank)
    return DeviceBackend(table_name, dim, value_dtype, init, device_rows, expandable, storage_dtype)
