"""DDR mode: the device variable caches hot rows over host memory, and training does not notice."""
import numpy as np
import pytest
import tensorflow as tf

from mx_rec.config.initializer import ConfigInitializer
from mx_rec.constants.constants import ASCEND_TIMESTAMP
from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.core.feature_process import EvictHook
from mx_rec.graph.modifier import modify_graph_and_start_emb_cache
from mx_rec.optimizers import lazy_adam
from mx_rec.saver.table_state import collect
from tests.graphs import fresh_graph
from tests.helpers.tier_data import B, D, F, INIT, STEPS, zipf_batches


def _train(host_rows=0, device_rows=20_000, steps=STEPS, restore=None, save=None, ssd_rows=0, ssd_paths=None):
    ids_all, labels, w = zipf_batches()
    opt = lazy_adam.create_hash_optimizer(0.02)
    table = create_table(tf.int64, D, "tiers", INIT, device_vocabulary_size=device_rows,
                         host_vocabulary_size=host_rows, ssd_vocabulary_size=ssd_rows,
                         ssd_data_path=ssd_paths)
    ids = tf.compat.v1.placeholder(tf.int64, [B, F])
    y = tf.compat.v1.placeholder(tf.float32, [B])
    pred = tf.reduce_sum(sparse_lookup(table, ids) * w, axis=[1, 2])
    loss = tf.reduce_mean(tf.square(pred - y))
    train = opt.minimize(loss, var_list=[table.variable])
    tf.compat.v1.train.get_or_create_global_step()
    saver = tf.compat.v1.train.Saver()
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        if restore:
            saver.restore(sess, restore)
        losses = [sess.run([loss, train], {ids: ids_all[s], y: labels[s]})[0] for s in range(steps)]
        prefix = saver.save(sess, save) if save else None
        state = collect(table, sess)
    order = np.argsort(state.keys)
    rows = {name: value[order] for name, value in [("emb", state.embeddings)] + sorted(state.slots.items())}
    return np.array(losses), state.keys[order], rows, table, prefix


def _assert_same(a, b, atol=1e-6):
    np.testing.assert_array_equal(a[1], b[1])
    for name in a[2]:
        np.testing.assert_allclose(a[2][name], b[2][name], atol=atol, rtol=0, err_msg=name)


