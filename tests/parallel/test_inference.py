"""Local inference against real jobs: the zoo's job graph (tests/jobs/inference_job.py) trained and
saved on 1 or 2 ranks in HBM, DDR or SSD mode, exported with tools/export_local.py and predicted
with mx_rec.inference / tools/predict_local.py; prediction jobs restored on another rank count."""
import json
import shutil
import subprocess
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score
from tensorflow.core.framework import graph_pb2

from mx_rec.inference import export_local, export_savedmodel, load_inference_model
from mx_rec.saver.layout import CheckpointError
from tests.parallel.harness import run_job
from tests.paths import PYTHON, REPO, launch_env

JOB = REPO / "tests" / "jobs" / "inference_job.py"
SERVE = REPO / "tests" / "jobs" / "serve_savedmodel.py"
TOOLS = REPO / "tools"
ATOL = 1e-6
# runs the CLI with Horovod unimportable: the exported model must not need it
NO_HOROVOD = ("import runpy, sys; sys.modules['horovod'] = None; sys.argv = sys.argv[1:]; "
              "runpy.run_path(sys.argv[0], run_name='__main__')")
# TF's saved_model_cli, with mx_rec, horovod and numba unimportable
SAVED_MODEL_CLI = ("import runpy, sys; sys.modules.update(dict.fromkeys(('mx_rec', 'horovod', 'numba'))); "
                   "sys.argv = ['saved_model_cli'] + sys.argv[1:]; "
                   "runpy.run_module('tensorflow.python.tools.saved_model_cli', run_name='__main__')")


