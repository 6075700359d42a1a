"""``python -m mx_rec.launch.rank_env SCRIPT [ARGS...]``: what each rank runs under ``horovodrun``.

``horovodrun --gloo`` gives every process ``HOROVOD_RANK`` / ``_SIZE`` / ``_LOCAL_RANK`` /
``_LOCAL_SIZE``. Rec SDK scripts read Open MPI's names instead (``dataset.shard(OMPI_COMM_WORLD_SIZE,
OMPI_COMM_WORLD_RANK)``) and ``RANK_ID``, so this sets those from Horovod's, then replaces itself
with ``python SCRIPT ARGS...`` (same interpreter, same process id). Standard library only.
"""
import os
import sys
from typing import Dict, List, Mapping, Optional, Sequence

# Open MPI / Ascend name -> Horovod name
RANK_VARIABLES = {
    "OMPI_COMM_WORLD_RANK": "HOROVOD_RANK",
    "OMPI_COMM_WORLD_SIZE": "HOROVOD_SIZE",
    "OMPI_COMM_WORLD_LOCAL_RANK": "HOROVOD_LOCAL_RANK",
    "OMPI_COMM_WORLD_LOCAL_SIZE": "HOROVOD_LOCAL_SIZE",
    "RANK_ID": "HOROVOD_RANK",
    "RANK_SIZE": "HOROVOD_SIZE",
}


def rank_environment(env: Mapping[str, str]) -> Dict[str, str]:
    """The Open MPI rank variables (and ``RANK_ID``, ``RANK_SIZE``) from Horovod's in ``env``.

    Raises:
        RuntimeError: a Horovod variable is missing or not a non-negative integer (not under horovodrun).
    """
    bad = sorted({hvd for hvd in RANK_VARIABLES.values() if not env.get(hvd, "").isdigit()})
    if bad:
        raise RuntimeError(f"{', '.join(bad)} not set to an integer: mx_rec.launch.rank_env runs under "
                           "horovodrun (use run.sh or python -m mx_rec.launch)")
    return {name: env[hvd] for name, hvd in RANK_VARIABLES.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Set the rank variables and exec the script; returns an exit code only on error."""
    args: List[str] = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m mx_rec.launch.rank_env SCRIPT [ARGS...]", file=sys.stderr)
        return 2
    try:
        os.environ.update(rank_environment(os.environ))
    except RuntimeError as err:
        print(f"run.sh: error: {err}", file=sys.stderr, flush=True)
        return 2
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, *args])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
