"""Modify-graph mode and multi-lookup on one process: the same numbers as FeatureSpec mode and as
separate lookups, the rebuilt pipeline, and the errors."""
import numpy as np
import pytest
import tensorflow as tf

from mx_rec.config.initializer import ConfigInitializer
from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.graph.modifier import DUMP_DIR_ENV, GraphModifierHook, modify_graph_and_start_emb_cache
from mx_rec.optimizers import lazy_adam
from mx_rec.util.variable import get_dense_and_sparse_variable
from tests.graphs import fresh_graph
from tests.jobs.feed_mode_job import train


def _run(feed: str, lookups: int = 1, multi: bool = False, ddr: bool = False, hook: bool = False) -> dict:
    with fresh_graph(use_multi_lookup=multi):
        result = train(feed, lookups, ddr, steps=30, hook=hook)
    order = np.argsort(result["keys"])
    return {**result, "keys": result["keys"][order], "embeddings": result["embeddings"][order],
            "m": result["m"][order], "v": result["v"][order]}


def _assert_same(a: dict, b: dict, atol: float) -> None:
    assert len(a["losses"]) == len(b["losses"]) == 30
    np.testing.assert_allclose(a["losses"], b["losses"], atol=atol, rtol=0)
    np.testing.assert_array_equal(a["keys"], b["keys"])
    for name in ("embeddings", "m", "v"):
        np.testing.assert_allclose(a[name], b[name], atol=atol, rtol=0, err_msg=name)


@pytest.mark.parametrize("ddr", [False, True], ids=["hbm", "ddr"])
def test_modify_graph_trains_exactly_like_featurespec_mode(ddr):
    featurespec, modified = _run("featurespec", ddr=ddr), _run("modify", ddr=ddr)
    assert featurespec["losses"][-1] < featurespec["losses"][0], "the model must learn something"
    _assert_same(featurespec, modified, atol=1e-6)


def test_graph_modifier_hook_trains_like_the_explicit_call():
    _assert_same(_run("modify"), _run("modify", hook=True), atol=0)


def test_graph_modifier_hook_starts_pipelines_modified_before_it(graph):
    table = _table()
    _, batch = _iterator_batch()
    total = tf.reduce_sum(sparse_lookup(table, batch["ids"], modify_graph=True)) + tf.reduce_sum(batch["y"])
    modify_graph_and_start_emb_cache()  # an explicit call, then the hook as well: nothing is modified twice
    with tf.compat.v1.train.MonitoredSession(hooks=[GraphModifierHook()]) as sess:
        assert sess.run(total) == pytest.approx(4.0)


@pytest.mark.parametrize("feed", ["featurespec", "modify"])
def test_multi_lookup_merges_two_lookups_with_the_same_numbers(feed):
    separate, merged = _run(feed, lookups=2), _run(feed, lookups=2, multi=True)
    assert separate["built_lookups"] == 2 and merged["built_lookups"] == 1
    _assert_same(separate, merged, atol=1e-6)
    _assert_same(_run(feed, lookups=1), merged, atol=1e-6)  # two half-width lookups == one of all fields


def _iterator_batch(n: int = 8):
    ids = np.arange(n * 4, dtype=np.int64).reshape(n, 4) % 7
    dataset = tf.data.Dataset.from_tensor_slices({"ids": ids, "y": np.ones(n, np.float32)}).batch(4)
    iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
    return iterator, iterator.get_next()


def _table(name: str = "t"):
    lazy_adam.create_hash_optimizer(0.1)
    return create_table(tf.int64, 4, name, tf.compat.v1.zeros_initializer(), device_vocabulary_size=100)


