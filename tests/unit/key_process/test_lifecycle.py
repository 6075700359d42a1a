"""Feature admission (access_threshold, faae_coefficient) and eviction (EvictHook)."""
import numpy as np
import pytest
import tensorflow as tf

from mx_rec.constants.constants import ASCEND_TIMESTAMP
from mx_rec.core.asc.helper import FeatureSpec, get_asc_insert_func
from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.core.feature_process import EvictHook
from mx_rec.optimizers import gradient_descent, lazy_adam
from mx_rec.util.ops import import_host_pipeline_ops

INIT = tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=11)
DEFAULT = 0.25


def _sgd_model(table, config, serving_default=DEFAULT):
    ids = tf.compat.v1.placeholder(tf.int64, [None])
    emb = sparse_lookup(table, ids, access_and_evict_config=config, serving_default_value=serving_default)
    train = gradient_descent.create_hash_optimizer(0.5).minimize(tf.reduce_sum(emb), var_list=[table.variable])
    return ids, emb, train


def _row_of(table, key):
    keys, rows = table.backend.items()
    return dict(zip(keys.tolist(), rows.tolist())).get(key)


def test_key_gets_a_row_on_its_third_sighting(graph):
    table = create_table(tf.int64, 4, "adm", INIT, device_vocabulary_size=10)
    ids, emb, train = _sgd_model(table, {"access_threshold": 3})
    init_row = table.initial_values(np.array([7]))[0]
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        for sighting in (1, 2):
            out, _ = sess.run([emb, train], {ids: [7]})
            np.testing.assert_array_equal(out[0], np.full(4, DEFAULT, np.float32), err_msg=f"sighting {sighting}")
            assert table.size() == 0
        out, _ = sess.run([emb, train], {ids: [7]})  # third sighting: admitted, looked up, trained
        np.testing.assert_array_equal(out[0], init_row)
        out = sess.run(emb, {ids: [7]})
        np.testing.assert_allclose(out[0], init_row - 0.5, rtol=1e-6)
    assert table.size() == 1


def test_faae_coefficient_and_repeats_within_a_batch_count(graph):
    table = create_table(tf.int64, 4, "faae", INIT, device_vocabulary_size=10)
    ids, emb, _ = _sgd_model(table, {"access_threshold": 3, "faae_coefficient": 2})
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        first = sess.run(emb, {ids: [1, 2, 2]})   # 1: count 2 (default); 2: count 4 (admitted)
        np.testing.assert_array_equal(first[0], np.full(4, DEFAULT, np.float32))
        np.testing.assert_array_equal(first[1], table.initial_values(np.array([2]))[0])
        second = sess.run(emb, {ids: [1]})          # 1: count 4
        np.testing.assert_array_equal(second[0], table.initial_values(np.array([1]))[0])
    counts = dict(zip(*[a.tolist() for a in table.stats.items()[:2]]))
    assert counts == {1: 4, 2: 4}


def test_feature_spec_thresholds_and_eval_lookups_do_not_count(graph):
    table = create_table(tf.int64, 4, "spec_adm", INIT, device_vocabulary_size=10)
    spec = FeatureSpec("item", table_name="spec_adm", access_threshold=2)
    data = tf.data.Dataset.from_tensor_slices({"item": np.array([[5], [5], [5]], np.int64)})
    it = tf.compat.v1.data.make_initializable_iterator(data.map(get_asc_insert_func([spec], is_training=True)))
    train_emb = sparse_lookup(table, spec, batch=it.get_next())
    eval_ids = tf.compat.v1.placeholder(tf.int64, [None])
    eval_emb = sparse_lookup(table, eval_ids, is_train=False)
    with tf.compat.v1.Session() as sess:
        sess.run([tf.compat.v1.global_variables_initializer(), it.initializer])
        for _ in range(5):
            np.testing.assert_array_equal(sess.run(eval_emb, {eval_ids: [5, 5, 6]}), np.zeros((3, 4), np.float32))
        assert table.stats is not None and len(table.stats) == 0
        np.testing.assert_array_equal(sess.run(train_emb), np.zeros((1, 4), np.float32))  # count 1
        np.testing.assert_array_equal(sess.run(train_emb)[0], table.initial_values(np.array([5]))[0])  # count 2
    assert table.size() == 1


def test_set_threshold_while_training(graph):
    table = create_table(tf.int64, 4, "thr", INIT, device_vocabulary_size=10)
    ids, emb, _ = _sgd_model(table, {"access_threshold": 5})
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(emb, {ids: [3]})
        import_host_pipeline_ops().set_threshold("thr", 2)
        np.testing.assert_array_equal(sess.run(emb, {ids: [3]})[0], table.initial_values(np.array([3]))[0])
    with pytest.raises(ValueError, match="no table named 'nope'"):
        import_host_pipeline_ops().set_threshold("nope", 1)


