"""Rec SDK's slicer hooks (``mx_rec.graph.hooks``) and ``ACGPushOpsToDatasetHook``, before ``GraphModifierHook``."""
import numpy as np
import pytest
import tensorflow as tf

from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.graph import ACGPushOpsToDatasetHook as DoorACG, LookupSubgraphSlicerHook as DoorSlicer
from mx_rec.graph.acg_push_ops import ACGPushOpsToDatasetHook
from mx_rec.graph.hooks import LookupSubgraphSlicerHook, OrphanLookupKeySlicerHook
from mx_rec.graph.modifier import GraphModifierHook
from mx_rec.lookup.key_stage import DEDUP_DTYPES, dedup_stage, key_stage

INIT = tf.compat.v1.constant_initializer(0.5)


def _string_pipeline():
    data = {"item": np.array([[b"3", b"4"], [b"5", b"3"]]), "price": np.array([[b"1.5"], [b"2.5"]])}
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(2).repeat()
    iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
    _string_pipeline.initializer = iterator.initializer  # run by tests whose pipeline is not rebuilt
    return iterator.get_next()


def test_doors_of_the_documented_paths():
    assert DoorACG is ACGPushOpsToDatasetHook and DoorSlicer is LookupSubgraphSlicerHook


def test_string_ops_of_a_lookup_run_in_the_pipeline(graph):
    table = create_table(tf.int64, 2, "items", INIT, device_vocabulary_size=20)
    batch = _string_pipeline()
    ids = tf.strings.to_number(batch["item"], out_type=tf.int64, name="item_ids")
    price = tf.strings.to_number(batch["price"], out_type=tf.float32, name="price")
    out = tf.reduce_sum(sparse_lookup(table, ids, modify_graph=True)) + tf.reduce_sum(price)
    slicer = LookupSubgraphSlicerHook(op_types=["StringToNumber"])
    acg = ACGPushOpsToDatasetHook()
    hooks = [slicer, acg, GraphModifierHook()]
    with tf.compat.v1.train.MonitoredSession(hooks=hooks) as sess:
        assert sess.run(out) == pytest.approx(4 * 2 * 0.5 + 4.0)  # 4 ids x dim 2 x 0.5, prices 1.5 + 2.5
    assert [op.name for op in slicer.found["items"]] == ["item_ids"]
    assert acg.found == {"item_ids": "pipeline", "price": "pipeline"}
    # nothing in the step reads the step's copies any more: both ops run in the tf.data map
    assert price.consumers() == [] and ids.consumers() == []


def test_ops_below_an_iterator_without_modify_graph_lookups_stay(graph):
    batch = _string_pipeline()
    price = tf.strings.to_number(batch["price"], out_type=tf.float32, name="price")
    total = tf.reduce_sum(price)
    acg = ACGPushOpsToDatasetHook()
    with tf.compat.v1.train.MonitoredSession(hooks=[acg, GraphModifierHook()]) as sess:
        sess.run(_string_pipeline.initializer)
        assert sess.run(total) == pytest.approx(4.0)
    assert acg.found == {"price": "step"} and price.consumers() == [total.op]


def test_slicer_hook_validates_op_types():
    with pytest.raises(TypeError, match="op_types must be a list"):
        LookupSubgraphSlicerHook(op_types="StringToNumber")
    with pytest.raises(TypeError, match="dump_graph must be a bool"):
        ACGPushOpsToDatasetHook(dump_graph="yes")


def test_orphan_key_stages_stay_in_the_step_instead_of_failing(graph):
    table = create_table(tf.int64, 2, "users", INIT, device_vocabulary_size=20)
    batch = _string_pipeline()
    fed = tf.strings.to_number(batch["item"], out_type=tf.int64)
    total = tf.reduce_sum(sparse_lookup(table, fed, modify_graph=True))
    orphan = tf.compat.v1.placeholder(tf.int64, [3], name="orphan_ids")  # no dataset above these keys
    (unique, _, _) = key_stage("users", dedup_stage, orphan, DEDUP_DTYPES, modify_graph=True, insert=False,
                               name="orphan_stage")
    with pytest.raises(ValueError, match="ids must come from a dataset iterator"):
        with tf.compat.v1.train.MonitoredSession(hooks=[GraphModifierHook()]):
            pass
    orphan_hook = OrphanLookupKeySlicerHook()
    with tf.compat.v1.train.MonitoredSession(hooks=[orphan_hook, GraphModifierHook()]) as sess:
        value, keys = sess.run([total, unique], {orphan: [5, 2, 5]})
    assert value == pytest.approx(4 * 2 * 0.5) and sorted(keys.tolist()) == [2, 5]
    assert orphan_hook.orphans == ["users"]
