"""Lookahead in DDR/SSD mode: with keys from a rebuilt pipeline (modify_graph), a table places the
next batch while the current one trains. Where rows live changes; the numbers must not."""
import logging

import numpy as np
import pytest
import tensorflow as tf

from mx_rec.config.initializer import ConfigInitializer
from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.graph.modifier import modify_graph_and_start_emb_cache
from mx_rec.key_process.lookahead import MAX_PUBLISHED, NextKeys
from mx_rec.optimizers import lazy_adam
from mx_rec.saver.table_state import collect
from mx_rec.util.log import logger
from tests.graphs import fresh_graph
from tests.helpers.tier_data import INIT, zipf_batches

D = 8


def _sizes(mode: str, distinct: int, per_batch: int) -> dict:
    return {"hbm": dict(device_vocabulary_size=distinct + 100),
            # 1.5 batches of distinct keys: enough to train, too few to hold the next batch beside this one
            "ddr_tight": dict(device_vocabulary_size=3 * per_batch // 2, host_vocabulary_size=distinct),
            "ddr": dict(device_vocabulary_size=distinct // 10, host_vocabulary_size=distinct),
            # host 10%; the device holds two batches of distinct keys beside the next one's
            "ssd": dict(device_vocabulary_size=3 * per_batch, host_vocabulary_size=distinct // 10,
                        ssd_vocabulary_size=distinct)}[mode]


def _train(mode: str, tmp_path, segments=((0, 50),), lookups: int = 1, evaluate: bool = False,
           restore=None, save=None, send_count=None):
    """Train on ``zipf_batches()`` through a modify-graph pipeline; each (start, stop) segment re-initialises
    the iterator at batch ``start``. Returns (losses, keys, {rows and slots}, telemetry, eval outputs)."""
    ids_all, labels, w = zipf_batches()
    distinct = np.unique(ids_all[ids_all >= 0]).shape[0]
    per_batch = max(np.unique(b[b >= 0]).shape[0] for b in ids_all)
    opt = lazy_adam.create_hash_optimizer(0.02)
    ssd_dir = tmp_path / f"ssd_{mode}_{len(list(tmp_path.iterdir()))}"
    ssd_dir.mkdir()
    table = create_table(tf.int64, D, "ahead", INIT, ssd_data_path=[str(ssd_dir)],
                         **_sizes(mode, distinct, per_batch))
    start = tf.compat.v1.placeholder(tf.int64, [])
    dataset = tf.data.Dataset.from_tensor_slices((ids_all, labels)).skip(start)
    iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
    ids, y = iterator.get_next()
    parts = np.array_split(np.arange(ids_all.shape[2]), lookups)
    emb = tf.concat([sparse_lookup(table, tf.gather(ids, part, axis=1), modify_graph=True, name=f"l{i}",
                                   send_count=send_count) for i, part in enumerate(parts)], axis=1)
    loss = tf.reduce_mean(tf.square(tf.reduce_sum(emb * w, axis=[1, 2]) - y))
    train = opt.minimize(loss, var_list=[table.variable])
    probe = tf.constant(np.unique(ids_all[:3][ids_all[:3] >= 0])[::7].reshape(-1, 1))
    evaluated = sparse_lookup(table, probe, is_train=False, name="eval") if evaluate else None
    modify_graph_and_start_emb_cache()
    initializer = ConfigInitializer.get_instance().train_params_config.get_initializer(True)
    saver = tf.compat.v1.train.Saver()
    losses, evals = [], []
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        if restore:
            saver.restore(sess, restore)
        for first, stop in segments:
            sess.run(initializer, {start: first})
            for _ in range(first, stop):
                losses.append(sess.run([loss, train])[0])
                if evaluate:
                    evals.append(sess.run(evaluated))  # a step of its own, between training steps
        if save:
            saver.save(sess, save)
        state = collect(table, sess)
    order = np.argsort(state.keys)
    rows = {name: value[order] for name, value in [("emb", state.embeddings)] + sorted(state.slots.items())}
    return np.array(losses), state.keys[order], rows, table.telemetry(), evals


def _assert_same(a, b):
    np.testing.assert_allclose(a[0], b[0], atol=1e-6, rtol=0)
    np.testing.assert_array_equal(a[1], b[1])
    for name in a[2]:
        np.testing.assert_allclose(a[2][name], b[2][name], atol=1e-6, rtol=0, err_msg=name)


def test_lower_tiers_place_batches_ahead_and_train_exactly_like_hbm(tmp_path):
    with fresh_graph():
        hbm = _train("hbm", tmp_path)
    assert hbm[0][-1] < hbm[0][0], "the model must learn something"
    for mode in ("ddr", "ssd"):
        with fresh_graph():
            lower = _train(mode, tmp_path)
        _assert_same(hbm, lower)
        stats = lower[3]
        assert stats["swapped_out"] > 0 and stats["swapped_in"] > 0, mode
        assert mode == "ddr" or stats["ssd_reads"] > 0
        # each step's batch is placed once: ahead (while the step before trained) or by the step itself
        assert stats["lookups"] == 50 + stats["placed_ahead"] - stats["ahead_used"], (mode, stats)
        assert stats["ahead_used"] > 0, (mode, stats)
        assert stats["keys_device"] + stats["keys_host"] + stats["keys_ssd"] == hbm[1].shape[0]


def test_reinitialised_iterator_two_lookups_and_evaluation_steps_keep_the_numbers(tmp_path):
    segments = ((0, 20), (10, 35))  # the batches placed ahead before the re-initialisation are never used
    with fresh_graph():
        hbm = _train("hbm", tmp_path, segments, lookups=2, evaluate=True)
    with fresh_graph():
        ddr = _train("ddr", tmp_path, segments, lookups=2, evaluate=True)
    _assert_same(hbm, ddr)
    np.testing.assert_allclose(np.stack(ddr[4]), np.stack(hbm[4]), atol=1e-6, rtol=0)
    assert ddr[3]["ahead_used"] > 0


@pytest.mark.parametrize("hbm_init,ddr_init,train_kwargs", [
    ({}, {"use_multi_lookup": True}, {"lookups": 2}),  # two separate lookups vs their merged batch placed ahead
    ({"use_dynamic": False}, {"use_dynamic": False}, {"send_count": 300}),  # batches placed ahead, then padded
], ids=["merged_lookups", "static_shapes"])
def test_batches_placed_ahead_keep_the_numbers(tmp_path, hbm_init, ddr_init, train_kwargs):
    with fresh_graph(**hbm_init):
        hbm = _train("hbm", tmp_path, ((0, 30),), **train_kwargs)
    with fresh_graph(**ddr_init):
        ddr = _train("ddr", tmp_path, ((0, 30),), **train_kwargs)
    _assert_same(hbm, ddr)
    assert ddr[3]["ahead_used"] > 0


def test_checkpoint_saved_while_placing_ahead_restores_in_hbm(tmp_path):
    with fresh_graph():
        straight = _train("hbm", tmp_path, ((0, 40),))
    with fresh_graph():
        _train("ssd", tmp_path, ((0, 25),), save=str(tmp_path / "ckpt" / "model"))
    with fresh_graph():
        resumed = _train("hbm", tmp_path, ((25, 40),), restore=str(tmp_path / "ckpt" / "model"))
    np.testing.assert_allclose(resumed[0], straight[0][25:], atol=1e-6, rtol=0)
    _assert_same((straight[0][25:],) + straight[1:], resumed)


def test_a_cache_too_small_to_place_ahead_trains_serially_and_says_so(tmp_path):
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)  # the SDK's logger does not propagate to the root logger
    try:
        with fresh_graph():  # the second pass's keys are all held: placing one ahead needs two batches of rows
            hbm = _train("hbm", tmp_path, ((0, 20), (0, 20)))
        with fresh_graph():
            tight = _train("ddr_tight", tmp_path, ((0, 20), (0, 20)))
    finally:
        logger.removeHandler(handler)
    _assert_same(hbm, tight)
    warnings = [r for r in records if "cannot be placed while this one trains" in r.getMessage()]
    assert len(warnings) == 1 and "table 'ahead'" in warnings[0].getMessage()  # once per table, naming it
    assert tight[3]["placed_ahead"] < 40


def test_next_keys_hands_out_each_batch_once_and_stays_bounded():
    next_keys = NextKeys()
    seqs = [next_keys.publish(np.array([i], np.int64)) for i in range(3)]
    assert seqs == [1, 2, 3]
    assert next_keys.after(1).tolist() == [1]  # batch 2's keys, while batch 1 trains
    assert next_keys.after(1) is None  # placed once only
    assert next_keys.after(0) is None  # batch 1 is gone too (it is older than what was handed out)
    assert next_keys.after(2).tolist() == [2]
    for i in range(3 * MAX_PUBLISHED):  # a pipeline whose steps never ask keeps only the newest batches
        next_keys.publish(np.array([i], np.int64))
    assert len(next_keys._keys) == MAX_PUBLISHED
    unique, inverse, counts, seq = next_keys.dedup_stage(np.array([5, -1, 5, 7], np.int64))
    assert unique.tolist() == [5, 7] and inverse.tolist() == [0, 2, 0, 1] and counts.tolist() == [2, 1]
    assert next_keys.after(int(seq) - 1).tolist() == [5, 7]
