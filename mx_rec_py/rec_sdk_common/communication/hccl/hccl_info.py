"""Door kept for Rec SDK scripts: ``from rec_sdk_common.communication.hccl.hccl_info import get_rank_id``.

The rank queries of the job, over Horovod (``horovodrun`` sets them per process; the launcher
also exports them as ``OMPI_COMM_WORLD_RANK`` / ``_SIZE`` / ``_LOCAL_RANK`` / ``_LOCAL_SIZE``, which
these values agree with). They work before ``init()`` too.

Example:
    >>> from rec_sdk_common.communication.hccl.hccl_info import get_rank_id, get_rank_size
    >>> get_rank_id(), get_rank_size()     # one process outside horovodrun
    (0, 1)
"""
from mx_rec.communication.collectives import get_local_rank_id, get_local_rank_size, get_rank_id, get_rank_size

__all__ = ["get_rank_id", "get_rank_size", "get_local_rank_id", "get_local_rank_size"]
