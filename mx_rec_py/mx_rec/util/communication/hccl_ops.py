"""Door kept for Rec SDK scripts: ``from mx_rec.util.communication import hccl_ops``."""
from mx_rec.communication.collectives import (  # noqa: F401
    all_to_all_v,
    allgather,
    allreduce,
    broadcast,
    get_local_rank_size,
    get_rank_id,
    get_rank_size,
)
