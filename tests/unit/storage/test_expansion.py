"""Dynamic expansion: memory grows with the keys seen, and training is unchanged by it."""
import numpy as np
import tensorflow as tf

from mx_rec.constants.constants import ASCEND_SPARSE_LOOKUP_ID_OFFSET, ASCEND_SPARSE_LOOKUP_LOCAL_EMB
from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.optimizers import lazy_adam, lazy_adam_by_addr
from tests.graphs import fresh_graph

B, F, D, STEPS = 64, 4, 8, 40
INIT = tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=9)


def _batches():
    """Key pools that grow with the step: ~100 distinct keys after step 0, >2,000 by the end."""
    rng = np.random.default_rng(77)
    ids = np.stack([rng.integers(0, 60 * (s + 1), (B, F)) * 1_000_003 - 5 for s in range(STEPS)]).astype(np.int64)
    ids[rng.random(ids.shape) < 0.05] = -1
    return ids, rng.normal(size=(STEPS, B)).astype(np.float32), rng.normal(size=(F, D)).astype(np.float32)


def _loss(emb, y, w):
    return tf.reduce_mean(tf.square(tf.reduce_sum(emb * w, axis=[1, 2]) - y))


def _final_rows(sess, table):
    keys, rows = table.backend.items()
    return dict(zip(keys.tolist(), sess.run(table.variable)[rows]))


def _train_fixed():
    ids_all, labels, w = _batches()
    with fresh_graph():
        table = create_table(tf.int64, D, "fixed", INIT, device_vocabulary_size=5000)
        ids = tf.compat.v1.placeholder(tf.int64, [B, F])
        y = tf.compat.v1.placeholder(tf.float32, [B])
        loss = _loss(sparse_lookup(table, ids), y, w)
        train = lazy_adam.create_hash_optimizer(0.01, name="Adam").minimize(loss, var_list=[table.variable])
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            losses = [sess.run([loss, train], {ids: ids_all[s], y: labels[s]})[0] for s in range(STEPS)]
            return np.array(losses), _final_rows(sess, table)


def _train_expanding():
    ids_all, labels, w = _batches()
    with fresh_graph(use_dynamic_expansion=True):
        table = create_table(tf.int64, D, "fixed", INIT, device_vocabulary_size=5000)
        ids = tf.compat.v1.placeholder(tf.int64, [B, F])
        y = tf.compat.v1.placeholder(tf.float32, [B])
        loss = _loss(sparse_lookup(table, ids), y, w)
        local_embs = tf.compat.v1.get_collection(ASCEND_SPARSE_LOOKUP_LOCAL_EMB)
        addresses = tf.compat.v1.get_collection(ASCEND_SPARSE_LOOKUP_ID_OFFSET)
        opt = lazy_adam_by_addr.create_hash_optimizer_by_address(0.01, name="Adam")
        train = opt.apply_gradients(zip(tf.gradients(loss, local_embs), addresses))
        shapes = [tf.raw_ops.VariableShape(input=v.handle)[0]
                  for v in (table.variable, opt.get_slot(table.variable, "m"), opt.get_slot(table.variable, "v"))]
        losses, reserved = [], []
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            assert sess.run(shapes[0]) <= 65  # nothing reserved up front
            for s in range(STEPS):
                losses.append(sess.run([loss, train], {ids: ids_all[s], y: labels[s]})[0])
                rows = sess.run(shapes)
                assert rows == [table.capacity() + 1] * 3, (rows, table.capacity())
                reserved.append((table.size(), table.capacity()))
            return np.array(losses), _final_rows(sess, table), reserved


def test_expansion_trains_like_a_fixed_table_and_reserves_within_2x():
    fixed_losses, fixed_rows = _train_fixed()
    losses, rows, reserved = _train_expanding()
    np.testing.assert_allclose(losses, fixed_losses, atol=1e-6, rtol=0)
    assert rows.keys() == fixed_rows.keys()
    for key, row in rows.items():
        np.testing.assert_allclose(row, fixed_rows[key], atol=1e-6, rtol=0)
    sizes = [size for size, _ in reserved]
    assert sizes[-1] >= 10 * sizes[0], sizes
    for size, capacity in reserved:
        assert size <= capacity <= max(2 * size, 64), (size, capacity)
    assert len({c for _, c in reserved}) > 3  # grew in several chunks, not once


