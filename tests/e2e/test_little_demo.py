"""End to end: ``models/little_demo/main_mxrec.py`` trains (loss goes down) and evaluates (AUC > 0.6)."""
import os
import re
import subprocess
from dataclasses import dataclass
from typing import List, Sequence

import pytest

from tests.paths import PYTHON, REPO

SCRIPT = REPO / "models" / "little_demo" / "main_mxrec.py"
STEP_RE = re.compile(r"^step (\d+) loss ([0-9.]+) samples/s ([0-9.]+)$", re.MULTILINE)
FINAL_RE = re.compile(r"^final loss ([0-9.]+) user_table_size (\d+) item_table_size (\d+) avg samples/s ([0-9.]+)",
                      re.MULTILINE)
EVAL_RE = re.compile(r"^eval auc ([0-9.]+) logloss ([0-9.]+) oracle_auc ([0-9.]+)", re.MULTILINE)


@dataclass
class DemoRun:
    """What one run of the demo printed."""

    step_losses: List[float]
    final_loss: float
    table_sizes: List[int]
    auc: float
    oracle_auc: float
    stderr: str


def run_demo(args: Sequence[str]) -> DemoRun:
    """Run the demo as a subprocess from the repo root; fails the test on a non-zero exit."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([PYTHON, str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"demo exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    final, evaluation = FINAL_RE.search(proc.stdout), EVAL_RE.search(proc.stdout)
    assert final and evaluation, f"summary lines missing from the output:\n{proc.stdout}"
    return DemoRun(step_losses=[float(m.group(2)) for m in STEP_RE.finditer(proc.stdout)],
                   final_loss=float(final.group(1)), table_sizes=[int(final.group(2)), int(final.group(3))],
                   auc=float(evaluation.group(1)), oracle_auc=float(evaluation.group(3)), stderr=proc.stderr)


@pytest.mark.parametrize("extra_args", [[], ["--optimizer", "adagrad"]], ids=["lazy_adam", "adagrad"])
def test_little_demo_trains_and_evaluates(extra_args):
    run = run_demo(["--steps", "60", "--batch_size", "256", *extra_args])
    assert len(run.step_losses) >= 2, "expected at least two step lines"
    assert run.final_loss < run.step_losses[0], f"loss did not go down: {run.step_losses} -> {run.final_loss}"
    assert run.auc > 0.6, f"eval AUC {run.auc} <= 0.6 (planted best {run.oracle_auc})"
    assert run.auc <= run.oracle_auc + 0.02, f"eval AUC {run.auc} beats the planted model's {run.oracle_auc}"
    assert all(size > 0 for size in run.table_sizes)
    assert "during evaluation" not in run.stderr, "evaluation lookups inserted keys:\n" + run.stderr
