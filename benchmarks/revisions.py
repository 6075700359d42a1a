"""Two revisions of mx_rec on the same benchmarks, alternating, in one invocation: did a change cost speed?

Each benchmark (``lookup_update``, ``tiers``) reports ratios against a baseline of its own run (mx_rec
over plain TF; DDR and SSD over HBM). This script exports the base revision with ``git archive``, then
runs each benchmark from the base tree and from this checkout in turn, ``--rounds`` times (base, head,
base, head, ...), both with this checkout's environment, and writes every run's ratios and their
medians to ``benchmarks/results/revisions.json``. Alternating spreads a drift of the machine's speed
over both sides; the medians are what to compare.

    .venv/bin/python benchmarks/revisions.py --base REV [--rounds 3] [--benchmarks lookup_update tiers]
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "revisions.json"
# each benchmark's ratios, read from its results file: name -> path of keys
RATIOS = {
    "lookup_update": {"mx_rec/plain": ("ratio_mx_rec_over_plain",),
                      "mx_rec/plain paired": ("ratio_paired_rounds_median",)},
    "tiers": {"ddr/hbm": ("ratio_ddr_over_hbm",), "ssd/hbm": ("ratio_ssd_over_hbm",),
              "feed ddr/hbm": ("by_input", "feed", "ratio_ddr_over_hbm"),
              "feed ssd/hbm": ("by_input", "feed", "ratio_ssd_over_hbm")},
}


def export_revision(rev: str, into: Path) -> str:
    """Extract revision ``rev`` of this repository into ``into``; returns its full commit id."""
    commit = subprocess.run(["git", "rev-parse", rev], cwd=REPO, check=True, capture_output=True,
                            text=True).stdout.strip()
    archive = into.with_suffix(".tar")
    subprocess.run(["git", "archive", "-o", str(archive), commit], cwd=REPO, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into)
    archive.unlink()
    return commit


def _dig(result: Dict, path: Sequence[str]) -> Optional[float]:
    for key in path:
        if not isinstance(result, dict) or key not in result:
            return None
        result = result[key]
    return float(result)


def run_once(tree: Path, benchmark: str, output: Path) -> Dict[str, Optional[float]]:
    """One run of ``benchmarks/<benchmark>.py`` from ``tree`` (its mx_rec first on the path); its ratios."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree / "mx_rec_py"), str(tree)]))
    proc = subprocess.run([sys.executable, str(tree / "benchmarks" / f"{benchmark}.py"), "--output", str(output)],
                          cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{benchmark} from {tree} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(output.read_text())
    return {name: _dig(result, path) for name, path in RATIOS[benchmark].items()}


def compare(base: str, rounds: int, benchmarks: Sequence[str]) -> Dict:
    """Alternate base and head ``rounds`` times per benchmark; every run's ratios and the medians."""
    with tempfile.TemporaryDirectory(prefix="mxrec_revisions_") as tmp:
        base_tree = Path(tmp) / "base"
        base_commit = export_revision(base, base_tree)
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, check=True, capture_output=True,
                              text=True).stdout.strip()
        runs: Dict[str, Dict[str, List[Dict]]] = {b: {"base": [], "head": []} for b in benchmarks}
        for r in range(rounds):
            for benchmark in benchmarks:
                for side, tree in (("base", base_tree), ("head", REPO)):
                    ratios = run_once(tree, benchmark, Path(tmp) / f"{side}_{benchmark}_{r}.json")
                    runs[benchmark][side].append(ratios)
                    print(f"round {r + 1}/{rounds} {benchmark} {side}: {ratios}", flush=True)
    medians = {b: {side: {name: statistics.median(run[name] for run in sides[side] if run[name] is not None)
                          for name in RATIOS[b]} for side in sides} for b, sides in runs.items()}
    return {"benchmark": "revisions", "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "base": base_commit, "head": head, "rounds": rounds, "runs": runs, "medians": medians,
            "head_over_base": {b: {name: m["head"][name] / m["base"][name] for name in m["head"]}
                               for b, m in medians.items()}}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the revision to compare with (e.g. a commit id)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each benchmark on each side")
    parser.add_argument("--benchmarks", nargs="+", choices=sorted(RATIOS), default=sorted(RATIOS))
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    result = compare(args.base, args.rounds, args.benchmarks)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    for benchmark, ratios in result["head_over_base"].items():
        print(f"{benchmark}: head / base of the median ratios: "
              + ", ".join(f"{name} {value:.3f}" for name, value in ratios.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
