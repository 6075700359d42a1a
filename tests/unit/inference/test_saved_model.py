"""SavedModel export in one process: train, save, export, then serve in a process that cannot import
mx_rec, horovod or numba (tests/jobs/serve_savedmodel.py) and compare with the session's evaluation."""
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.inference import export_savedmodel, set_prediction
from mx_rec.inference.freeze import ExportError
from mx_rec.optimizers import lazy_adam
from mx_rec.saver.layout import CheckpointError
from mx_rec.util.variable import get_dense_and_sparse_variable
from tests.paths import PYTHON, REPO

SERVE = REPO / "tests" / "jobs" / "serve_savedmodel.py"
INIT = tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=3)
ATOL = 1e-6
FORBIDDEN = ("PyFunc", "PyFuncStateless", "EagerPyFunc", "NumpyFunction")


def _model(batch_size=None):
    """users: ids [B, 2]; items: multi-hot ids [B, 3, 2] averaged per field (a mean combiner), with a
    serving default. ``batch_size``: a graph that only runs at that batch (a reshape to it)."""
    users = create_table(tf.int64, 4, "users", INIT, device_vocabulary_size=200)
    items = create_table(tf.int64, 6, "items", INIT, device_vocabulary_size=200)
    batch = {"user": tf.compat.v1.placeholder(tf.int64, [batch_size, 2], name="user"),
             "item": tf.compat.v1.placeholder(tf.int64, [batch_size, 3, 2], name="item"),
             "x": tf.compat.v1.placeholder(tf.float32, [batch_size, 3], name="x"),
             "label": tf.compat.v1.placeholder(tf.float32, [batch_size], name="label")}
    w = tf.compat.v1.get_variable("w", [2 * 4 + 3 * 6 + 3, 1], initializer=tf.compat.v1.glorot_uniform_initializer(2))

    def logits(is_train):
        u = sparse_lookup(users, batch["user"], is_train=is_train, name=f"u_{is_train}")
        i = sparse_lookup(items, batch["item"], is_train=is_train, name=f"i_{is_train}",
                          serving_default_value=None if is_train else 0.25)
        rows = -1 if batch_size is None else batch_size
        x = tf.concat([tf.reshape(u, [rows, 8]), tf.reshape(tf.reduce_mean(i, axis=2), [rows, 18]), batch["x"]], 1)
        return tf.squeeze(tf.matmul(x, w), 1)

    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=batch["label"], logits=logits(True)))
    dense, sparse = get_dense_and_sparse_variable()
    train = tf.group(tf.compat.v1.train.AdamOptimizer(0.05).minimize(loss, var_list=dense),
                     lazy_adam.create_hash_optimizer(0.05).minimize(loss, var_list=sparse))
    probs = tf.sigmoid(logits(False))
    set_prediction(probs, batch)
    return batch, train, probs


def _feed(rng, n):
    return {"user": rng.integers(0, 40, (n, 2)), "item": rng.integers(0, 30, (n, 3, 2)),
            "x": rng.random((n, 3), dtype=np.float32), "label": (rng.random(n) < 0.4).astype(np.float32)}


def _train_and_evaluate(tmp_path: Path, batch_size=None):
    """(checkpoint prefix, test batch with padding / unknown keys, the session's predictions of it)."""
    batch, train, probs = _model(batch_size)
    rng = np.random.default_rng(0)
    n = batch_size or 16
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        for _ in range(6):
            sess.run(train, {batch[k]: v for k, v in _feed(rng, n).items()})
        prefix = tf.compat.v1.train.Saver().save(sess, str(tmp_path / "ckpt" / "model"), global_step=6)
        test = _feed(rng, 2 * n)
        test["user"][0] = [-1, 12345]          # padding, a key no table holds
        test["item"][1] = [[-1, 5], [999, -1], [-1, -1]]  # multi-hot with padding and an unknown key
        test["item"][2, 0] = [777, 778]
        expected = np.concatenate([sess.run(probs, {batch[k]: v[s:s + n] for k, v in test.items()})
                                   for s in range(0, 2 * n, n)])
    return prefix, test, expected


