"""Each model of the zoo trains a few steps from its own run.sh and evaluates the whole test split,
in HBM mode on one rank and in another switch combination (two ranks, static shapes, multi-lookup,
admission, dynamic expansion); a switch the SDK cannot honour stops the job with a message.

The data: Wide-ResDNN's Criteo ``train.csv`` / ``dev.csv`` converted with 2 samples per record,
and the 200-row census sample as both census splits.
"""
import json
import re
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from tests.paths import PYTHON, REPO, SHARED_DATA, launch_env, require_shared

CRITEO = SHARED_DATA / "criteo" / "wide_resdnn"
CENSUS = SHARED_DATA / "census" / "census-income.sample"
PKG = REPO / "mx_rec_py" / "mx_rec"
TWO_RANKS = REPO / "tests" / "e2e" / "rank_tables" / "v2_server_list_2p.json"
ARGS = "--steps 6 --batch_size 64 --eval_batch_size 128 --log_every 3"
SWITCHES = ("USE_DYNAMIC", "CACHE_MODE", "USE_FAAE", "USE_DYNAMIC_EXPANSION", "USE_MULTI_LOOKUP",
            "USE_MODIFY_GRAPH", "TRAIN_RANK_SIZE", "MODEL", "MODEL_ARGS", "DATA_PATH", "HOROVODRUN_ARGS")
EVAL_RE = re.compile(r"^(?:\[(\d)\]<stdout>:)?eval (\w+) auc ([0-9.na]+) logloss ([0-9.]+) positives (\d+) "
                     r"samples (\d+)$", re.MULTILINE)
FINAL_RE = re.compile(r"^(?:\[(\d)\]<stdout>:)?final loss ([0-9.]+) avg samples/s ([0-9.]+)", re.MULTILINE)

# model -> (dataset, tasks, test samples, {case: (ranks, switches)})
MODELS = {
    "dlrm": ("criteo", ("ctr",), 409, {"hbm": (1, {}), "modify_graph_ddr": (1, {"USE_MODIFY_GRAPH": "1",
                                                                                 "CACHE_MODE": "DDR"}),
                                       "2ranks_static_multilookup": (2, {"USE_DYNAMIC": "0",
                                                                          "USE_MULTI_LOOKUP": "1"})}),
    "wide_deep": ("criteo", ("ctr",), 409, {"hbm": (1, {}), "expansion": (1, {"USE_DYNAMIC_EXPANSION": "1"})}),
    "dcnv2": ("criteo", ("ctr",), 409, {"hbm": (1, {}), "2ranks_faae": (2, {"USE_FAAE": "1"})}),
    "mmoe": ("census", ("income", "marital"), 200, {"hbm": (1, {}),
                                                    "2ranks_expansion_static": (2, {"USE_DYNAMIC_EXPANSION": "1",
                                                                                     "USE_DYNAMIC": "0"}),
                                                    "2ranks_modify_graph_multilookup": (2, {"USE_MODIFY_GRAPH": "1",
                                                                                             "USE_MULTI_LOOKUP": "1"})}),
}
CASES = [(model, case) for model, (_, _, _, cases) in MODELS.items() for case in cases]


