"""Local inference in one process: export a checkpoint, load it, predict like the training session."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.inference import export_local, load_inference_model, set_prediction
from mx_rec.inference.freeze import ExportError
from mx_rec.inference.merged_table import MergedTable
from mx_rec.inference.table_merge import merge_shards, npz_member
from mx_rec.saver.layout import CheckpointError
from tests.helpers.inference_model import INIT, random_feed, two_table_model

RUNTIME_ONLY = ("PyFunc", "EagerPyFunc", "PyFuncStateless", "IteratorGetNext", "VarHandleOp", "VariableV2")


def trained_sizes(prefix):
    with open(os.path.join(prefix + "-mxrec-sparse", "manifest.json"), encoding="utf-8") as f:
        return {name: sum(entry["key_counts"]) for name, entry in json.load(f)["tables"].items()}


@pytest.fixture
def trained(graph, tmp_path):
    """(checkpoint prefix, test batch as numpy dict, the session's eval predictions of it)."""
    batch, train, probs = two_table_model()
    rng = np.random.default_rng(0)
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        for _ in range(5):
            sess.run(train, random_feed(batch, rng, 16))
        prefix = tf.compat.v1.train.Saver().save(sess, str(tmp_path / "ckpt" / "model"), global_step=5)
        test = random_feed(batch, rng, 11)
        test[batch["user"]][0] = [-1, 12345]  # padding and a key no table holds
        test[batch["item"]][1, 1] = 999
        expected = sess.run(probs, test)
    return prefix, {k: test[t] for k, t in batch.items()}, expected


def test_exported_model_predicts_like_the_session(trained, tmp_path):
    prefix, test, expected = trained
    report = export_local(os.path.dirname(prefix), str(tmp_path / "local"))
    assert {n: s.keys for n, s in report.tables.items()} == trained_sizes(prefix)
    model = load_inference_model(str(tmp_path / "local"))
    assert sorted(model.inputs) == ["item", "slot", "user"]  # the label is not an input of the prediction
    np.testing.assert_allclose(model.predict(test), expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(model.predict({k: v[3:5] for k, v in test.items()}), expected[3:5], atol=1e-6)
    graph_def = graph_pb2.GraphDef.FromString((tmp_path / "local" / "model.pb").read_bytes())
    ops = {n.op for n in graph_def.node}
    assert not [op for op in ops if op in RUNTIME_ONLY or op.startswith("Horovod")], ops


def test_merged_table_gives_defaults_and_zeros_for_padding(tmp_path):
    np.save(tmp_path / "keys.npy", np.array([-5, 3, 9], np.int64))
    np.save(tmp_path / "rows.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
    for mmap in (False, True):
        table = MergedTable(str(tmp_path), mmap=mmap)
        out = table.lookup(np.array([[9, -1], [4, -5]]), dim=2, default=[7, 8])
        np.testing.assert_array_equal(out, [[[8, 9], [0, 0]], [[7, 8], [0, 1]]])
        assert out.shape == (2, 2, 2) and isinstance(table.rows, np.memmap) == mmap


def test_merge_in_key_ranges_writes_what_one_pass_writes(tmp_path):
    rng = np.random.default_rng(3)
    keys = rng.permutation(np.arange(-3000, 3000, 3, dtype=np.int64))
    paths = []
    for r in range(3):  # disjoint shards, as ranks write them
        mine = keys[r::3]
        paths.append(str(tmp_path / f"shard{r}.npz"))
        np.savez(paths[-1], keys=mine, embeddings=rng.normal(size=(mine.shape[0], 5)).astype(np.float32),
                 **{"slot:adam/m": np.zeros((mine.shape[0], 5), np.float32)})
    assert isinstance(npz_member(paths[0], "embeddings"), np.memmap)
    whole = merge_shards(paths, "t", 5, str(tmp_path / "whole"), budget_bytes=1 << 30)
    ranged = merge_shards(paths, "t", 5, str(tmp_path / "ranged"), budget_bytes=4096)
    assert whole.buckets == 1 and ranged.buckets > 10 and ranged.keys == keys.shape[0]
    for name in ("keys.npy", "rows.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / "whole" / name), np.load(tmp_path / "ranged" / name))
    np.testing.assert_array_equal(np.load(tmp_path / "whole" / "keys.npy"), np.sort(keys))


def test_missing_shard_is_named(trained, tmp_path):
    prefix, _, _ = trained
    shard = os.path.join(prefix + "-mxrec-sparse", "items", "shard-00000-of-00001.npz")
    os.remove(shard)
    with pytest.raises(CheckpointError, match=f"table 'items': checkpoint shard {shard} is missing"):
        export_local(prefix, str(tmp_path / "local"))
    assert not (tmp_path / "local").exists()


def test_graph_without_signature_says_how_to_register(graph, tmp_path):
    two_table_model(register=False)
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        prefix = tf.compat.v1.train.Saver().save(sess, str(tmp_path / "model"))
    with pytest.raises(ExportError, match="set_prediction"):
        export_local(prefix, str(tmp_path / "local"))


def test_prediction_from_an_unregistered_iterator_names_the_op(graph, tmp_path):
    table = create_table(tf.int64, 4, "t", INIT, device_vocabulary_size=50)
    ids = tf.compat.v1.data.make_one_shot_iterator(tf.data.Dataset.from_tensors(tf.constant([[1, 2]], tf.int64))
                                                   ).get_next()
    probs = tf.sigmoid(tf.reduce_sum(sparse_lookup(table, ids, is_train=False), axis=[1, 2]))
    set_prediction(probs, {})
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        prefix = tf.compat.v1.train.Saver().save(sess, str(tmp_path / "model"))
    with pytest.raises(ExportError, match=r"IteratorGetNext.*set_prediction"):
        export_local(prefix, str(tmp_path / "local"))


def test_a_damaged_shard_byte_is_refused_by_the_export(trained, tmp_path):
    prefix, _, _ = trained
    shard = os.path.join(prefix + "-mxrec-sparse", "users", "shard-00000-of-00001.npz")
    with open(shard, "r+b") as f:  # a byte inside the rows: the npz still parses
        f.seek(os.path.getsize(shard) // 2)
        byte = f.read(1)
        f.seek(os.path.getsize(shard) // 2)
        f.write(bytes([byte[0] ^ 0x40]))
    with pytest.raises(CheckpointError, match=f"checkpoint shard {shard} is damaged"):
        export_local(os.path.dirname(prefix), str(tmp_path / "local"))
    assert not (tmp_path / "local").exists()


def test_a_damaged_exported_model_is_refused_by_load(trained, tmp_path):
    prefix, _, _ = trained
    export_local(os.path.dirname(prefix), str(tmp_path / "local"))
    rows = tmp_path / "local" / "tables" / "items" / "rows.npy"
    data = bytearray(rows.read_bytes())
    data[-3] ^= 0x40
    rows.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"exported model file {rows} is damaged"):
        load_inference_model(str(tmp_path / "local"))