def test_eviction_removes_stale_keys_reuses_rows_and_restarts_returning_keys(graph):
    table = create_table(tf.int64, 4, "ev", INIT, device_vocabulary_size=10)
    ids = tf.compat.v1.placeholder(tf.int64, [None])
    stamp = tf.compat.v1.placeholder(tf.int64, [])
    tf.compat.v1.add_to_collection(ASCEND_TIMESTAMP, stamp)
    emb = sparse_lookup(table, ids, access_and_evict_config={"access_threshold": 1, "eviction_threshold": 50})
    opt = lazy_adam.create_hash_optimizer(0.1)
    train = opt.minimize(tf.reduce_sum(emb), var_list=[table.variable])
    m_slot = opt.get_slot(table.variable, "m")
    hook = EvictHook(evict_enable=True, evict_step_interval=1)
    with tf.compat.v1.train.MonitoredTrainingSession(hooks=[hook]) as sess:
        sess.run(train, {ids: [1, 2], stamp: 100})
        row1 = _row_of(table, 1)
        sess.run(train, {ids: [2, 3], stamp: 130})   # newest 130: key 1 (100) is 30 s old, kept
        assert table.size() == 3 and hook.evicted == 0
        sess.run(train, {ids: [2, 3], stamp: 160})   # key 1 is 60 s old: evicted after this step
        assert table.size() == 2 and _row_of(table, 1) is None and hook.evicted == 1
        assert np.all(sess.run(m_slot)[row1] == 0.0)  # its slot was reset
        out = sess.run(emb, {ids: [4], stamp: 170})   # a new key reuses the freed row
        assert _row_of(table, 4) == row1
        np.testing.assert_array_equal(out[0], table.initial_values(np.array([4]))[0])
        out = sess.run(emb, {ids: [1], stamp: 170})   # key 1 returns: initial value again, count from 0
        np.testing.assert_array_equal(out[0], table.initial_values(np.array([1]))[0])
    counts = dict(zip(*[a.tolist() for a in table.stats.items()[:2]]))
    assert counts[1] == 1


def test_eviction_uses_the_pipelines_timestamp_feature(graph):
    table = create_table(tf.int64, 4, "ev_spec", INIT, device_vocabulary_size=10)
    specs = [FeatureSpec("item", table_name="ev_spec", access_threshold=1, eviction_threshold=10),
             FeatureSpec("timestamp", is_timestamp=True)]
    data = tf.data.Dataset.from_tensor_slices({"item": np.array([[1], [2], [2]], np.int64),
                                               "timestamp": np.array([[0], [5], [30]], np.int64)})
    it = tf.compat.v1.data.make_one_shot_iterator(data.map(get_asc_insert_func(specs, is_training=True)))
    it.get_next()
    emb = sparse_lookup(table, specs[0])
    hook = EvictHook(evict_enable=True, evict_step_interval=3)
    with tf.compat.v1.train.MonitoredTrainingSession(hooks=[hook]) as sess:
        for _ in range(3):
            sess.run(emb)
    assert table.stats.newest == 30 and hook.evicted == 1 and table.size() == 1


def test_time_interval_fires_by_the_clock(graph):
    clock = iter([0.0, 10.0, 20.0, 100.0, 100.0, 100.0])
    table = create_table(tf.int64, 4, "ev_t", INIT, device_vocabulary_size=10)
    stamp = import_host_pipeline_ops().return_timestamp(tf.constant(1000, tf.int64))
    emb = sparse_lookup(table, tf.constant([1], tf.int64), access_and_evict_config={
        "access_threshold": 0, "eviction_threshold": 5})
    hook = EvictHook(evict_enable=True, evict_time_interval=50, _clock=lambda: next(clock))
    with tf.compat.v1.train.MonitoredTrainingSession(hooks=[hook]) as sess:
        sess.run([emb, stamp])  # clock 10: not yet
        assert hook._last == 0.0
        sess.run(emb)           # clock 20: not yet
        sess.run(emb)           # clock 100: evicts (nothing stale), resets the timer
        assert hook._last == 100.0


def test_lifecycle_errors_name_the_table(graph):
    table = create_table(tf.int64, 4, "bad", INIT)
    ids = tf.constant([1], tf.int64)
    with pytest.raises(ValueError, match="table 'bad': eviction_threshold needs access_threshold"):
        sparse_lookup(table, ids, access_and_evict_config={"eviction_threshold": 10})
    with pytest.raises(ValueError, match=r"unknown access_and_evict_config key\(s\) \['threshold'\]"):
        sparse_lookup(table, ids, access_and_evict_config={"threshold": 10})
    with pytest.raises(ValueError, match="table 'bad' evicts .* but its lookup has no timestamp"):
        sparse_lookup(table, ids, access_and_evict_config={"access_threshold": 1, "eviction_threshold": 10})
    with pytest.raises(ValueError, match="table 'bad': admission/eviction settings .* differ"):
        sparse_lookup(table, ids, access_and_evict_config={"access_threshold": 2})
