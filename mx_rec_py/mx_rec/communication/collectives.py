"""Collective operations used by the SDK, with single-process semantics.

Every function keeps the signature of its multi-rank counterpart so that the lookup and
optimizer code does not change when ranks are added: with one rank, an all-reduce, an
all-to-all and a broadcast all return their input.
"""
from typing import Optional, Tuple

import tensorflow as tf


def get_rank_id() -> int:
    """This process's rank (int, 0-based)."""
    return 0


def get_rank_size() -> int:
    """Number of ranks in the job (int)."""
    return 1


def get_local_rank_size() -> int:
    """Number of ranks on this host (int)."""
    return 1


def allreduce(tensor: tf.Tensor, reduction: str = "sum") -> tf.Tensor:
    """Combine ``tensor`` over ranks with ``reduction`` ("sum", "mean", "max" or "min")."""
    if reduction not in ("sum", "mean", "max", "min"):
        raise ValueError(f"allreduce: reduction must be one of sum, mean, max, min, got {reduction!r}")
    return tf.identity(tensor)


def all_to_all_v(tensor: tf.Tensor, send_counts: Optional[tf.Tensor] = None) -> Tuple[tf.Tensor, tf.Tensor]:
    """Send row blocks of ``tensor`` [R, ...] to ranks by ``send_counts`` int32 [rank_size].

    Returns:
        (received rows [R', ...], receive counts int32 [rank_size]).
    """
    if send_counts is None:
        send_counts = tf.reshape(tf.shape(tensor, out_type=tf.int32)[0], [1])
    return tf.identity(tensor), tf.identity(send_counts)


def broadcast(tensor: tf.Tensor, root_rank: int = 0) -> tf.Tensor:
    """Value of ``tensor`` on ``root_rank``, on every rank."""
    if root_rank != 0:
        raise ValueError(f"broadcast: root_rank {root_rank} does not exist in a 1-rank job")
    return tf.identity(tensor)
