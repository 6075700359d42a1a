"""Tables whose rows and / or optimizer slots are kept in float16 / bfloat16 (``storage_dtype``, ``slot_dtype``):
float32 lookups, gradients and lazy Adam math, float32 checkpoints, HBM only."""
import numpy as np
import pytest
import tensorflow as tf

from mx_rec.config.initializer import ConfigInitializer
from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.inference import export_local, load_inference_model, set_prediction
from mx_rec.kernels import library
from mx_rec.optimizers import adagrad, lazy_adam
from tests.graphs import fresh_graph

B, F, D, STEPS, VOCAB = 16, 3, 8, 6, 64
INIT = tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=3)
REL = {tf.float32: 2.0 ** -23, tf.float16: 2.0 ** -11, tf.bfloat16: 2.0 ** -8}  # unit roundoff


def _batches(keys=40):
    rng = np.random.default_rng(11)
    ids = rng.integers(0, keys, (STEPS, B, F)).astype(np.int64)
    return ids, rng.normal(size=(STEPS, B)).astype(np.float32), rng.normal(size=(F, D)).astype(np.float32)


def _model(storage=None, slots=None, name="c", vocab=VOCAB):
    table = create_table(tf.int64, D, name, INIT, device_vocabulary_size=vocab, storage_dtype=storage,
                         slot_dtype=slots)
    ids = tf.compat.v1.placeholder(tf.int64, [B, F])
    y = tf.compat.v1.placeholder(tf.float32, [B])
    _, _, w = _batches()
    emb = sparse_lookup(table, ids)
    loss = tf.reduce_mean(tf.square(tf.reduce_sum(emb * w, axis=[1, 2]) - y))
    opt = lazy_adam.create_hash_optimizer(0.05)
    grads = opt.compute_gradients(loss, var_list=[table.variable])
    step = tf.compat.v1.train.get_or_create_global_step()
    return table, ids, y, emb, grads, opt.apply_gradients(grads, global_step=step)


def _rows(sess, table):
    """key -> (row, m, v) as float32, from the session's variables."""
    keys, rows = table.backend.items()
    values = [np.asarray(x, np.float32) for x in sess.run(table.row_variables())]
    return {int(k): tuple(x[r] for x in values) for k, r in zip(keys, rows)}


def _train(storage=None, slots=None, fused=True, monkeypatch=None):
    monkeypatch.setenv(library.ENV_NAME, "1" if fused else "0")
    ids_all, labels, _ = _batches()
    with fresh_graph() as graph:
        table, ids, y, emb, grads, train = _model(storage, slots)
        (grad, _), = grads
        assert emb.dtype == tf.float32 and grad.values.dtype == tf.float32  # the gradient is not rounded
        assert [v.dtype.base_dtype for v in table.row_variables()] == [table.storage_dtype] + [table.slot_dtype] * 2
        assert ("MxrecSparseLazyAdam" in {op.type for op in graph.get_operations()}) == fused
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for step in range(STEPS):
                sess.run(train, {ids: ids_all[step], y: labels[step]})
            return _rows(sess, table)


@pytest.mark.parametrize("storage,slots", [(tf.bfloat16, tf.bfloat16), (tf.float16, tf.bfloat16),
                                           (None, tf.bfloat16)])
def test_compact_table_trains_like_float32_and_fused_equals_tf_ops(storage, slots, monkeypatch):
    fused = _train(storage, slots, True, monkeypatch)
    plain = _train(storage, slots, False, monkeypatch)
    exact = _train(None, None, True, monkeypatch)
    assert fused.keys() == plain.keys() == exact.keys()
    for key in fused:
        for a, b in zip(fused[key], plain[key]):
            np.testing.assert_array_equal(a, b)
    rel = max(REL[storage or tf.float32], REL[slots])
    for part in range(3):  # within a few storage roundings a step of the float32 numbers
        narrow = np.stack([fused[k][part] for k in sorted(fused)])
        wide = np.stack([exact[k][part] for k in sorted(exact)])
        assert 0 < np.abs(narrow - wide).max() <= 4 * STEPS * rel * np.abs(wide).max()
        if part == 0 and storage is not None:  # the rows really are rounded to the storage type
            assert np.array_equal(narrow, narrow.astype(storage.as_numpy_dtype).astype(np.float32))


