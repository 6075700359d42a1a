"""50 training steps of a hash-table model against independent references.

The model: ids int64 [B, F] -> sparse_lookup -> [B, F, D]; pred[b] = sum_{f,d} emb[b,f,d] * w[f,d]
with a fixed w; loss = mean((pred - y)^2). Ids mix duplicates, padding (-1), negative keys and keys
at the int64 limits. SGD / Adagrad / FTRL are compared with TF's own sparse updates on a plain
tf.Variable holding every key's row (ids remapped to row numbers up front); lazy Adam is compared
with a numpy implementation.
"""
import numpy as np
import pytest
import tensorflow as tf

from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.optimizers import adagrad, ftrl, gradient_descent, lazy_adam
from mx_rec.util.variable import get_dense_and_sparse_variable

B, F, D, STEPS = 32, 4, 8, 50
I64 = np.iinfo(np.int64)
POOL = np.array([I64.min, I64.min + 1, I64.max, I64.max - 1, -2, -1000, 0, 1, 2, 3, 17, 2**40, -(2**40)]
                + list(range(100, 127)), dtype=np.int64)
INIT = tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=5)


def _data():
    rng = np.random.default_rng(2024)
    ids = rng.choice(POOL, (STEPS, B, F), p=np.linspace(3, 1, len(POOL)) / np.linspace(3, 1, len(POOL)).sum())
    ids[rng.random(ids.shape) < 0.08] = -1
    labels = rng.normal(size=(STEPS, B)).astype(np.float32)
    w = rng.normal(size=(F, D)).astype(np.float32)
    return ids, labels, w


def _loss(emb, y, w):
    pred = tf.reduce_sum(emb * w, axis=[1, 2])
    return tf.reduce_mean(tf.square(pred - y))


def _train_mxrec(make_optimizer):
    ids_all, labels, w = _data()
    table = create_table(tf.int64, D, "eq_table", INIT, device_vocabulary_size=len(POOL))
    ids = tf.compat.v1.placeholder(tf.int64, [B, F])
    y = tf.compat.v1.placeholder(tf.float32, [B])
    loss = _loss(sparse_lookup(table, ids), y, w)
    _, sparse_vars = get_dense_and_sparse_variable()
    opt = make_optimizer()
    train = opt.apply_gradients(opt.compute_gradients(loss, var_list=sparse_vars))
    losses = []
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        for step in range(STEPS):
            losses.append(sess.run([loss, train], {ids: ids_all[step], y: labels[step]})[0])
        variable = sess.run(table.variable)
    keys, rows = table.store.items()
    return np.array(losses), dict(zip(keys.tolist(), variable[rows])), table


def _train_reference(make_tf_optimizer, table):
    """Plain tf.Variable with every key's initial row; -1 maps to an extra row that is masked out."""
    ids_all, labels, w = _data()
    row_of = {int(k): i for i, k in enumerate(POOL) if k != -1}
    pad_row = len(POOL)
    remap = np.vectorize(lambda k: row_of.get(int(k), pad_row))(ids_all)
    init = np.zeros((len(POOL) + 1, D), np.float32)
    keys = np.array(sorted(row_of, key=row_of.get), dtype=np.int64)
    init[[row_of[k] for k in keys.tolist()]] = table.initial_values(keys)
    with tf.Graph().as_default():
        var = tf.compat.v1.Variable(init, use_resource=True)
        idx = tf.compat.v1.placeholder(tf.int64, [B, F])
        y = tf.compat.v1.placeholder(tf.float32, [B])
        mask = tf.cast(tf.not_equal(idx, pad_row), tf.float32)[..., None]
        loss = _loss(tf.gather(var, idx) * mask, y, w)
        train = make_tf_optimizer().minimize(loss, var_list=[var])
        losses = []
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for step in range(STEPS):
                losses.append(sess.run([loss, train], {idx: remap[step], y: labels[step]})[0])
            final = sess.run(var)
    return np.array(losses), {k: final[r] for k, r in row_of.items()}