def test_ddr_with_a_10_percent_cache_trains_exactly_like_hbm():
    with fresh_graph():
        hbm = _train()
    distinct = hbm[1].shape[0]
    assert distinct > 5000
    with fresh_graph():
        ddr = _train(host_rows=distinct, device_rows=distinct // 10)
    np.testing.assert_allclose(ddr[0], hbm[0], atol=1e-6, rtol=0)
    _assert_same(hbm, ddr)
    stats = ddr[3].telemetry()
    assert stats["swapped_out"] > distinct // 2 and stats["swapped_in"] > 0
    assert 0 < stats["device_hit_rate"] < 1 and 0 < stats["host_hit_rate"] < 1
    assert stats["keys_device"] <= distinct // 10 and stats["keys_device"] + stats["keys_host"] == distinct


def test_ssd_mode_trains_exactly_like_hbm_filling_paths_in_order(tmp_path):
    with fresh_graph():
        hbm = _train()
    distinct = hbm[1].shape[0]
    paths = [tmp_path / "ssd0", tmp_path / "ssd1"]
    for p in paths:
        p.mkdir()
    with fresh_graph():  # host 10%; the device holds two batches of distinct keys (2% would be less than one)
        ssd = _train(host_rows=distinct // 10, device_rows=2 * B * F + 20, ssd_rows=distinct,
                     ssd_paths=[str(p) for p in paths])
        stats = ssd[3].telemetry()
    np.testing.assert_allclose(ssd[0], hbm[0], atol=1e-6, rtol=0)
    _assert_same(hbm, ssd)
    assert stats["keys_ssd"] > distinct // 2 and stats["ssd_writes"] > 0 and stats["ssd_reads"] > 0
    assert stats["keys_device"] + stats["keys_host"] + stats["keys_ssd"] == distinct
    assert all(any(p.iterdir()) for p in paths), "both SSD paths were filled"


def test_ssd_path_errors_name_the_table_and_path(tmp_path):
    with fresh_graph():
        lazy_adam.create_hash_optimizer(0.1)
        with pytest.raises(ValueError, match=f"table 'bad_ssd': ssd_data_path '{tmp_path}/nope' does not exist"):
            create_table(tf.int64, 4, "bad_ssd", INIT, device_vocabulary_size=10, host_vocabulary_size=10,
                         ssd_vocabulary_size=10, ssd_data_path=[str(tmp_path / "nope")])
        with pytest.raises(ValueError, match="ssd_vocabulary_size needs host_vocabulary_size"):
            create_table(tf.int64, 4, "bad_ssd", INIT, device_vocabulary_size=10, ssd_vocabulary_size=10)


@pytest.mark.parametrize("saved_in,restored_in", [("hbm", "ddr"), ("ddr", "hbm"), ("ssd", "hbm"), ("hbm", "ssd")])
def test_checkpoints_move_between_tiers(tmp_path, saved_in, restored_in):
    sizes = {"hbm": {}, "ddr": {"host_rows": 20_000, "device_rows": 800},
             "ssd": {"host_rows": 300, "device_rows": 600, "ssd_rows": 20_000, "ssd_paths": [str(tmp_path)]}}
    with fresh_graph():
        saved = _train(steps=20, save=str(tmp_path / "m"), **sizes[saved_in])
    with fresh_graph():
        restored = _train(steps=0, restore=saved[4], **sizes[restored_in])
    _assert_same(saved, restored, atol=0)


def test_eviction_reaches_keys_on_the_host_and_on_ssd(tmp_path):
    with fresh_graph():
        opt = lazy_adam.create_hash_optimizer(0.1)
        table = create_table(tf.int64, 4, "ev", INIT, device_vocabulary_size=4, host_vocabulary_size=2,
                             ssd_vocabulary_size=100, ssd_data_path=str(tmp_path))
        ids = tf.compat.v1.placeholder(tf.int64, [None])
        stamp = tf.compat.v1.placeholder(tf.int64, [])
        tf.compat.v1.add_to_collection(ASCEND_TIMESTAMP, stamp)
        emb = sparse_lookup(table, ids, access_and_evict_config={"access_threshold": 0, "eviction_threshold": 10})
        train = opt.minimize(tf.reduce_sum(emb), var_list=[table.variable])
        hooks = [EvictHook(evict_enable=True, evict_step_interval=1)]
        with tf.compat.v1.train.MonitoredTrainingSession(hooks=hooks) as sess:
            sess.run(train, {ids: [1, 2], stamp: 0})
            sess.run(train, {ids: [3, 4], stamp: 1})
            sess.run(train, {ids: [5, 6], stamp: 2})  # 1, 2 go to the host, then down to SSD
            sess.run(train, {ids: [7, 8], stamp: 3})
            assert table.backend.store.ssd.contains(np.array([1, 2])).all()
            assert table.backend.store.host.contains(np.array([3, 4])).all()
            sess.run(train, {ids: [9, 10], stamp: 20})  # everything but 9, 10 is now stale
            for tier in (table.backend.store.host, table.backend.store.ssd):
                assert not tier.contains(np.arange(1, 9)).any()
            assert table.size() == 2 and table.telemetry()["evictions"] == 8


def test_ddr_errors_name_the_table_and_the_size_to_set():
    with fresh_graph():
        with pytest.raises(ValueError, match="table 'early': DDR mode .* needs the hash optimizer created before"):
            create_table(tf.int64, 4, "early", INIT, device_vocabulary_size=10, host_vocabulary_size=10)
    with fresh_graph():
        lazy_adam.create_hash_optimizer(0.1)
        table = create_table(tf.int64, 4, "tiny", INIT, device_vocabulary_size=3, host_vocabulary_size=5)
        ids = tf.compat.v1.placeholder(tf.int64, [None])
        emb = sparse_lookup(table, ids)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            with pytest.raises(tf.errors.OpError, match=r"table 'tiny': the device cache \(3 rows\) cannot hold"
                                                        r".*device_vocabulary_size"):
                sess.run(emb, {ids: [1, 2, 3, 4]})
            sess.run(emb, {ids: [1, 2, 3]})
            sess.run(emb, {ids: [4, 5, 6]})
            with pytest.raises(tf.errors.OpError, match="table 'tiny' is full.*host_vocabulary_size"):
                sess.run(emb, {ids: [7, 8, 9]})


def test_telemetry_is_logged_and_written_as_tensorboard_scalars(tmp_path):
    from mx_rec.tables.telemetry import TelemetryHook, telemetry
    with fresh_graph():
        opt = lazy_adam.create_hash_optimizer(0.1)
        table = create_table(tf.int64, 4, "tele", INIT, device_vocabulary_size=6, host_vocabulary_size=100)
        ids = tf.compat.v1.placeholder(tf.int64, [None])
        step = tf.compat.v1.train.get_or_create_global_step()
        train = opt.minimize(tf.reduce_sum(sparse_lookup(table, ids)), var_list=[table.variable], global_step=step)
        hook = TelemetryHook(every_n_steps=2, output_dir=str(tmp_path))
        with tf.compat.v1.train.MonitoredTrainingSession(hooks=[hook]) as sess:
            for batch in ([1, 2, 3], [4, 5, 6], [1, 7, 8], [2, 3, 9]):
                sess.run(train, {ids: batch})
        counters = telemetry()["tele"]
    assert counters["swapped_out"] > 0 and counters["keys_device"] + counters["keys_host"] == 9
    events = [e for f in tmp_path.glob("events.out.tfevents.*") for e in tf.compat.v1.train.summary_iterator(str(f))]
    written = {(e.step, v.tag): v.simple_value for e in events for v in e.summary.value}
    assert {s for s, _ in written} == {2, 4}
    assert written[(4, "mx_rec/tele/swapped_out")] == counters["swapped_out"]
    assert (4, "mx_rec/tele/device_hit_rate") in written and (4, "mx_rec/tele/admission_rejections") in written


# The little demo's shape, scaled down: a device cache of 0.4 of the vocabulary, three training
# lookups of one table and three evaluation lookups. "separate": the training lookups are separate
# lookups fed by placeholders (~0.3 of the vocabulary a step together); "merged_ahead": they merge
# (multi-lookup) into one lookup fed by a rebuilt pipeline (modify_graph), which places the next
# batch while one trains (two batches of ~0.15 of the vocabulary pinned), as the demo does.
VOCAB, LOOKUPS = 5000, 3


def _train_and_evaluate(shape, device_rows, host_rows=0, ssd_rows=0, ssd_paths=None):
    """Train 8 steps, evaluate 3, train 4 more, evaluate 3 again; returns (training losses, evaluation
    predictions, final keys, final rows) and the table."""
    n_ids = 600 if shape == "separate" else 400
    rng = np.random.default_rng(3)
    train_ids = rng.integers(0, VOCAB, (12, n_ids, LOOKUPS)) * 7 + 1
    eval_ids = rng.integers(0, VOCAB, (6, n_ids, LOOKUPS)) * 7 + 1
    labels = rng.normal(size=(12, n_ids)).astype(np.float32)
    opt = lazy_adam.create_hash_optimizer(0.05)
    table = create_table(tf.int64, D, "demo_shape", INIT, device_vocabulary_size=device_rows,
                         host_vocabulary_size=host_rows, ssd_vocabulary_size=ssd_rows, ssd_data_path=ssd_paths)
    w = tf.constant(np.random.default_rng(4).normal(size=(LOOKUPS, D)), tf.float32)

    def predict(ids, is_train, modify_graph=False):
        emb = tf.stack([sparse_lookup(table, ids[:, f], is_train=is_train, modify_graph=modify_graph)
                        for f in range(LOOKUPS)], axis=1)
        return tf.reduce_sum(emb * w, axis=[1, 2])

    start = tf.compat.v1.placeholder(tf.int64, [])
    if shape == "separate":
        ids = tf.compat.v1.placeholder(tf.int64, [n_ids, LOOKUPS])
        y = tf.compat.v1.placeholder(tf.float32, [n_ids])
        feeds = [{ids: train_ids[s], y: labels[s]} for s in range(12)]
    else:
        iterator = tf.compat.v1.data.make_initializable_iterator(
            tf.data.Dataset.from_tensor_slices((train_ids, labels)).skip(start))
        ids, y = iterator.get_next()
        feeds = [None] * 12
    loss = tf.reduce_mean(tf.square(predict(ids, True, shape != "separate") - y))
    train = opt.minimize(loss, var_list=[table.variable])
    eval_in = tf.compat.v1.placeholder(tf.int64, [n_ids, LOOKUPS])
    evaluation = predict(eval_in, False)
    if shape != "separate":
        modify_graph_and_start_emb_cache()
    losses, preds = [], []
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        if shape != "separate":
            sess.run(ConfigInitializer.get_instance().train_params_config.get_initializer(True), {start: 0})
        for begin, end, first_eval in ((0, 8, 0), (8, 12, 3)):
            losses += [sess.run([loss, train], feeds[s])[0] for s in range(begin, end)]
            preds += [sess.run(evaluation, {eval_in: eval_ids[s]}) for s in range(first_eval, first_eval + 3)]
        state = collect(table, sess)
    order = np.argsort(state.keys)
    return (np.array(losses), np.array(preds), state.keys[order], state.embeddings[order]), table


@pytest.mark.parametrize("shape", ["separate", "merged_ahead"])
def test_ddr_and_ssd_train_and_evaluate_like_hbm_with_a_cache_of_0_4_of_the_vocabulary(tmp_path, shape):
    settings = {"use_multi_lookup": shape != "separate"}
    with fresh_graph(**settings):
        hbm, _ = _train_and_evaluate(shape, device_rows=VOCAB + 10)
    with fresh_graph(**settings):
        ddr, table = _train_and_evaluate(shape, device_rows=2 * VOCAB // 5, host_rows=VOCAB)
        assert table.telemetry()["swapped_out"] > 0
        assert (table.telemetry()["placed_ahead"] > 0) == (shape != "separate")
    with fresh_graph(**settings):
        ssd, table = _train_and_evaluate(shape, device_rows=2 * VOCAB // 5, host_rows=VOCAB // 5, ssd_rows=VOCAB,
                                         ssd_paths=[str(tmp_path)])
        assert table.telemetry()["ssd_reads"] > 0
    for tier in (ddr, ssd):
        np.testing.assert_array_equal(tier[2], hbm[2])
        for got, want, name in zip(tier, hbm, ("losses", "evaluation", "keys", "rows")):
            np.testing.assert_allclose(got, want, atol=1e-6, rtol=0, err_msg=name)


def _place(store, keys, insert, lookup_id):
    """One lookup's placement, with the swap-out the graph would run (rows read back as zeros)."""
    placement = store.locate(np.asarray(keys, np.int64), insert, lookup_id)
    out = placement.swap_out.rows.shape[0]
    store.accept_swapped_out(placement.swap_out, [np.zeros((out, 2), np.float32)])
    return placement


def _store(rows=10):
    from mx_rec.storage.tiered import TieredStore
    return TieredStore("t", rows, 100, 2, lambda keys: np.zeros((keys.shape[0], 2), np.float32), 2)


def test_the_no_room_error_counts_the_rows_its_check_needs():
    store = _store()
    _place(store, range(6), True, 0)
    _place(store, [4, 5, 100, 101, 102, 103], True, 1)  # 6 keys beside 4 other pinned rows: exactly 10
    with pytest.raises(RuntimeError, match=r"table 't': the device cache \(10 rows\) cannot hold this training "
                                           r"batch's 8 distinct keys beside the 4 other rows .* that needs 12 rows: "
                                           r"set device_vocabulary_size to at least 12 per rank"):
        # lookup 0 releases its own last batch; lookup 1 still pins 6 rows, 2 of them (4, 5) in this batch
        _place(store, [3, 4, 5, 200, 201, 202, 203, 204], True, 0)
    assert len(store.device) == 10 and store.counters.lookups == 2  # nothing changed


def test_evaluation_takes_the_rows_training_pins_and_training_takes_them_back():
    store = _store()
    _place(store, range(6), True, 0)
    _place(store, range(10, 16), True, 0)  # 0..5 released; two of them go to the host
    on_host = [k for k in range(6) if store.host.contains(np.array([k]))[0]]
    assert len(on_host) == 2
    placement = _place(store, range(6), False, 1)  # 4 hits, 2 from the host: needs training's rows
    assert (placement.rows >= 0).all() and store.counters.host_hits == 2
    placement = _place(store, range(20, 26), True, 0)  # evaluation's rows go back to training
    assert (placement.rows >= 0).all()
    with pytest.raises(RuntimeError, match="evaluation batch's 11 distinct keys beside the 0 other rows .*needs 11"):
        _place(store, list(range(6)) + list(range(10, 14)) + [20], False, 2)