def test_replayed_ids_expression_and_target_batch(graph):
    table = _table()
    iterator, batch = _iterator_batch()
    ids = tf.cast(batch["ids"][:, 1:3], tf.int64) * 3  # any stateless expression of the iterator's outputs
    emb = sparse_lookup(table, ids, modify_graph=True)
    total = tf.reduce_sum(emb) + tf.reduce_sum(batch["y"])
    modify_graph_and_start_emb_cache()
    config = ConfigInitializer.get_instance().train_params_config
    target = config.get_target_batch(True)
    assert set(target) == {"ids", "y"}
    with tf.compat.v1.Session() as sess:
        sess.run([tf.compat.v1.global_variables_initializer(), config.get_initializer(True)])
        value, seen = sess.run([total, target["ids"]])
    assert value == pytest.approx(4.0)  # zero-initialised rows: only the labels count
    np.testing.assert_array_equal(seen, np.arange(16).reshape(4, 4) % 7)
    assert table.size() == len(np.unique((np.arange(16).reshape(4, 4) % 7)[:, 1:3] * 3))


def test_dump_graph_writes_before_and_after(graph, tmp_path, monkeypatch):
    monkeypatch.setenv(DUMP_DIR_ENV, str(tmp_path))
    table = _table()
    _, batch = _iterator_batch()
    sparse_lookup(table, batch["ids"], modify_graph=True)
    modify_graph_and_start_emb_cache(dump_graph=True)
    before = (tmp_path / "graph_before_modify.pbtxt").read_text()
    after = (tmp_path / "graph_after_modify.pbtxt").read_text()
    assert "IteratorGetNext" in before and "mx_rec_pipeline" not in before
    assert "mx_rec_pipeline" in after and after.count('op: "MakeIterator"') == before.count('op: "MakeIterator"') + 1


def test_ids_not_from_an_iterator_are_rejected_naming_the_table_and_op(graph):
    table = _table("users")
    ids = tf.compat.v1.placeholder(tf.int64, [4, 2], name="user_ids")
    with pytest.raises(ValueError, match=r"table 'users'.*'user_ids' \(op type Placeholder\)"):
        sparse_lookup(table, ids, modify_graph=True)
    _, batch = _iterator_batch()
    shift = tf.Variable(1, dtype=tf.int64, name="shift")
    with pytest.raises(ValueError, match=r"table 'users'.*shift"):
        sparse_lookup(table, batch["ids"] + shift, modify_graph=True)


def test_running_before_the_modifier_says_to_call_it(graph):
    table = _table("items")
    iterator, batch = _iterator_batch()
    emb = sparse_lookup(table, batch["ids"], modify_graph=True)
    with tf.compat.v1.Session() as sess:
        sess.run([tf.compat.v1.global_variables_initializer(), iterator.initializer])
        with pytest.raises(tf.errors.OpError, match=r"table 'items'.*modify_graph_and_start_emb_cache"):
            sess.run(emb)


def test_one_shot_iterator_is_rejected_with_the_fix(graph):
    table = _table()
    dataset = tf.data.Dataset.from_tensor_slices(np.arange(8, dtype=np.int64).reshape(4, 2)).batch(2)
    ids = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
    sparse_lookup(table, ids, modify_graph=True)
    with pytest.raises(ValueError, match="make_initializable_iterator"):
        modify_graph_and_start_emb_cache()


def test_unbuilt_merged_lookup_stops_the_step_with_the_fix():
    with fresh_graph(use_multi_lookup=True):
        table = _table("clicks")
        emb = sparse_lookup(table, tf.constant([1, 2], tf.int64))
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            with pytest.raises(tf.errors.OpError, match=r"table 'clicks'.*never built.*build_pending_lookups"):
                sess.run(emb)
        get_dense_and_sparse_variable()  # builds them
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            assert sess.run(emb).shape == (2, 4)


def test_more_than_128_merged_lookups_of_one_table_are_rejected():
    with fresh_graph(use_multi_lookup=True):
        table = _table("wide")
        for i in range(128):
            sparse_lookup(table, tf.constant([i], tf.int64))
        with pytest.raises(ValueError, match=r"table 'wide': more than 128 lookups"):
            sparse_lookup(table, tf.constant([0], tf.int64))
        assert get_dense_and_sparse_variable() and table.built_lookups == 1