def test_two_lookups_growing_one_table_in_a_step_see_initial_values():
    with fresh_graph(use_dynamic_expansion=True):
        table = create_table(tf.int64, 4, "grow2", INIT)
        a = sparse_lookup(table, tf.constant(np.arange(0, 300, dtype=np.int64)))
        b = sparse_lookup(table, tf.constant(np.arange(150, 500, dtype=np.int64)))
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            out_a, out_b = sess.run([a, b])
        np.testing.assert_array_equal(out_a, table.initial_values(np.arange(0, 300)))
        np.testing.assert_array_equal(out_b, table.initial_values(np.arange(150, 500)))
        assert table.size() == 500 and table.capacity() < 1000


def test_checkpoint_from_a_fixed_table_restores_into_an_expanding_one(tmp_path):
    with fresh_graph():
        table = create_table(tf.int64, 4, "ck", INIT, device_vocabulary_size=1000)
        ids = tf.compat.v1.placeholder(tf.int64, [None])
        train = lazy_adam.create_hash_optimizer(0.1).minimize(tf.reduce_sum(sparse_lookup(table, ids)),
                                                              var_list=[table.variable])
        tf.compat.v1.train.get_or_create_global_step()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(train, {ids: np.arange(700)})
            prefix = tf.compat.v1.train.Saver().save(sess, str(tmp_path / "m"))
            saved = _final_rows(sess, table)
    with fresh_graph(use_dynamic_expansion=True):
        table = create_table(tf.int64, 4, "ck", INIT)
        ids = tf.compat.v1.placeholder(tf.int64, [None])
        emb = sparse_lookup(table, ids)
        opt = lazy_adam_by_addr.create_hash_optimizer_by_address(0.1)
        opt.apply_gradients(zip(tf.gradients(tf.reduce_sum(emb), tf.compat.v1.get_collection(
            ASCEND_SPARSE_LOOKUP_LOCAL_EMB)), tf.compat.v1.get_collection(ASCEND_SPARSE_LOOKUP_ID_OFFSET)))
        tf.compat.v1.train.get_or_create_global_step()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().restore(sess, prefix)
            restored = _final_rows(sess, table)
            assert 700 <= table.capacity() < 1400
            np.testing.assert_array_equal(sess.run(emb, {ids: [5]})[0], saved[5])
    assert restored.keys() == saved.keys()
    for key, row in saved.items():
        np.testing.assert_array_equal(restored[key], row)


def test_sgd_by_address_applies_weight_decay_once_per_row():
    from mx_rec.optimizers import gradient_descent_by_addr
    with fresh_graph(use_dynamic_expansion=True):
        table = create_table(tf.int64, 4, "wd", INIT)
        first = sparse_lookup(table, tf.constant([3, 4], tf.int64))
        second = sparse_lookup(table, tf.constant([3], tf.int64))
        loss = tf.reduce_sum(first) + tf.reduce_sum(second)
        embs = tf.compat.v1.get_collection(ASCEND_SPARSE_LOOKUP_LOCAL_EMB)
        opt = gradient_descent_by_addr.create_hash_optimizer_by_addr(0.5, weight_decay=0.1)
        train = opt.apply_gradients(zip(tf.gradients(loss, embs),
                                        tf.compat.v1.get_collection(ASCEND_SPARSE_LOOKUP_ID_OFFSET)))
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(train)
            after = _final_rows(sess, table)
        start = table.initial_values(np.array([3, 4]))
        np.testing.assert_allclose(after[3], start[0] - 0.5 * (2.0 + 0.1 * start[0]), rtol=1e-6)
        np.testing.assert_allclose(after[4], start[1] - 0.5 * (1.0 + 0.1 * start[1]), rtol=1e-6)


def test_unique_keys_collection_holds_the_addresses_newer_rec_sdk_scripts_read():
    from mx_rec.constants.constants import ASCEND_SPARSE_LOOKUP_UNIQUE_KEYS
    with fresh_graph(use_dynamic_expansion=True):
        table = create_table(tf.int64, D, "addr", INIT, device_vocabulary_size=5000)
        sparse_lookup(table, tf.compat.v1.placeholder(tf.int64, [B, F]))
        sparse_lookup(table, tf.compat.v1.placeholder(tf.int64, [B]), name="second")
        offsets = tf.compat.v1.get_collection(ASCEND_SPARSE_LOOKUP_ID_OFFSET)
        assert len(offsets) == 2
        assert tf.compat.v1.get_collection(ASCEND_SPARSE_LOOKUP_UNIQUE_KEYS) == offsets
        assert len(tf.compat.v1.get_collection(ASCEND_SPARSE_LOOKUP_LOCAL_EMB)) == 2
