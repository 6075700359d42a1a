"""Door kept for Rec SDK scripts: ``from mx_rec.util.communication import hccl_ops``.

Rank queries and collectives over Horovod (one process: identities). HCCL's extra keywords
(``fusion``, ``fusion_id``, ``group``) are accepted; they choose NPU fusion buffers and HCCL
groups, so they have no effect here (there is one group: all ranks).
"""
from typing import Optional

import tensorflow as tf

from mx_rec.communication import collectives
from mx_rec.communication.collectives import (  # noqa: F401
    all_to_all_v,
    get_local_rank_size,
    get_rank_id,
    get_rank_size,
)

HCCL_WORLD_GROUP = "hccl_world_group"


def _check_group(group: str, what: str) -> None:
    if group != HCCL_WORLD_GROUP:
        raise ValueError(f"{what}: only the world group {HCCL_WORLD_GROUP!r} exists here, got {group!r}")


def allreduce(tensor: tf.Tensor, reduction: str = "sum", fusion: int = 1, fusion_id: int = -1,
              group: str = HCCL_WORLD_GROUP, name: Optional[str] = None) -> tf.Tensor:
    """Combine ``tensor`` over ranks with ``reduction`` ("sum", "mean", "max" or "min")."""
    _check_group(group, "allreduce")
    return collectives.allreduce(tensor, reduction, name=name)


def allgather(tensor: tf.Tensor, rank_size: Optional[int] = None, group: str = HCCL_WORLD_GROUP,
              name: Optional[str] = None) -> tf.Tensor:
    """Concatenate every rank's ``tensor`` [R_i, ...] along axis 0, in rank order."""
    _check_group(group, "allgather")
    if rank_size is not None and rank_size != collectives.get_rank_size():
        raise ValueError(f"allgather: rank_size={rank_size} but the job has {collectives.get_rank_size()} ranks")
    return collectives.allgather(tensor, name=name)


def broadcast(tensor: tf.Tensor, root_rank: int = 0, fusion: int = 0, fusion_id: int = -1,
              group: str = HCCL_WORLD_GROUP, name: Optional[str] = None) -> tf.Tensor:
    """Value of ``tensor`` on ``root_rank``, on every rank."""
    _check_group(group, "broadcast")
    return collectives.broadcast(tensor, root_rank, name=name)
