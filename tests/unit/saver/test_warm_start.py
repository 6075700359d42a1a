"""Warm start from several checkpoints (Rec SDK's custom ``WarmStartSettings``): tables chosen per checkpoint
by name or regex, dense variables by TF's rules, a table no checkpoint holds starts fresh and is logged;
in a Session script (``tf.compat.v1.train.warm_start`` + ``warm_start_sparse``) and in an Estimator."""
import logging

import numpy as np
import pytest
import tensorflow as tf

from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.optimizers import lazy_adam
from mx_rec.saver.layout import CheckpointError
from mx_rec.saver.warm_start import SparseRestoreHook, warm_start_sparse
from mx_rec.system.log import logger
from tests.graphs import fresh_graph

INIT = tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=1)
TABLES = ("user_table", "item_table", "other")
IDS = [1, 2, 3]


def _model(names, ids, dense_value=0.0, lr=0.1):
    """Tables ``names`` looked up at ``ids``, dense ``dense/w`` [2] and ``dense/b`` [] (``dense_value`` + 0, + 1)."""
    tables = {n: create_table(tf.int64, 4, n, INIT, device_vocabulary_size=50) for n in names}
    w = tf.compat.v1.get_variable("dense/w", initializer=tf.constant([dense_value, dense_value]))
    b = tf.compat.v1.get_variable("dense/b", initializer=tf.constant(dense_value + 1))
    emb = tf.add_n([tf.reduce_sum(sparse_lookup(t, ids)) for t in tables.values()])
    loss = emb * (tf.reduce_sum(w) + b)
    step = tf.compat.v1.train.get_or_create_global_step()
    train = lazy_adam.create_hash_optimizer(lr).minimize(loss, var_list=[t.variable for t in tables.values()],
                                                         global_step=step)
    return tables, (w, b), train


def _snapshot(sess, table):
    keys, rows = table.backend.items()
    return dict(zip(keys.tolist(), np.asarray(sess.run(table.variable)[rows]).tolist()))


def _checkpoint(path, dense_value, steps):
    """Train ``steps`` steps from a distinct start and save; returns {table: snapshot} and (w, b)."""
    with fresh_graph():
        ids = tf.compat.v1.placeholder(tf.int64, [None])
        tables, dense, train = _model(TABLES, ids, dense_value)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for _ in range(steps):
                sess.run(train, {ids: IDS})
            tf.compat.v1.train.Saver().save(sess, str(path / "model"), global_step=steps)
            return {n: _snapshot(sess, t) for n, t in tables.items()}, sess.run(dense)


@pytest.fixture
def log(caplog):
    """caplog, also fed by the SDK's logger (which does not propagate to the root logger)."""
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.INFO)
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("warm")
    return {"a": (root / "a", *_checkpoint(root / "a", 5.0, 2)), "b": (root / "b", *_checkpoint(root / "b", 7.0, 3))}


def _warm_session(names, *warm_args):
    """A fresh graph with tables ``names``, warm-started as ``tf.compat.v1.train.warm_start(*warm_args)``."""
    ids = tf.compat.v1.placeholder(tf.int64, [None])
    tables, dense, _ = _model(names, ids)
    tf.compat.v1.train.warm_start(*warm_args)
    sess = tf.compat.v1.Session()
    sess.run(tf.compat.v1.global_variables_initializer())
    return sess, tables, dense, warm_start_sparse(sess)


def test_session_two_checkpoints_by_name_and_regex(sources, log):
    (a, a_tables, a_dense), (b, b_tables, _) = sources["a"], sources["b"]
    with fresh_graph():
        # a: every table and every trainable dense variable; b: user_* (regex) and item_table (name) replace a's
        sess, tables, dense, used = _warm_session(TABLES + ("fresh_t",), [str(a), str(b)],
                                                  [".*", ["user_.*", "item_table"]])
        assert _snapshot(sess, tables["user_table"]) == b_tables["user_table"]
        assert _snapshot(sess, tables["item_table"]) == b_tables["item_table"]
        assert _snapshot(sess, tables["other"]) == a_tables["other"]
        assert _snapshot(sess, tables["fresh_t"]) == {}
        np.testing.assert_array_equal(sess.run(dense[0]), a_dense[0])
        assert sess.run(dense[1]) == a_dense[1]
        assert sess.run(tf.compat.v1.train.get_global_step()) == 0  # not trainable: TF's '.*' leaves it
        assert used["user_table"].startswith(str(b)) and used["other"].startswith(str(a))
        assert "table 'fresh_t' is in none of the warm-start checkpoints: it starts fresh" in log.text
        assert warm_start_sparse(sess) == {}  # once per graph
        sess.close()


def test_partial_restore_and_dense_rules(sources, log):
    (a, a_tables, a_dense), (b, _, b_dense) = sources["a"], sources["b"]
    with fresh_graph():
        # a: the table user_table and the dense scope dense/w (a list: TF's GLOBAL_VARIABLES scopes);
        # b: the string "dense/b" matches no table: TF's TRAINABLE_VARIABLES scope, dense only
        sess, tables, dense, _ = _warm_session(TABLES, [str(a), str(b)], [["user_table", "dense/w"], "dense/b"], None,
                                               [{}, {}])
        assert _snapshot(sess, tables["user_table"]) == a_tables["user_table"]
        assert _snapshot(sess, tables["item_table"]) == {} and _snapshot(sess, tables["other"]) == {}
        np.testing.assert_array_equal(sess.run(dense[0]), a_dense[0])
        assert sess.run(dense[1]) == b_dense[1]
        for name in ("item_table", "other"):
            assert f"table '{name}' is in none of the warm-start checkpoints" in log.text
        sess.close()
    with fresh_graph():  # a table-only string: no dense variable is warm-started from that checkpoint
        sess, tables, dense, _ = _warm_session(TABLES, str(a), "item_.*")
        assert _snapshot(sess, tables["item_table"]) == a_tables["item_table"]
        np.testing.assert_array_equal(sess.run(dense[0]), [0.0, 0.0])
        sess.close()