def _tool(script: str, *args, expect_ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([PYTHON, "-c", NO_HOROVOD, str(TOOLS / script), *map(str, args)], cwd=REPO,
                          env=launch_env({"TF_CPP_MIN_LOG_LEVEL": "2"}), capture_output=True, text=True, timeout=120)
    if expect_ok:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def _job(out: Path, ranks: int, *args, cache_mode: str = "HBM", multi_lookup: bool = False,
         modify_graph: bool = False) -> Dict[str, np.ndarray]:
    """Run the job; returns its evaluation: ``rows`` int64 [n] (test-split order) and ``probs`` float32 [n]."""
    out.mkdir(parents=True)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CACHE_MODE", cache_mode)
        env.setenv("USE_DYNAMIC", "1")  # the switch default is static shapes (Rec SDK's); these jobs ran dynamic
        env.setenv("USE_MULTI_LOOKUP", "1" if multi_lookup else "0")
        env.setenv("USE_MODIFY_GRAPH", "1" if modify_graph else "0")
        run_job(JOB, [out, *args], ranks=ranks, timeout=180)
    parts = [np.load(out / f"preds_rank{r}.npz") for r in range(ranks)]
    rows = np.concatenate([p["rows"] for p in parts])
    order = np.argsort(rows)
    return {"rows": rows[order], "probs": np.concatenate([p["probs"] for p in parts])[order, 0]}


def _train(work: Path, name: str, ranks: int, data: Path, **kwargs):
    ckpt = work / f"{name}_ckpt"
    ckpt.mkdir()
    return ckpt, _job(work / name, ranks, "train", "--data", data, "--save", ckpt, **kwargs)


def _test_split(data: Path) -> Dict[str, np.ndarray]:
    """The test split as numpy arrays, in file order (what the jobs' row ids index)."""
    import tensorflow as tf
    meta = json.loads((data / "meta.json").read_text())
    out = {"label": [], "sparse_feature": [], "dense_feature": []}
    for path in meta["splits"]["test"]["files"]:
        for raw in tf.compat.v1.io.tf_record_iterator(str(data / path)):
            f = tf.train.Example.FromString(raw).features.feature
            out["label"].append(list(f["label"].int64_list.value))
            out["sparse_feature"].append(list(f["sparse_feature"].int64_list.value))
            out["dense_feature"].append(list(f["dense_feature"].float_list.value))
    return {"label": np.array(out["label"], np.int64), "sparse_feature": np.array(out["sparse_feature"], np.int64),
            "dense_feature": np.array(out["dense_feature"], np.float32)}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("inference")
    proc = subprocess.run([PYTHON, str(TOOLS / "criteo" / "synthetic.py"), "--output_path", str(work / "data"),
                           "--rows", "1500", "--test_fraction", "0.2", "--max_cardinality", "300"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return work


@pytest.fixture(scope="module")
def hbm2(work):
    """A 2-rank HBM job: (checkpoint dir, its own evaluation)."""
    return _train(work, "hbm2", 2, work / "data")


@pytest.fixture(scope="module")
def ssd1(work):
    """A 1-rank SSD job: (checkpoint dir, its own evaluation)."""
    return _train(work, "ssd1", 1, work / "data", cache_mode="SSD")


@pytest.fixture(scope="module")
def test_split(work):
    return _test_split(work / "data")


def _assert_same(predicted: np.ndarray, evaluation: Dict[str, np.ndarray]) -> None:
    np.testing.assert_allclose(np.asarray(predicted).reshape(-1)[evaluation["rows"]], evaluation["probs"],
                               atol=ATOL, rtol=0)


def test_local_model_predicts_what_the_2_rank_job_evaluated(work, hbm2, test_split):
    ckpt, evaluation = hbm2
    assert evaluation["rows"].tolist() == list(range(300)), "the two ranks evaluated every test row once"
    out = _tool("export_local.py", "--checkpoint", ckpt, "--output", work / "hbm2_local")
    assert "table sparse_table:" in out.stdout
    graph_def = graph_pb2.GraphDef.FromString((work / "hbm2_local" / "model.pb").read_bytes())
    ops = {n.op for n in graph_def.node}
    assert not [op for op in ops if op.startswith("Horovod") or "PyFunc" in op or "Iterator" in op], ops
    model = load_inference_model(str(work / "hbm2_local"))
    _assert_same(model.predict(test_split), evaluation)


def test_predict_cli_writes_predictions_and_metrics(work, hbm2, test_split):
    _, evaluation = hbm2
    if not (work / "hbm2_local").exists():
        export_local(str(hbm2[0]), str(work / "hbm2_local"))
    out = work / "preds.tsv"
    proc = _tool("predict_local.py", "--model", work / "hbm2_local", "--data", work / "data", "--output", out)
    table = np.loadtxt(out, skiprows=1, delimiter="\t")
    assert table.shape == (300, 3) and out.read_text().startswith("row\tlabel_0\tpred_0")
    np.testing.assert_array_equal(table[:, 1], test_split["label"][:, 0])
    _assert_same(table[:, 2], evaluation)
    metrics = json.loads(Path(str(out) + ".metrics.json").read_text())["tasks"][0]
    assert abs(metrics["auc"] - roc_auc_score(table[:, 1], table[:, 2])) < 1e-9
    assert abs(metrics["logloss"] - log_loss(table[:, 1], table[:, 2])) < 1e-6
    assert metrics["samples"] == 300 and f"auc {metrics['auc']:.6f}" in proc.stdout


def test_1_rank_prediction_job_from_the_2_rank_checkpoint(work, hbm2):
    ckpt, evaluation = hbm2
    predicted = _job(work / "predict1", 1, "predict", "--data", work / "data", "--restore", ckpt)
    np.testing.assert_array_equal(predicted["rows"], evaluation["rows"])
    np.testing.assert_allclose(predicted["probs"], evaluation["probs"], atol=ATOL, rtol=0)


def test_2_rank_prediction_job_from_a_1_rank_ssd_checkpoint(work, ssd1):
    ckpt, evaluation = ssd1
    predicted = _job(work / "predict2", 2, "predict", "--data", work / "data", "--restore", ckpt)
    np.testing.assert_array_equal(predicted["rows"], evaluation["rows"])
    np.testing.assert_allclose(predicted["probs"], evaluation["probs"], atol=ATOL, rtol=0)


@pytest.fixture(scope="module")
def ddr2(work):
    """A 2-rank DDR job with multi-lookup and graph modification: (checkpoint dir, its own evaluation)."""
    return _train(work, "ddr2", 2, work / "data", cache_mode="DDR", multi_lookup=True, modify_graph=True)


def test_export_of_ssd_and_ddr_modify_graph_checkpoints(work, ssd1, ddr2, test_split):
    ckpt, evaluation = ssd1
    export_local(str(ckpt), str(work / "ssd1_local"))
    _assert_same(load_inference_model(str(work / "ssd1_local")).predict(test_split), evaluation)
    # the lookups recorded the ids of the iterator that graph modification replaced: set_prediction's aliases
    ddr_ckpt, ddr_eval = ddr2
    export_local(str(ddr_ckpt), str(work / "ddr2_local"))
    model = load_inference_model(str(work / "ddr2_local"))
    assert len(model.lookups) == 26, "one lookup per field (USE_MULTI_LOOKUP=1): ids computed in the graph"
    _assert_same(model.predict(test_split), ddr_eval)


def test_tiny_memory_budget_merges_in_ranges_and_maps_the_tables(work, hbm2, test_split):
    ckpt, evaluation = hbm2
    report = export_local(str(ckpt), str(work / "hbm2_mmap"), memory_budget_bytes=8192)
    assert report.tables["sparse_table"].buckets > 10
    model = load_inference_model(str(work / "hbm2_mmap"), mmap=True)
    assert isinstance(model.tables["sparse_table"].rows, np.memmap)
    _assert_same(model.predict(test_split), evaluation)


def test_missing_shard_is_named_by_the_export_tool(work, hbm2):
    broken = work / "broken_ckpt"
    shutil.copytree(hbm2[0], broken)
    shard = next(broken.glob("model-*-mxrec-sparse")) / "sparse_table" / "shard-00001-of-00002.npz"
    shard.unlink()
    proc = _tool("export_local.py", "--checkpoint", broken, "--output", work / "broken_local", expect_ok=False)
    assert proc.returncode == 2
    assert f"table 'sparse_table': checkpoint shard {shard} is missing" in proc.stderr
    with pytest.raises(CheckpointError, match=str(shard)):
        export_local(str(broken), str(work / "broken_local"))


@pytest.fixture(scope="module")
def hbm1(work):
    return _train(work, "hbm1", 1, work / "data")


@pytest.fixture(scope="module")
def ddr1(work):
    return _train(work, "ddr1", 1, work / "data", cache_mode="DDR")


@pytest.fixture(scope="module")
def ssd2(work):
    return _train(work, "ssd2", 2, work / "data", cache_mode="SSD")


def _with_padding(test_split: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The test split's model inputs plus 4 rows that hold padding (-1) ids, appended after its 300 rows."""
    extra = test_split["sparse_feature"][:4].copy()
    extra[0] = -1
    extra[1, ::2] = -1
    extra[2, 3] = -1
    extra[3, :5] = 10**12  # keys no table holds
    return {"sparse_feature": np.concatenate([test_split["sparse_feature"], extra]),
            "dense_feature": np.concatenate([test_split["dense_feature"], test_split["dense_feature"][:4]])}


def test_savedmodels_of_1_and_2_ranks_in_every_mode_serve_the_jobs_evaluation(work, hbm1, hbm2, ddr1, ddr2, ssd1,
                                                                              ssd2, test_split):
    """tools/export_savedmodel.py, then tf.saved_model.load in a process where mx_rec, horovod and numba cannot
    be imported (tests/jobs/serve_savedmodel.py); saved_model_cli run on one of them gives the same numbers."""
    jobs = {"hbm1": hbm1, "hbm2": hbm2, "ddr1": ddr1, "ddr2": ddr2, "ssd1": ssd1, "ssd2": ssd2}
    batch = _with_padding(test_split)
    np.savez(work / "serve_batch.npz", **batch)
    args = []
    for name, (ckpt, _) in jobs.items():
        if name == "hbm2":
            out = _tool("export_savedmodel.py", "--checkpoint", ckpt, "--output", work / f"{name}_sm")
            assert "serving_default: any batch size in one call" in out.stdout, out.stdout
        else:
            assert export_savedmodel(str(ckpt), str(work / f"{name}_sm")).chunk_batch is None
        args += [work / f"{name}_sm", work / "serve_batch.npz"]
    proc = subprocess.run([PYTHON, str(SERVE), str(work / "served.npz"), *map(str, args)], cwd=REPO,
                          env=launch_env({"TF_CPP_MIN_LOG_LEVEL": "2"}), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-4000:]
    served = dict(np.load(work / "served.npz"))
    assert served["refused"].tolist() == ["mx_rec", "horovod", "numba"] and served["modules"].tolist() == []
    if not (work / "hbm2_local").exists():
        export_local(str(hbm2[0]), str(work / "hbm2_local"))
    local = load_inference_model(str(work / "hbm2_local"))
    for i, (name, (_, evaluation)) in enumerate(jobs.items()):
        predicted = served[f"pred{i}"]
        assert predicted.shape == (304, 1), name
        _assert_same(predicted[:300], evaluation)
        assert served[f"unregistered{i}"].tolist() == [], served[f"ops{i}"]
        if name == "hbm2":  # padding and unknown keys: as the local model reads them
            np.testing.assert_allclose(predicted[300:], local.predict({k: v[300:] for k, v in batch.items()}),
                                       atol=ATOL, rtol=0)
    assert not np.allclose(served["pred1"][300:303], served["pred1"][:3]), "padding changes the prediction"
    for key in ("sparse_feature", "dense_feature"):
        np.save(work / f"cli_{key}.npy", batch[key])
    cli = subprocess.run(
        [PYTHON, "-c", SAVED_MODEL_CLI, "run", "--dir",
         str(work / "hbm2_sm"), "--tag_set", "serve", "--signature_def", "serving_default", "--inputs",
         f"sparse_feature={work / 'cli_sparse_feature.npy'};dense_feature={work / 'cli_dense_feature.npy'}",
         "--outdir", str(work / "cli_out")], cwd=REPO, env=launch_env({"TF_CPP_MIN_LOG_LEVEL": "2"}),
        capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr[-4000:]
    np.testing.assert_array_equal(np.load(work / "cli_out" / "prediction.npy"), served["pred1"])