def _convert(args: List[str]) -> None:
    proc = subprocess.run([PYTHON, *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def job_dirs(tmp_path_factory) -> Dict[str, Path]:
    """Converted datasets, an empty SO_PATH and a one-rank rank table."""
    require_shared(CRITEO / "train.csv", CRITEO / "dev.csv", CENSUS)
    work = tmp_path_factory.mktemp("zoo")
    _convert([str(REPO / "tools" / "criteo" / "convert.py"), "--train_data_path", str(CRITEO / "train.csv"),
              "--test_data_path", str(CRITEO / "dev.csv"), "--output_path", str(work / "criteo"),
              "--line_per_sample", "2"])
    _convert([str(REPO / "models" / "mmoe" / "census.py"), "--train_data_path", str(CENSUS), "--test_data_path",
              str(CENSUS), "--output_path", str(work / "census")])
    (work / "so").mkdir()
    one_rank = {"version": "2.0", "server_count": "1", "status": "completed",
                "server_list": [{"server_id": "127.0.0.1",
                                 "device": [{"device_id": "0", "device_ip": "192.168.1.1", "rank_id": "0"}]}]}
    (work / "one_rank.json").write_text(json.dumps(one_rank))
    return {"criteo": work / "criteo", "census": work / "census", "so": work / "so",
            "tables": {1: work / "one_rank.json", 2: TWO_RANKS}}




@pytest.mark.parametrize("model,case", CASES, ids=[f"{m}-{c}" for m, c in CASES])
def test_model_trains_from_its_run_sh(model, case, job_dirs):
    dataset, tasks, test_samples, cases = MODELS[model]
    ranks, switches = cases[case]
    script = REPO / "models" / model / "run.sh"
    proc = subprocess.run(["bash", str(script), str(job_dirs["so"]), str(PKG), str(job_dirs["tables"][ranks]),
                           str(job_dirs[dataset])], cwd=REPO, env=launch_env({"MODEL_ARGS": ARGS, **switches}, SWITCHES),
                          capture_output=True, text=True, timeout=240)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"exit {proc.returncode}\n{output[-6000:]}"
    assert re.search(rf"model\s+{model} ", proc.stdout) and re.search(rf"processes\s+{ranks}$", proc.stdout,
                                                                      re.MULTILINE), proc.stdout
    expected = {"USE_DYNAMIC": "0", "USE_FAAE": "0", "USE_DYNAMIC_EXPANSION": "0", "USE_MULTI_LOOKUP": "0",
                **switches}
    finals = FINAL_RE.findall(proc.stdout)
    assert len(finals) == ranks, f"expected {ranks} 'final loss' lines:\n{proc.stdout}"
    for _, loss, rate in finals:
        assert 0.0 < float(loss) < 5.0 and float(rate) > 0.0
    for name, value in expected.items():
        assert f"{name}={value}" in proc.stdout, f"{name}={value} not reported"
    evals = EVAL_RE.findall(proc.stdout)
    assert sorted({task for _, task, *_ in evals}) == sorted(tasks), proc.stdout
    for task in tasks:
        figures = {(auc, loss, pos, n) for _, t, auc, loss, pos, n in evals if t == task}
        assert len(figures) == 1, f"ranks disagree on {task}: {figures}"  # every rank reports the global figures
        auc, _, _, samples = figures.pop()
        assert int(samples) == test_samples, "evaluation must see every test sample exactly once"
        assert 0.0 <= float(auc) <= 1.0
    if switches.get("USE_DYNAMIC_EXPANSION") == "1" and model == "wide_deep":
        assert "dynamic expansion: every table uses lazy_adam by address (instead of ftrl)" in proc.stdout


def test_invalid_switches_stop_with_a_message(job_dirs):
    script = REPO / "models" / "dlrm" / "main_mxrec.py"
    for switches, needle in (({"USE_MODIFY_GRAPH": "true"}, "invalid USE_MODIFY_GRAPH='true'; valid values: 0, 1"),
                             ({"CACHE_MODE": "hbm"}, "invalid CACHE_MODE='hbm'; valid values: HBM, DDR, SSD")):
        proc = subprocess.run([PYTHON, str(script), "--data_path", str(job_dirs["criteo"]), "--steps", "1"],
                              cwd=REPO, env=launch_env(switches, SWITCHES), capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0
        assert needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_zoo_checkpoint_exports_and_predicts_what_the_job_evaluated(job_dirs, tmp_path):
    """main_mxrec.py --checkpoint_dir, then tools/export_local.py and tools/predict_local.py on the test split."""
    ckpt, model_dir, out = tmp_path / "ckpt", tmp_path / "local", tmp_path / "pred.tsv"
    proc = subprocess.run([PYTHON, str(REPO / "models" / "dlrm" / "main_mxrec.py"), "--data_path",
                           str(job_dirs["criteo"]), *ARGS.split(), "--checkpoint_dir", str(ckpt),
                           "--savedmodel_dir", str(tmp_path / "sm")],
                          cwd=REPO, env=launch_env({}, SWITCHES), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"savedmodel {tmp_path / 'sm'}" in proc.stdout
    (_, task, auc, logloss, _, samples), = EVAL_RE.findall(proc.stdout)
    for tool, args in (("export_local.py", ["--checkpoint", ckpt, "--output", model_dir]),
                       ("predict_local.py", ["--model", model_dir, "--data", job_dirs["criteo"], "--output", out])):
        step = subprocess.run([PYTHON, str(REPO / "tools" / tool), *map(str, args)], cwd=REPO, capture_output=True,
                              text=True, timeout=300)
        assert step.returncode == 0, f"{tool}: {step.stderr[-4000:]}"
    _assert_savedmodel_predicts_like(tmp_path / "sm", model_dir)
    metrics = json.loads(out.with_name("pred.tsv.metrics.json").read_text())
    (figures,) = metrics["tasks"]  # DLRM has one task (ctr)
    assert task == "ctr" and figures["samples"] == int(samples) == 409
    # the job prints 4 decimals
    assert abs(figures["auc"] - float(auc)) <= 5e-5 and abs(figures["logloss"] - float(logloss)) <= 5e-5


def _assert_savedmodel_predicts_like(saved_model: Path, local_dir: Path) -> None:
    """The job's --savedmodel_dir export predicts what the local model predicts (known, unknown, padding ids)."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.eager import context

    from mx_rec.inference import load_inference_model

    local = load_inference_model(str(local_dir))
    keys = np.asarray(local.tables["sparse_table"].keys)
    rng = np.random.default_rng(0)
    ids = np.where(rng.random((300, 26)) < 0.1, -1, keys[rng.integers(0, keys.shape[0], (300, 26))])
    ids[:5] = 10**15  # unknown keys
    batch = {"sparse_feature": ids, "dense_feature": rng.standard_normal((300, 13)).astype(np.float32)}
    with context.eager_mode():
        served = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
        predicted = served(**{k: tf.constant(v) for k, v in batch.items()})["prediction"].numpy()
    np.testing.assert_allclose(predicted, local.predict(batch), atol=1e-6, rtol=0)