def test_bad_settings_and_damaged_source_are_errors(sources):
    a = sources["a"][0]
    with fresh_graph():
        ids = tf.compat.v1.placeholder(tf.int64, [None])
        _model(TABLES, ids)
        with pytest.raises(ValueError, match="list of 2 entries"):
            tf.compat.v1.train.warm_start([str(a), str(a)], ".*")
        with pytest.raises(ValueError, match=r"table\(s\) \['user_table'\]"):
            tf.compat.v1.train.warm_start(str(a), ".*", None, {"user_table": "x"})
    damaged = a.parent / "damaged"
    _checkpoint(damaged, 1.0, 1)
    shard = damaged / "model-1-mxrec-sparse" / "other" / "shard-00000-of-00001.npz"
    data = bytearray(shard.read_bytes())
    data[-40] ^= 0xFF
    shard.write_bytes(bytes(data))
    with fresh_graph():
        ids = tf.compat.v1.placeholder(tf.int64, [None])
        _model(TABLES, ids)
        with pytest.raises(CheckpointError, match="shard-00000-of-00001.npz is damaged"):
            tf.compat.v1.train.warm_start(str(damaged), ".*")


def test_estimator_warm_start_settings(sources, tmp_path, log):
    (a, a_tables, a_dense), (b, b_tables, _) = sources["a"], sources["b"]

    def input_fn():
        return tf.data.Dataset.from_tensors(({"ids": tf.constant(IDS, tf.int64)}, tf.constant(0.0))).repeat()

    def model_fn(features, labels, mode):
        tables, _, train = _model(TABLES + ("fresh_t",), features["ids"], lr=0.0)  # lr 0: rows stay as warm-started
        if mode == tf.estimator.ModeKeys.EVAL:
            rows = sparse_lookup(tables["item_table"], features["ids"], is_train=False, name="eval_items")
            return tf.estimator.EstimatorSpec(mode, loss=tf.constant(0.0), eval_metric_ops={
                "item_sum": tf.compat.v1.metrics.mean(tf.reduce_sum(rows))})
        return tf.estimator.EstimatorSpec(mode, loss=tf.constant(0.0), train_op=train)

    settings = tf.estimator.WarmStartSettings(ckpt_to_initialize_from=[str(a), str(b)],
                                              vars_to_warm_start=[".*", "item_table"],
                                              var_name_to_prev_var_name=[{}, {}])
    with fresh_graph():
        estimator = tf.estimator.Estimator(model_fn, model_dir=str(tmp_path / "est"), warm_start_from=settings)
        estimator.train(input_fn, max_steps=1)
        assert "table 'fresh_t' is in none of the warm-start checkpoints" in log.text
        latest = estimator.latest_checkpoint()
        fresh = tf.estimator.Estimator(model_fn, model_dir=str(tmp_path / "eval"), warm_start_from=settings)
        metrics = fresh.evaluate(input_fn, steps=1)  # no checkpoint in model_dir: evaluate warm-starts too
        assert metrics["item_sum"] == pytest.approx(sum(sum(r) for r in b_tables["item_table"].values()), rel=1e-5)
    with fresh_graph():
        ids = tf.compat.v1.placeholder(tf.int64, [None])
        tables, dense, _ = _model(TABLES + ("fresh_t",), ids)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().restore(sess, latest)
            assert _snapshot(sess, tables["item_table"]) == b_tables["item_table"]
            for name in ("user_table", "other"):
                assert _snapshot(sess, tables[name]) == a_tables[name]
            assert set(_snapshot(sess, tables["fresh_t"])) == set(IDS)  # fresh rows of the step's keys
            np.testing.assert_array_equal(sess.run(dense[0]), a_dense[0])


class _Snapshot(tf.compat.v1.train.SessionRunHook):
    """Records the tables' rows right after the session is created (after the hooks before it)."""

    def __init__(self, tables):
        self.tables, self.rows = tables, None

    def after_create_session(self, session, coord):
        self.rows = {n: _snapshot(session, t) for n, t in self.tables.items()}


def test_monitored_session_warm_starts_only_a_fresh_job(sources, tmp_path):
    a, a_tables, _ = sources["a"]
    ckpt_dir = str(tmp_path / "mts")
    for run in range(2):  # the same script twice: the second run resumes from checkpoint_dir
        with fresh_graph():
            ids = tf.compat.v1.placeholder(tf.int64, [None])
            tables, _, train = _model(TABLES, ids)
            tf.compat.v1.train.warm_start(str(a), "user_table")
            seen = _Snapshot(tables)
            with tf.compat.v1.train.MonitoredTrainingSession(
                    checkpoint_dir=ckpt_dir, save_checkpoint_steps=1,
                    hooks=[SparseRestoreHook(ckpt_dir), seen]) as sess:
                if run == 0:
                    assert seen.rows["user_table"] == a_tables["user_table"] and seen.rows["other"] == {}
                    sess.run(train, {ids: IDS})
                else:
                    assert seen.rows["user_table"] != a_tables["user_table"]  # the job's own checkpoint
                    assert set(seen.rows["other"]) == set(IDS)
