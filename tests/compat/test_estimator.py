"""Rec SDK's Estimator mode: ``tests/compat/scripts/estimator_demo.py`` (``create_table`` inside ``model_fn``,
``GraphModifierHook``, ``EvictHook``, the slicer hooks, ``tf.estimator.Estimator``) on 1 and 2 ranks.

Every Estimator call builds a new graph and calls ``model_fn`` again, so the tables are created
again and come back from ``model_dir``'s checkpoints only. Per rank count, two model folders:
    * uninterrupted: ``train`` to step 20, ``evaluate``, ``predict``;
    * resumed: ``train`` to 10, ``evaluate``, ``predict``, then ``train_and_evaluate`` to 20 and ``predict``.
On 1 rank (FeatureSpec mode, DDR: the user table's device rows are a cache over host memory) one
process makes every call; on 2 ranks (``bash run.sh``, modify-graph mode, HBM) the resumed folder's
second half is a restarted job. Asserted: the loss falls; evaluate
gives AUC, accuracy and loss (an AUC only restored tables can give); predict yields a probability
per example; the resumed job starts from step 10 and its losses, metrics and predictions equal
the uninterrupted job's.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import pytest

from tests.paths import PYTHON, REPO, launch_env

SCRIPT = Path(__file__).resolve().parent / "scripts" / "estimator_demo.py"
RANK_TABLE = REPO / "tests" / "e2e" / "rank_tables" / "v2_server_list_2p.json"
EVAL_STEPS, BATCH = 4, 64
UNINTERRUPTED = "train@20,evaluate,predict"
FIRST_HALF = "train@10,evaluate,predict"
SECOND_HALF = "train_and_evaluate@20,predict"
# run.sh's switches and variables, cleared so that the caller's environment cannot change the job
LAUNCH_VARS = ("MODEL", "MODEL_ARGS", "USE_DYNAMIC", "CACHE_MODE", "USE_FAAE", "USE_DYNAMIC_EXPANSION",
               "USE_MULTI_LOOKUP", "USE_MODIFY_GRAPH", "TRAIN_RANK_SIZE", "HOROVODRUN", "HOROVODRUN_ARGS",
               "MXREC_DRY_RUN")


def _check(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"


def _results(out: Path, ranks: int) -> List[Dict]:
    paths = [out] + [Path(f"{out}.rank{r}") for r in range(1, ranks)]
    return [json.loads(p.read_text(encoding="utf-8")) for p in paths]


def _run_in_process(tmp: Path) -> List[Dict]:
    """1 rank, FeatureSpec mode, DDR: every call of both folders in one process."""
    out = tmp / "one.json"
    modes = f"dir={tmp / 'whole'},{UNINTERRUPTED},dir={tmp / 'resumed'},{FIRST_HALF},{SECOND_HALF}"
    env = launch_env({"TF_CPP_MIN_LOG_LEVEL": "2", "USE_MODIFY_GRAPH": "0", "CACHE_MODE": "DDR"}, LAUNCH_VARS)
    proc = subprocess.run([PYTHON, str(SCRIPT), "--model_dir", str(tmp / "unused"), "--run_mode", modes,
                           "--eval_steps", str(EVAL_STEPS), "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    _check(proc)
    return [r["phases"] for r in _results(out, 1)]


def _launch_repo(tmp: Path) -> Path:
    """run.sh starts ``models/<MODEL>/main_mxrec.py`` beside it: a repository view whose one model is the script."""
    root = tmp / "repo"
    (root / "models" / "estimator_demo").mkdir(parents=True)
    shutil.copy(REPO / "run.sh", root / "run.sh")
    for name in ("mx_rec_py", ".venv"):
        if (REPO / name).exists():
            os.symlink(REPO / name, root / name)
    os.symlink(SCRIPT, root / "models" / "estimator_demo" / "main_mxrec.py")
    (root / "models" / "estimator_demo" / "data_layout.txt").write_text("# the demo makes its own data\n")
    for folder in ("so", "data/train", "data/test"):
        (tmp / folder).mkdir(parents=True, exist_ok=True)
    return root


def _run_sh(root: Path, tmp: Path, modes: str, out: Path) -> None:
    args = f"--model_dir {tmp / 'unused'} --run_mode {modes} --eval_steps {EVAL_STEPS} --out {out}"
    env = launch_env({"MODEL": "estimator_demo", "MODEL_ARGS": args, "USE_MODIFY_GRAPH": "1", "CACHE_MODE": "HBM"},
                     LAUNCH_VARS)
    proc = subprocess.run(["bash", str(root / "run.sh"), str(tmp / "so"), str(REPO / "mx_rec_py" / "mx_rec"),
                           str(RANK_TABLE), str(tmp / "data")], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=600)
    _check(proc)


def _run_two_ranks(tmp: Path) -> List[List[Dict]]:
    """2 ranks through run.sh, modify-graph mode; the resumed folder's second half is a restarted job."""
    root = _launch_repo(tmp)
    _run_sh(root, tmp, f"dir={tmp / 'whole'},{UNINTERRUPTED},dir={tmp / 'resumed'},{FIRST_HALF}", tmp / "a.json")
    _run_sh(root, tmp, f"dir={tmp / 'resumed'},{SECOND_HALF}", tmp / "b.json")
    return [a["phases"] + b["phases"] for a, b in zip(_results(tmp / "a.json", 2), _results(tmp / "b.json", 2))]


