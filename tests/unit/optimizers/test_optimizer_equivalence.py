"""50 training steps of a hash-table model against independent references.

The model: ids int64 [B, F] -> sparse_lookup -> [B, F, D]; pred[b] = sum_{f,d} emb[b,f,d] * w[f,d]
with a fixed w; loss = mean((pred - y)^2). Ids mix duplicates, padding (-1), negative keys and keys
at the int64 limits. SGD / Adagrad / FTRL / momentum are compared with TF's own sparse updates on a
plain tf.Variable holding every key's row (ids remapped to row numbers up front); lazy Adam and
FTRL-T are compared with numpy implementations.
"""
import numpy as np
import pytest
import tensorflow as tf

from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.optimizers import adagrad, ftrl, ftrl_t, ftrl_t_dense, gradient_descent, lazy_adam, momentum
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
    keys, rows = table.backend.items()
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
    "momentum": (lambda: momentum.create_hash_optimizer(0.01, mom=0.9),
                 lambda: tf.compat.v1.train.MomentumOptimizer(0.01, momentum=0.9)),
    "nesterov": (lambda: momentum.create_hash_optimizer(0.01, mom=0.8, enable_nesterov=True),
                 lambda: tf.compat.v1.train.MomentumOptimizer(0.01, momentum=0.8, use_nesterov=True)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_tf_sparse_updates_on_a_plain_variable(graph, name):
    ours_opt, ref_opt = CASES[name]
    losses, rows, table = _train_mxrec(ours_opt)
    assert len(rows) == len(POOL)  # every key was seen and got a row
    _compare((losses, rows), _train_reference(ref_opt, table))


def _numpy_steps(table):
    """(step, rows, grads) each step, in float64: the model's loss appended to ``losses`` and the
    gradient of each key in the batch; the caller updates ``rows`` in place."""
    ids_all, labels, w = _data()
    rows, losses = {}, []
    for step in range(STEPS):
        ids = ids_all[step]
        for k in np.unique(ids[ids != -1]).tolist():
            if k not in rows:
                rows[k] = table.initial_values(np.array([k]))[0].astype(np.float64)
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
        yield step, rows, grads, losses


def _numpy_lazy_adam(table, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8):
    m, v = {}, {}
    for step, rows, grads, losses in _numpy_steps(table):
        for k in grads:
            m.setdefault(k, np.zeros(D))
            v.setdefault(k, np.zeros(D))
        t = step + 1
        step_size = lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        for k, g in grads.items():  # lazy: only keys in this batch
            m[k] = beta1 * m[k] + (1 - beta1) * g
            v[k] = beta2 * v[k] + (1 - beta2) * g * g
            rows[k] = rows[k] - step_size * m[k] / (np.sqrt(v[k]) + eps)
    return np.array(losses), rows


def _numpy_ftrl_t(table, alpha, beta, lambda1, lambda2, epsilon, grad_factor):
    """FTRL-T as its documentation states it (mx_rec.optimizers.ftrl_t), one key at a time."""
    slots = {}
    for _, rows, grads, losses in _numpy_steps(table):
        for k, grad in grads.items():
            z, n, g, w = slots.get(k, (np.zeros(D),) * 4)
            g = grad_factor * g + (1 - grad_factor) * grad
            sigma = (np.sqrt(n + g * g) - np.sqrt(n)) / alpha
            z = (1 - epsilon) * z + g - sigma * w
            n = (1 - epsilon) * n + g * g
            w = np.where(np.abs(z) > lambda1, (lambda1 * np.sign(z) - z) / ((beta + np.sqrt(n)) / alpha + lambda2), 0.0)
            slots[k] = (z, n, g, w)
            rows[k] = w
    return np.array(losses), rows


def test_lazy_adam_matches_numpy(graph):
    losses, rows, table = _train_mxrec(lambda: lazy_adam.create_hash_optimizer(0.01))
    _compare((losses, rows), _numpy_lazy_adam(table))


@pytest.mark.parametrize("params", [
    dict(alpha=0.5, beta=1.0, lambda1=0.0, lambda2=0.0, epsilon=0.0, grad_factor=0.0),
    dict(alpha=0.3, beta=0.5, lambda1=0.002, lambda2=0.01, epsilon=0.01, grad_factor=0.3),
], ids=["plain", "regularised_decayed_smoothed"])
def test_ftrl_t_matches_numpy(graph, params):
    losses, rows, table = _train_mxrec(lambda: ftrl_t.create_hash_optimizer(0.01, **params))
    _compare((losses, rows), _numpy_ftrl_t(table, **params))
    if params["lambda1"]:  # the L1 term really zeroes coordinates
        assert sum(int((np.abs(r) == 0).sum()) for r in rows.values()) > 0


def test_dense_ftrl_t_matches_the_same_formula_on_every_element():
    params = dict(alpha=0.3, beta=0.5, lambda1=0.002, lambda2=0.01, epsilon=0.01, grad_factor=0.3)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(32, 6)).astype(np.float32), rng.normal(size=(32, 2)).astype(np.float32)
    with tf.Graph().as_default():
        var = tf.compat.v1.Variable(np.zeros((6, 2), np.float32), use_resource=True)
        loss = tf.reduce_mean(tf.square(tf.matmul(x, var) - y))
        train = ftrl_t_dense.create_ftrl_dense_optimizer(0.01, **params).minimize(loss, var_list=[var])
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for _ in range(10):
                sess.run(train)
            ours = sess.run(var)
    w, z, n, g = (np.zeros((6, 2)) for _ in range(4))
    for _ in range(10):
        grad = 2.0 * x.T.astype(np.float64) @ (x @ w - y) / y.size
        g = params["grad_factor"] * g + (1 - params["grad_factor"]) * grad
        z = (1 - params["epsilon"]) * z + g - (np.sqrt(n + g * g) - np.sqrt(n)) / params["alpha"] * w
        n = (1 - params["epsilon"]) * n + g * g
        w = np.where(np.abs(z) > params["lambda1"], (params["lambda1"] * np.sign(z) - z)
                     / ((params["beta"] + np.sqrt(n)) / params["alpha"] + params["lambda2"]), 0.0)
    np.testing.assert_allclose(ours, w, atol=1e-6, rtol=0)
    assert np.abs(w).sum() > 0.1


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
    row1 = dict(zip(*[a.tolist() for a in table.backend.items()]))[1]
    np.testing.assert_array_equal(after[row1], before[row1])
    np.testing.assert_array_equal(m_after[row1], m_before[row1])