def _compare(ours, reference):
    losses, rows = ours
    ref_losses, ref_rows = reference
    np.testing.assert_allclose(losses, ref_losses, atol=1e-6, rtol=0)
    assert set(rows) == set(ref_rows)
    for key, row in rows.items():
        np.testing.assert_allclose(row, ref_rows[key], atol=1e-6, rtol=0, err_msg=f"key {key}")
    assert losses[-10:].mean() < losses[:10].mean()  # it really trains


CASES = {
    "sgd": (lambda: gradient_descent.create_hash_optimizer(0.05),
            lambda: tf.compat.v1.train.GradientDescentOptimizer(0.05)),
    "adagrad": (lambda: adagrad.create_hash_optimizer(0.1, initial_accumulator_value=0.5),
                lambda: tf.compat.v1.train.AdagradOptimizer(0.1, initial_accumulator_value=0.5)),
    "ftrl": (lambda: ftrl.create_hash_optimizer(0.2, l1_regularization_strength=0.001,
                                                l2_regularization_strength=0.01),
             lambda: tf.compat.v1.train.FtrlOptimizer(0.2, l1_regularization_strength=0.001,
                                                      l2_regularization_strength=0.01)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_tf_sparse_updates_on_a_plain_variable(graph, name):
    ours_opt, ref_opt = CASES[name]
    losses, rows, table = _train_mxrec(ours_opt)
    assert len(rows) == len(POOL)  # every key was seen and got a row
    _compare((losses, rows), _train_reference(ref_opt, table))


def _numpy_lazy_adam(table, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8):
    ids_all, labels, w = _data()
    rows, m, v, losses = {}, {}, {}, []
    for step in range(STEPS):
        ids = ids_all[step]
        for k in np.unique(ids[ids != -1]).tolist():
            if k not in rows:
                rows[k] = table.initial_values(np.array([k]))[0].astype(np.float64)
                m[k], v[k] = np.zeros(D), np.zeros(D)
        emb = np.zeros((B, F, D))
        for (b, f), k in np.ndenumerate(ids):
            if k != -1:
                emb[b, f] = rows[int(k)]
        err = (emb * w).sum(axis=(1, 2)) - labels[step]
        losses.append(np.mean(err ** 2))
        grads = {}
        for (b, f), k in np.ndenumerate(ids):
            if k != -1:
                grads[int(k)] = grads.get(int(k), 0.0) + 2.0 * err[b] / B * w[f]
        t = step + 1
        step_size = lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        for k, g in grads.items():  # lazy: only keys in this batch
            m[k] = beta1 * m[k] + (1 - beta1) * g
            v[k] = beta2 * v[k] + (1 - beta2) * g * g
            rows[k] = rows[k] - step_size * m[k] / (np.sqrt(v[k]) + eps)
    return np.array(losses), rows


def test_lazy_adam_matches_numpy(graph):
    losses, rows, table = _train_mxrec(lambda: lazy_adam.create_hash_optimizer(0.01))
    _compare((losses, rows), _numpy_lazy_adam(table))


def test_lazy_adam_leaves_unlooked_rows_and_their_slots_alone(graph):
    table = create_table(tf.int64, D, "lazy", INIT, device_vocabulary_size=10)
    ids = tf.compat.v1.placeholder(tf.int64, [2])
    loss = tf.reduce_sum(sparse_lookup(table, ids))
    opt = lazy_adam.create_hash_optimizer(0.1)
    train = opt.minimize(loss, var_list=[table.variable])
    m = opt.get_slot(table.variable, "m")
    assert ("LazyAdam", "m") in table.slots and ("LazyAdam", "v") in table.slots
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(train, {ids: [1, 2]})
        before, m_before = sess.run([table.variable, m])
        sess.run(train, {ids: [2, -1]})
        after, m_after = sess.run([table.variable, m])
    row1 = dict(zip(*[a.tolist() for a in table.store.items()]))[1]
    np.testing.assert_array_equal(after[row1], before[row1])
    np.testing.assert_array_equal(m_after[row1], m_before[row1])
