"""The job launcher behind ``run.sh`` (SPEC section 6), standard library only.

``bash run.sh SO_PATH PKG_PATH HCCL_JSON DATA_PATH [IP]`` runs ``python -m mx_rec.launch``,
which checks everything (arguments, rank table, feature switches, model) before any process
starts, prints the plan, then replaces itself with ``horovodrun --gloo``.

Rooms:
    rank_table  HCCL rank tables (versions 1.0 and 2.0) -> ranks and hosts
    cluster     the rank-table-free scheme (``CM_CHIEF_IP`` ... ``CM_WORKER_SIZE``)
    switches    feature switches from the environment (``USE_DYNAMIC``, ``CACHE_MODE``, ...)
    plan        arguments + environment -> one ``LaunchPlan`` (command line and environment);
                checks DATA_PATH against the model's ``data_layout.txt``
    rank_env    what each rank runs: sets ``OMPI_COMM_WORLD_*`` and ``RANK_ID`` from Horovod's, execs the script
    __main__    the command line: validate, print the plan, exec ``horovodrun``
"""
from mx_rec.launch.errors import LaunchError

__all__ = ["LaunchError"]
