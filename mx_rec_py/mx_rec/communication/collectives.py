"""Collective operations between ranks: Horovod when launched by ``horovodrun``, else one process.

``start()`` (called by ``init()``) picks the backend. With one rank an all-reduce, an all-to-all
and a broadcast return their input, so the lookup and optimizer code is the same either way.
All functions build graph ops; their gradients are Horovod's (all-to-all's gradient is the
reverse all-to-all, all-reduce's is an all-reduce). The custom gradients that lookups put on
exchanged rows live here too, beside the op they call: ``allreduce_gradient`` (identity forward,
all-reduce backward) and ``scale_gradient`` (identity forward, a rank-count scale backward).
"""
import os
from typing import Optional, Tuple

import tensorflow as tf

_hvd = None
_REDUCTIONS = ("sum", "mean", "max", "min")


def launched_by_horovod() -> bool:
    """True when this process was started by ``horovodrun`` (its rank variables are set)."""
    return "HOROVOD_RANK" in os.environ and "HOROVOD_SIZE" in os.environ


def start() -> None:
    """Initialise Horovod if this process is one of a ``horovodrun`` job (idempotent)."""
    global _hvd
    if _hvd is None and launched_by_horovod():
        import horovod.tensorflow as hvd  # imported only for multi-rank jobs: it loads Horovod's native library
        hvd.init()
        _hvd = hvd


def _launched(name: str, alone: int) -> int:
    """``horovodrun``'s rank variable ``name`` before Horovod starts (``alone`` outside ``horovodrun``)."""
    return int(os.environ[name]) if launched_by_horovod() and os.environ.get(name, "").isdigit() else alone


def get_rank_id() -> int:
    """This process's rank (int, 0-based); before ``init()`` the one ``horovodrun`` gave it."""
    return _hvd.rank() if _hvd else _launched("HOROVOD_RANK", 0)


def get_rank_size() -> int:
    """Number of ranks in the job (int)."""
    return _hvd.size() if _hvd else _launched("HOROVOD_SIZE", 1)


def get_local_rank_id() -> int:
    """This process's rank among the ranks on its host (int, 0-based)."""
    return _hvd.local_rank() if _hvd else _launched("HOROVOD_LOCAL_RANK", 0)


def get_local_rank_size() -> int:
    """Number of ranks on this host (int)."""
    return _hvd.local_size() if _hvd else _launched("HOROVOD_LOCAL_SIZE", 1)


def allreduce(tensor: tf.Tensor, reduction: str = "sum", name: Optional[str] = None) -> tf.Tensor:
    """Combine ``tensor`` over ranks with ``reduction`` ("sum", "mean", "max" or "min")."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"allreduce: reduction must be one of {', '.join(_REDUCTIONS)}, got {reduction!r}")
    if not _hvd:
        return tf.identity(tensor)
    op = {"sum": _hvd.Sum, "mean": _hvd.Average, "max": _hvd.Max, "min": _hvd.Min}[reduction]
    return _hvd.allreduce(tensor, op=op, name=name)


def allreduce_gradient(x: tf.Tensor, reduction: str) -> tf.Tensor:
    """Identity forward; the gradient is combined over ranks with ``reduction`` backward (the rows of a
    table replicated on every rank)."""
    @tf.custom_gradient
    def identity(value):
        return tf.identity(value), lambda dy: allreduce(tf.convert_to_tensor(dy), reduction)
    return identity(x)


def scale_gradient(x: tf.Tensor, scale: float) -> tf.Tensor:
    """Identity forward; the gradient (dense or IndexedSlices) times ``scale`` backward."""
    def scaled(dy):
        if isinstance(dy, tf.IndexedSlices):
            return tf.IndexedSlices(dy.values * scale, dy.indices, dy.dense_shape)
        return dy * scale

    @tf.custom_gradient
    def identity(value):
        return tf.identity(value), scaled
    return identity(x)


def all_to_all_v(tensor: tf.Tensor, send_counts: Optional[tf.Tensor] = None,
                 name: Optional[str] = None) -> Tuple[tf.Tensor, tf.Tensor]:
    """Send row blocks of ``tensor`` [R, ...] to ranks by ``send_counts`` int32 [rank_size].

    Returns:
        (received rows [R', ...] ordered by source rank, receive counts int32 [rank_size]).
    """
    if send_counts is None:
        send_counts = tf.reshape(tf.shape(tensor, out_type=tf.int32)[0], [1])
    if not _hvd:
        return tf.identity(tensor), tf.identity(send_counts)
    return _hvd.alltoall(tensor, splits=send_counts, name=name)


def allgather(tensor: tf.Tensor, name: Optional[str] = None) -> tf.Tensor:
    """Concatenate every rank's ``tensor`` [R_i, ...] along axis 0, in rank order."""
    return _hvd.allgather(tensor, name=name) if _hvd else tf.identity(tensor)


def broadcast(tensor: tf.Tensor, root_rank: int = 0, name: Optional[str] = None) -> tf.Tensor:
    """Value of ``tensor`` on ``root_rank``, on every rank."""
    if not 0 <= root_rank < get_rank_size():
        raise ValueError(f"broadcast: root_rank {root_rank} does not exist in a {get_rank_size()}-rank job")
    return _hvd.broadcast(tensor, root_rank, name=name) if _hvd else tf.identity(tensor)