@pytest.fixture(scope="module", params=[1, 2], ids=["1rank_in_process", "2ranks_run_sh"])
def phases(request, tmp_path_factory) -> List[List[Dict]]:
    """Per rank: the calls' results, in order: whole train/evaluate/predict, then resumed
    train/evaluate/predict/train_and_evaluate/predict."""
    tmp = tmp_path_factory.mktemp(f"estimator{request.param}")
    per_rank = _run_in_process(tmp) if request.param == 1 else _run_two_ranks(tmp)
    assert len(per_rank) == request.param
    for calls in per_rank:
        assert [c["mode"] for c in calls] == ["train", "evaluate", "predict", "train", "evaluate", "predict",
                                              "train_and_evaluate", "predict"]
    return per_rank


def _split(calls: Sequence[Dict]):
    return dict(zip(("train", "evaluate", "predict"), calls[:3])), \
        dict(zip(("train", "evaluate", "predict", "train_and_evaluate", "predict2"), calls[3:]))


def test_train_loss_falls_and_saves_through_the_estimator(phases):
    for calls in phases:
        whole, resumed = _split(calls)
        losses = np.array(whole["train"]["losses"])
        assert losses.shape == (20,)
        assert losses[-5:].mean() < losses[:5].mean() - 0.03, losses
        assert whole["train"]["checkpoints"] == [0, 10, 20] and whole["train"]["end_step"] == 20
        assert resumed["train"]["checkpoints"] == [0, 10]
        for folder in (calls[0]["model_dir"], calls[3]["model_dir"]):
            assert os.path.isdir(os.path.join(folder, "model.ckpt-10-mxrec-sparse"))


def test_evaluate_gives_metrics_of_the_restored_tables(phases):
    for calls in phases:
        whole, resumed = _split(calls)
        for metrics, step in ((whole["evaluate"]["metrics"], 20), (resumed["evaluate"]["metrics"], 10)):
            assert set(metrics) == {"auc", "accuracy", "loss", "global_step"}
            assert metrics["global_step"] == step
        # every id reaches the model through the tables: empty (unrestored) tables give one probability, AUC 0.5
        assert whole["evaluate"]["metrics"]["auc"] > 0.6
        assert whole["evaluate"]["metrics"]["auc"] > resumed["evaluate"]["metrics"]["auc"] - 0.05


def test_predict_yields_a_probability_per_example(phases):
    for calls in phases:
        whole, resumed = _split(calls)
        for call in (whole["predict"], resumed["predict"], resumed["predict2"]):
            probs = np.array(call["predictions"])
            assert probs.shape == (EVAL_STEPS, BATCH)
            assert ((probs > 0) & (probs < 1)).all() and probs.std() > 0.01
        assert not np.array_equal(resumed["predict"]["predictions"], resumed["predict2"]["predictions"])


def test_resume_from_model_dir_gives_the_uninterrupted_numbers(phases):
    for calls in phases:
        whole, resumed = _split(calls)
        again = resumed["train_and_evaluate"]
        assert again["start_step"] == 10 and again["end_step"] == 20
        assert again["checkpoints"] == [0, 10, 20]
        assert resumed["train"]["losses"] + again["losses"] == whole["train"]["losses"]
        assert again["metrics"] == whole["evaluate"]["metrics"]
        assert resumed["predict2"]["predictions"] == whole["predict"]["predictions"]