def test_compact_state_takes_the_bytes_of_its_dtypes(graph):
    table, *_ = _model(tf.bfloat16, tf.bfloat16, "all_bf16")
    mixed, *_ = _model(None, tf.bfloat16, "rows_f32")
    plain, *_ = _model(None, None, "all_f32")
    rows = VOCAB + 1  # the scratch row
    per_key = {t.table_name: sum(v.dtype.size * v.shape.num_elements() for v in t.row_variables()) / rows / D
               for t in (table, mixed, plain)}
    assert per_key == {"all_bf16": 2 + 2 * 2, "rows_f32": 4 + 2 * 2, "all_f32": 4 + 2 * 4}  # bytes per value


def _save(tmp_path, storage, slots):
    ids_all, labels, _ = _batches()
    with fresh_graph():
        table, ids, y, _, _, train = _model(storage, slots)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for step in range(3):
                sess.run(train, {ids: ids_all[step], y: labels[step]})
            prefix = tf.compat.v1.train.Saver().save(sess, str(tmp_path / "model"), global_step=3)
            return prefix, _rows(sess, table)


def _restore(prefix, storage, slots):
    with fresh_graph():
        table, *_ = _model(storage, slots)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().restore(sess, prefix)
            return _rows(sess, table)


def _round(values, dtype):
    return values if dtype is None else values.astype(dtype.as_numpy_dtype).astype(np.float32)


@pytest.mark.parametrize("saved,restored", [((tf.bfloat16, tf.float16), (None, None)),
                                            ((None, None), (tf.bfloat16, tf.float16))])
def test_checkpoints_hold_float32_and_restore_across_storage_dtypes(tmp_path, saved, restored):
    prefix, before = _save(tmp_path, *saved)
    shard = np.load(f"{prefix}-mxrec-sparse/c/shard-00000-of-00001.npz")
    assert shard["embeddings"].dtype == np.float32 and shard["slot:LazyAdam/m"].dtype == np.float32
    after = _restore(prefix, *restored)
    assert after.keys() == before.keys()
    for key, (row, m, v) in before.items():
        np.testing.assert_array_equal(after[key][0], _round(row, restored[0]))
        np.testing.assert_array_equal(after[key][1], _round(m, restored[1]))
        np.testing.assert_array_equal(after[key][2], _round(v, restored[1]))


def test_ddr_mode_and_other_dtypes_are_refused_naming_the_table(graph):
    lazy_adam.create_hash_optimizer(0.01)
    with pytest.raises(ValueError, match="table 'ddr': storage_dtype=float16 / slot_dtype=float32 is for HBM tables "
                                         "only; in DDR/SSD mode \\(host_vocabulary_size > 0\\)"):
        create_table(tf.int64, D, "ddr", INIT, device_vocabulary_size=8, host_vocabulary_size=64,
                     storage_dtype=tf.float16)
    with pytest.raises(TypeError, match="table 'bad': slot_dtype must be None, value_dtype \\(float32\\), "
                                        "tf.float16 or tf.bfloat16, got int32"):
        create_table(tf.int64, D, "bad", INIT, slot_dtype=tf.int32)
    with pytest.raises(TypeError, match="table 'wide': storage_dtype=bfloat16 needs value_dtype=tf.float32"):
        create_table(tf.int64, D, "wide", INIT, value_dtype=tf.float64, storage_dtype=tf.bfloat16)


def test_optimizers_without_float32_math_on_compact_storage_are_refused(graph):
    before = adagrad.create_hash_optimizer(0.1, name="EarlyAdagrad")
    with pytest.raises(TypeError, match="table 'early' keeps rows as bfloat16 and slots as float32, which only hash "
                                        "lazy Adam updates .* optimizer 'EarlyAdagrad'"):
        create_table(tf.int64, D, "early", INIT, device_vocabulary_size=8, storage_dtype=tf.bfloat16)
    ConfigInitializer.get_instance().hash_optimizers.remove(before)  # as if made after the tables
    table = create_table(tf.int64, D, "late", INIT, device_vocabulary_size=8, slot_dtype=tf.float16)
    loss = tf.reduce_sum(sparse_lookup(table, tf.constant([1, 2], tf.int64)))
    opt = adagrad.create_hash_optimizer(0.1, name="LateAdagrad")
    grads = opt.compute_gradients(loss, var_list=[table.variable])
    with pytest.raises(TypeError, match="table 'late' keeps rows as float32 and slots as float16, .* 'LateAdagrad'"):
        opt.apply_gradients(grads)


