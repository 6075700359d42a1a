"""The host-pipeline operations Rec SDK loads from its op libraries, as TF graph ops here.

Rec SDK's ``import_host_pipeline_ops(LIBASC_OPS_SO)`` (or ``LIBREC_EOS_OPS_SO``,
``LIBREC_TF_REC_V1_CPU_SO``) loads a native library of host ops. There is no library to load here:
each name gets the same :class:`HostPipelineOps`, whose ops do the CPU/GPU equivalent:

- ``return_timestamp(t)``: registers a batch's timestamps for eviction, returns them.
- ``set_threshold(threshold_tensor, emb_name=[...], ids_name=[...])``: a graph op; running it sets
  the admission threshold of the named tables (from the next batch on). The immediate form
  ``set_threshold(table, threshold)`` stays.
- ``clear_channel(channel_id)``: Rec SDK empties a host-to-device data channel; here batches are not
  queued on a device, so the op does nothing (logged once).

``dataset.eos_map(librec, channel_id, max_train_steps=-1, max_eval_steps=-1)`` is added to
``tf.data`` datasets by ``init()`` (:func:`install`), not at import.
"""
import os
from typing import Any, Iterable, List, Optional, Sequence, Union

import tensorflow as tf

from mx_rec.config.initializer import ConfigInitializer
from mx_rec.constants.constants import (ASCEND_TIMESTAMP, EVAL_CHANNEL_ID, LIBASC_OPS_SO, OP_LIBRARY_NAMES,
                                        TRAIN_CHANNEL_ID)
from mx_rec.system.log import log_once, logger

_CHANNELS = (TRAIN_CHANNEL_ID, EVAL_CHANNEL_ID)


def return_timestamp(timestamp: tf.Tensor) -> tf.Tensor:
    """Register a batch's timestamp tensor (int seconds, any shape) for eviction; returns it unchanged."""
    timestamp = tf.convert_to_tensor(timestamp)
    if not timestamp.dtype.is_integer:
        raise TypeError(f"return_timestamp: timestamps must be integer seconds, got {timestamp.dtype.name}")
    tf.compat.v1.add_to_collection(ASCEND_TIMESTAMP, timestamp)
    return timestamp


def _table(name: Union[str, object], what: str):
    tables = ConfigInitializer.get_instance().tables
    key = name if isinstance(name, str) else getattr(name, "table_name", None)
    if key not in tables:
        raise ValueError(f"{what}: no table named {key!r}; tables: {sorted(tables)}")
    return tables[key]


def _names(emb_name: Union[str, Sequence[str], None]) -> List[str]:
    if emb_name is None:
        raise ValueError("set_threshold: emb_name (the tables whose admission threshold changes) is required")
    names = [emb_name] if isinstance(emb_name, str) else list(emb_name)
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"set_threshold: emb_name must be a table name or a non-empty list of them, got {emb_name!r}")
    return names


def set_threshold_now(table: Union[str, object], threshold: int) -> None:
    """Change a table's admission threshold now (host side; takes effect from the next batch)."""
    _table(table, "set_threshold").set_threshold(threshold)


def set_threshold_op(threshold: Any, emb_name: Union[str, Sequence[str], None] = None,
                     ids_name: Optional[Iterable[str]] = None, name: str = "set_threshold") -> tf.Tensor:
    """A graph op that, when run, sets the admission threshold of tables ``emb_name``.

    Args:
        threshold: int scalar (tensor or number): the count at which a key is admitted. 0 keeps each
            table's threshold (Rec SDK's "stop accumulating" mode; counts still accumulate here).
        emb_name: table name(s).
        ids_name: accepted for Rec SDK compatibility; unused there too.

    Returns:
        int64 scalar tensor: the threshold given (run it, or depend on it, to apply the change).

    Example:
        >>> op = import_host_pipeline_ops().set_threshold(tf.constant(3), emb_name=["user"])  # doctest: +SKIP
        >>> sess.run(op)                                                                     # doctest: +SKIP

    Raises:
        ValueError: no such table (when the op is built), or the table has no admission (when it runs).
        TypeError: ``threshold`` is not an integer scalar.
    """
    del ids_name
    names = _names(emb_name)
    for table_name in names:
        _table(table_name, "set_threshold")
    value = tf.convert_to_tensor(threshold)
    if not value.dtype.is_integer or value.shape.rank not in (None, 0):
        raise TypeError(f"set_threshold: the threshold must be an integer scalar, got {value.dtype.name} "
                        f"of shape {value.shape}")

    def _apply(raw) -> Any:
        new = int(raw)
        if new == 0:
            log_once("set_threshold_0", "set_threshold(0) on %s: thresholds kept (Rec SDK's non-accumulating "
                      "mode is not built; counts still accumulate here)", names)
            return raw
        for table_name in names:
            _table(table_name, "set_threshold").set_threshold(new)
        return raw

    out = tf.numpy_function(_apply, [tf.cast(value, tf.int64)], tf.int64, stateful=True, name=name)
    out.set_shape([])
    return out