def serve(tmp_path: Path, *pairs) -> dict:
    """Predictions of (model folder, batch dict) pairs from tests/jobs/serve_savedmodel.py (mx_rec unimportable)."""
    args = []
    for i, (model, batch) in enumerate(pairs):
        np.savez(tmp_path / f"batch{i}.npz", **batch)
        args += [str(model), str(tmp_path / f"batch{i}.npz")]
    proc = subprocess.run([PYTHON, str(SERVE), str(tmp_path / "served.npz"), *args], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = dict(np.load(tmp_path / "served.npz"))
    assert out["modules"].tolist() == [] and out["refused"].tolist() == ["mx_rec", "horovod", "numba"]
    return out


def test_savedmodel_serves_what_the_session_evaluated_with_stock_ops_only(graph, tmp_path):
    prefix, test, expected = _train_and_evaluate(tmp_path / "any")
    report = export_savedmodel(prefix, str(tmp_path / "sm"))
    budget = export_savedmodel(prefix, str(tmp_path / "sm_ranges"), memory_budget_bytes=256)
    export_savedmodel(prefix, str(tmp_path / "sm_f16"), row_dtype="float16")
    assert report.chunk_batch is None and report.slices == 5  # the object graph + keys and rows of 2 tables
    assert budget.slices > 10 and budget.tables["items"].buckets > 1
    with tf.Graph().as_default():  # a graph that only runs at its batch size (8): served in chunks of 8
        fixed_prefix, fixed_test, fixed_expected = _train_and_evaluate(tmp_path / "fixed", batch_size=8)
        fixed = export_savedmodel(fixed_prefix, str(tmp_path / "sm_fixed"))
    assert fixed.chunk_batch == 8
    out = serve(tmp_path, (tmp_path / "sm", test), (tmp_path / "sm_ranges", test), (tmp_path / "sm_f16", test),
                (tmp_path / "sm_fixed", {k: v[:11] for k, v in fixed_test.items()}))
    assert out["pred0"].shape == expected.shape == (32,)
    np.testing.assert_allclose(out["pred0"], expected, atol=ATOL, rtol=0)
    np.testing.assert_array_equal(out["pred1"], out["pred0"])  # written key range by key range: same rows served
    np.testing.assert_allclose(out["pred2"], expected, atol=2e-3, rtol=0)  # float16 rows
    assert np.abs(out["pred2"] - expected).max() > 0, "float16 rows are stored as float16"
    np.testing.assert_allclose(out["pred3"], fixed_expected[:11], atol=ATOL, rtol=0)
    for i in range(4):
        ops = out[f"ops{i}"].tolist()
        assert "LowerBound" in ops and "ResourceGather" in ops, ops  # the table lookup: binary search + gather
        assert out[f"unregistered{i}"].tolist() == [] and not set(FORBIDDEN) & set(ops), ops
        assert not [op for op in ops if op.startswith("Horovod")], ops
    shapes = dict(tf.train.list_variables(str(tmp_path / "sm" / "variables" / "variables")))
    # tables/0 = items (a zero row and its default row after its keys' rows), tables/1 = users (a zero row)
    assert shapes["tables/0/rows/.ATTRIBUTES/VARIABLE_VALUE"] == [report.tables["items"].keys + 2, 6]
    assert shapes["tables/1/rows/.ATTRIBUTES/VARIABLE_VALUE"] == [report.tables["users"].keys + 1, 4]
    assert shapes["tables/1/keys/.ATTRIBUTES/VARIABLE_VALUE"] == [report.tables["users"].keys]
    assert (tmp_path / "sm" / "saved_model.pb").stat().st_size < 200_000, "rows are not constants in the graph"


def test_export_errors_name_the_file(graph, tmp_path):
    prefix, _, _ = _train_and_evaluate(tmp_path)
    shard = Path(prefix + "-mxrec-sparse") / "items" / "shard-00000-of-00001.npz"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"table 'items': checkpoint shard {shard} is damaged"):
        export_savedmodel(prefix, str(tmp_path / "sm"))
    assert not (tmp_path / "sm").exists() and not list(tmp_path.glob("sm.tmp-*"))
    with pytest.raises(ExportError, match="row_dtype must be one of"):
        export_savedmodel(prefix, str(tmp_path / "sm"), row_dtype="bfloat16")