def test_dynamic_expansion_grows_compact_rows_and_slots_with_the_same_numbers():
    ids_all, labels, _ = _batches(keys=150)  # more keys than the 64 rows an expanding table starts with
    results = []
    for expansion in (False, True):
        with fresh_graph(use_dynamic_expansion=expansion):
            table, ids, y, _, _, train = _model(tf.bfloat16, tf.float16, vocab=256)
            with tf.compat.v1.Session() as sess:
                sess.run(tf.compat.v1.global_variables_initializer())
                for step in range(STEPS):
                    sess.run(train, {ids: ids_all[step], y: labels[step]})
                shapes = [sess.run(tf.shape(v))[0] for v in table.row_variables()]
                results.append((_rows(sess, table), shapes, [v.dtype.base_dtype for v in table.row_variables()]))
    (fixed, _, _), (grown, shapes, dtypes) = results
    assert dtypes == [tf.bfloat16, tf.float16, tf.float16] and len(set(shapes)) == 1 and 64 < shapes[0] < 257
    assert fixed.keys() == grown.keys()
    for key in fixed:
        for a, b in zip(fixed[key], grown[key]):
            np.testing.assert_array_equal(a, b)


def test_export_reads_float32_rows_and_predicts_like_the_session(graph, tmp_path):
    ids_all, labels, w = _batches()
    table, ids, y, _, _, train = _model(tf.bfloat16, tf.bfloat16)
    prediction = tf.reduce_sum(sparse_lookup(table, ids, is_train=False, name="serve") * w, axis=[1, 2])
    set_prediction(prediction, {"ids": ids, "y": y})
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        for step in range(3):
            sess.run(train, {ids: ids_all[step], y: labels[step]})
        prefix = tf.compat.v1.train.Saver().save(sess, str(tmp_path / "ckpt" / "model"), global_step=3)
        expected = sess.run(prediction, {ids: ids_all[3]})
    export_local(prefix, str(tmp_path / "local"))
    assert np.load(tmp_path / "local" / "tables" / "c" / "rows.npy").dtype == np.float32
    model = load_inference_model(str(tmp_path / "local"))
    np.testing.assert_allclose(model.predict({"ids": ids_all[3]}), expected, atol=1e-6, rtol=0)


def test_eviction_resets_half_rows_and_slots_and_reuses_them(graph):
    from mx_rec.constants.constants import ASCEND_TIMESTAMP
    from mx_rec.core.feature_process import EvictHook

    table = create_table(tf.int64, D, "evicting", INIT, device_vocabulary_size=8, storage_dtype=tf.bfloat16,
                         slot_dtype=tf.bfloat16)
    ids = tf.compat.v1.placeholder(tf.int64, [None])
    stamp = tf.compat.v1.placeholder(tf.int64, [])
    tf.compat.v1.add_to_collection(ASCEND_TIMESTAMP, stamp)
    emb = sparse_lookup(table, ids, access_and_evict_config={"access_threshold": 1, "eviction_threshold": 50})
    opt = lazy_adam.create_hash_optimizer(0.1)
    train = opt.minimize(tf.reduce_sum(emb), var_list=[table.variable])
    hook = EvictHook(evict_enable=True, evict_step_interval=1)
    with tf.compat.v1.train.MonitoredTrainingSession(hooks=[hook]) as sess:
        sess.run(train, {ids: [1, 2], stamp: 100})
        row1 = int(table.backend.store.index.lookup(np.array([1]))[0])
        sess.run(train, {ids: [2, 3], stamp: 160})  # key 1 is 60 s old: evicted after this step
        assert hook.evicted == 1 and table.size() == 2
        m = sess.run(opt.get_slot(table.variable, "m"))
        assert m.dtype == tf.bfloat16.as_numpy_dtype and np.all(np.asarray(m[row1], np.float32) == 0.0)
        out = sess.run(emb, {ids: [4], stamp: 170})  # a new key reuses the freed row, from its initial value
        assert int(table.backend.store.index.lookup(np.array([4]))[0]) == row1
        expected = table.initial_values(np.array([4]))[0].astype(tf.bfloat16.as_numpy_dtype).astype(np.float32)
        np.testing.assert_array_equal(out[0], expected)