def set_threshold(*args: Any, **kwargs: Any) -> Optional[tf.Tensor]:
    """``set_threshold(threshold_tensor, emb_name=..., ids_name=...)`` builds the graph op
    (:func:`set_threshold_op`); ``set_threshold(table, threshold)`` changes it now (:func:`set_threshold_now`)."""
    if args and (isinstance(args[0], str) or hasattr(args[0], "table_name")) and "emb_name" not in kwargs:
        return set_threshold_now(*args, **kwargs)
    return set_threshold_op(*args, **kwargs)


def check_channel(channel_id: Any, what: str) -> int:
    """``channel_id`` as an int 0 (training) or 1 (evaluation).

    Raises:
        ValueError: anything else, naming ``what``.
    """
    if isinstance(channel_id, bool) or channel_id not in _CHANNELS:
        raise ValueError(f"{what}: channel_id must be {TRAIN_CHANNEL_ID} (training) or {EVAL_CHANNEL_ID} "
                         f"(evaluation), got {channel_id!r}")
    return int(channel_id)


def clear_channel(channel_id: int) -> tf.Operation:
    """Rec SDK empties a host-to-device data channel; here nothing is queued on a device: a no-op op."""
    channel = check_channel(channel_id, "clear_channel")
    log_once("clear_channel", "clear_channel: mx_rec queues no batches on a device; it has no effect here")
    return tf.no_op(name=f"clear_channel_{channel}")


class HostPipelineOps:
    """What ``import_host_pipeline_ops`` returns: the host ops, whatever library was named.

    Attributes:
        so_pkg_name: the library name the script asked for.
    """

    def __init__(self, so_pkg_name: str) -> None:
        self.so_pkg_name = so_pkg_name

    return_timestamp = staticmethod(return_timestamp)
    set_threshold = staticmethod(set_threshold)
    clear_channel = staticmethod(clear_channel)

    def __repr__(self) -> str:
        return f"HostPipelineOps({self.so_pkg_name!r})"


def import_host_pipeline_ops(so_pkg_name: str = LIBASC_OPS_SO) -> HostPipelineOps:
    """The host pipeline ops of library ``so_pkg_name`` (a name of ``OP_LIBRARY_NAMES`` or a path ending in one).

    Raises:
        RuntimeError: an unknown library (as Rec SDK does when it cannot load one).
    """
    if not isinstance(so_pkg_name, str) or not 1 <= len(so_pkg_name) <= 100:
        raise RuntimeError(f"import_host_pipeline_ops: so_pkg_name must be a string of 1 to 100 characters, "
                           f"got {so_pkg_name!r}")
    if os.path.basename(so_pkg_name) not in OP_LIBRARY_NAMES:
        raise RuntimeError(f"import_host_pipeline_ops: unknown op library {so_pkg_name!r}; "
                           f"mx_rec provides {', '.join(OP_LIBRARY_NAMES)}")
    log_once(f"so:{so_pkg_name}", "import_host_pipeline_ops(%r): no native library is loaded here; "
              "the ops are mx_rec's TF ops", so_pkg_name)
    return HostPipelineOps(so_pkg_name)


def eos_map(dataset: tf.data.Dataset, librec: Any, channel_id: int, max_train_steps: int = -1,
            max_eval_steps: int = -1) -> tf.data.Dataset:
    """Rec SDK's end-of-sequence marking of a channel's dataset, the CPU/GPU equivalent.

    On an NPU it tells the device loop where the data ends. Here the session sees the dataset's end
    itself; what remains is the step limit: the training channel (0) yields at most
    ``max_train_steps`` batches, the evaluation channel (1) at most ``max_eval_steps`` (-1: all).

    Raises:
        ValueError: a channel other than 0 / 1, or a step limit that is not an int >= -1 (0 excluded).
    """
    channel = check_channel(channel_id, "eos_map")
    for name, value in (("max_train_steps", max_train_steps), ("max_eval_steps", max_eval_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < -1 or value == 0:
            raise ValueError(f"eos_map: {name} must be -1 (no limit) or a positive int, got {value!r}")
    if not isinstance(librec, HostPipelineOps):
        logger.warning("eos_map: librec is %r, not the object import_host_pipeline_ops returns", librec)
    log_once("eos_map", "eos_map: end-of-sequence marking is NPU-only; here it only applies the step limits")
    limit = max_train_steps if channel == TRAIN_CHANNEL_ID else max_eval_steps
    return dataset.take(limit) if limit > 0 else dataset


_patched: List[type] = []


def _dataset_classes() -> List[type]:
    classes = [tf.data.Dataset, tf.compat.v1.data.Dataset]
    return list(dict.fromkeys(classes))


def install() -> None:
    """Add ``eos_map`` to the ``tf.data`` dataset classes (idempotent; called by ``init()``)."""
    if _patched:
        return
    for cls in _dataset_classes():
        if "eos_map" not in cls.__dict__:
            cls.eos_map = eos_map
            _patched.append(cls)


def uninstall() -> None:
    """Remove what :func:`install` added."""
    for cls in _patched:
        if cls.__dict__.get("eos_map") is eos_map:
            del cls.eos_map
    _patched.clear()
