"""Door kept for Rec SDK scripts: ``import_host_pipeline_ops()`` (timestamps, admission threshold)."""
from types import SimpleNamespace
from typing import Union

import tensorflow as tf

from mx_rec.config.initializer import ConfigInitializer
from mx_rec.constants.constants import ASCEND_TIMESTAMP


def return_timestamp(timestamp: tf.Tensor) -> tf.Tensor:
    """Register a batch's timestamp tensor (int seconds, any shape) for eviction; returns it unchanged."""
    timestamp = tf.convert_to_tensor(timestamp)
    if not timestamp.dtype.is_integer:
        raise TypeError(f"return_timestamp: timestamps must be integer seconds, got {timestamp.dtype.name}")
    tf.compat.v1.add_to_collection(ASCEND_TIMESTAMP, timestamp)
    return timestamp


def set_threshold(table: Union[str, object], threshold: int) -> None:
    """Change a table's admission threshold now (host side; takes effect from the next batch)."""
    tables = ConfigInitializer.get_instance().tables
    name = table if isinstance(table, str) else getattr(table, "table_name", None)
    if name not in tables:
        raise ValueError(f"set_threshold: no table named {name!r}; tables: {sorted(tables)}")
    tables[name].set_threshold(threshold)


def import_host_pipeline_ops() -> SimpleNamespace:
    """The host pipeline operations Rec SDK scripts call: ``return_timestamp``, ``set_threshold``."""
    return SimpleNamespace(return_timestamp=return_timestamp, set_threshold=set_threshold)
