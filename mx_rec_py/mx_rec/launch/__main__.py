"""``python -m mx_rec.launch --repo ROOT -- SO_PATH PKG_PATH HCCL_JSON DATA_PATH [IP]`` (what run.sh runs).

Checks everything, prints the plan, then replaces itself with ``horovodrun`` (its exit status
is the job's). On a bad argument, file or switch it prints one ``run.sh: error: ...`` line and
exits 2 without starting anything. ``MXREC_DRY_RUN=1`` prints the plan and exits 0.
"""
import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from mx_rec.launch.errors import LaunchError
from mx_rec.launch.plan import USAGE, build_plan

EXIT_INVALID = 2


def _parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """The launcher's own options and run.sh's positional arguments (after ``--``)."""
    positional = USAGE.removeprefix("bash run.sh ")
    parser = argparse.ArgumentParser(prog="python -m mx_rec.launch", description=__doc__.split("\n")[0],
                                     usage=f"%(prog)s [--repo ROOT] [--caller-pythonpath P] -- {positional}")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[3],
                        help="repository root holding models/ (default: this checkout)")
    parser.add_argument("--caller-pythonpath", default=None,
                        help="PYTHONPATH before run.sh added the launcher's folder")
    parser.add_argument("args", nargs="*", help="run.sh's arguments")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Validate, print the plan and exec ``horovodrun``; returns an exit code only when not exec'ing."""
    options = _parse(argv)
    positional: List[str] = options.args
    try:
        plan = build_plan(positional, os.environ, repo=options.repo.absolute(), python=sys.executable,
                          caller_pythonpath=options.caller_pythonpath)
    except LaunchError as err:
        print(f"run.sh: error: {err}", file=sys.stderr, flush=True)
        return EXIT_INVALID
    print(plan.describe(), flush=True)
    if os.environ.get("MXREC_DRY_RUN", "").strip() not in ("", "0"):
        print("MXREC_DRY_RUN set: not starting", flush=True)
        return 0
    sys.stderr.flush()
    try:
        os.execve(plan.command[0], list(plan.command), plan.environment(os.environ))
    except OSError as err:
        print(f"run.sh: error: cannot start {plan.command[0]}: {err}", file=sys.stderr, flush=True)
        return EXIT_INVALID
    return 0  # not reached: execve replaced this process


if __name__ == "__main__":
    sys.exit(main())
