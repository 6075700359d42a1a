"""Rec SDK's optimizer surface: users' CustomizedOptimizer subclasses, by-address optimizers inside
TF's loss-scale wrapper, learning rates as tensors, and the APPLY_GRADIENTS_STRATEGY switch.

The model of every test: ids int64 [B, F] -> sparse_lookup -> [B, F, D]; pred[b] = sum emb * w;
loss = mean((pred - y)^2). References are TF's own optimizers on a plain variable or numpy.
"""
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.training import slot_creator

from mx_rec.constants.constants import (ASCEND_SPARSE_LOOKUP_ID_OFFSET, ASCEND_SPARSE_LOOKUP_LOCAL_EMB,
                                        ApplyGradientsStrategy)
from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.optimizers import (adagrad, adagrad_by_addr, ftrl, ftrl_t, gradient_descent, gradient_descent_by_addr,
                               lazy_adam, lazy_adam_by_addr, momentum)
from mx_rec.optimizers.base import CustomizedOptimizer
from mx_rec.optimizers.strategy import apply_in_rounds, occurrence
from mx_rec.saver.table_state import collect
from mx_rec.storage.tiered_backend import TieredBackend
from tests.graphs import fresh_graph

B, F, D, STEPS, KEYS = 16, 3, 4, 24, 120
INIT = tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=3)


def _data(steps=STEPS):
    rng = np.random.default_rng(11)
    ids = rng.integers(0, KEYS, (steps, B, F)).astype(np.int64) * 7919 - 300
    ids[rng.random(ids.shape) < 0.1] = -1
    return ids, rng.normal(size=(steps, B)).astype(np.float32), rng.normal(size=(F, D)).astype(np.float32)


def _loss(emb, y, w):
    return tf.reduce_mean(tf.square(tf.reduce_sum(emb * w, axis=[1, 2]) - y))


def _train(make_optimizer, steps=STEPS, host_rows=0, device_rows=KEYS, apply=None):
    """Losses, {key: row} and the table after ``steps`` steps; ``apply(opt, loss, table)`` builds the
    train op (default ``minimize``). The optimizer comes before create_table, as DDR mode needs."""
    ids_all, labels, w = _data(steps)
    opt = make_optimizer()
    table = create_table(tf.int64, D, "compat", INIT, device_vocabulary_size=device_rows,
                         host_vocabulary_size=host_rows)
    ids = tf.compat.v1.placeholder(tf.int64, [B, F])
    y = tf.compat.v1.placeholder(tf.float32, [B])
    loss = _loss(sparse_lookup(table, ids), y, w)
    train = apply(opt, loss, table) if apply else opt.minimize(loss, var_list=[table.variable])
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        losses = [sess.run([loss, train], {ids: ids_all[s], y: labels[s]})[0] for s in range(steps)]
        if isinstance(table.backend, TieredBackend):
            state = collect(table, sess)
            rows = dict(zip(state.keys.tolist(), state.embeddings))
        else:
            keys, where = table.backend.items()
            rows = dict(zip(keys.tolist(), sess.run(table.variable)[where]))
    return np.array(losses), rows, table


def _numpy(table, update, steps=STEPS):
    """The same model in float64; ``update(key, row, grad)`` returns the key's new row."""
    ids_all, labels, w = _data(steps)
    rows, losses = {}, []
    for s in range(steps):
        ids = ids_all[s]
        for k in np.unique(ids[ids != -1]).tolist():
            rows.setdefault(k, table.initial_values(np.array([k]))[0].astype(np.float64))
        emb = np.zeros((B, F, D))
        for (b, f), k in np.ndenumerate(ids):
            if k != -1:
                emb[b, f] = rows[int(k)]
        err = (emb * w).sum(axis=(1, 2)) - labels[s]
        losses.append(np.mean(err ** 2))
        grads = {}
        for (b, f), k in np.ndenumerate(ids):
            if k != -1:
                grads[int(k)] = grads.get(int(k), 0.0) + 2.0 * err[b] / B * w[f]
        for k, g in grads.items():
            rows[k] = update(k, rows[k], g)
    return np.array(losses), rows


def _assert_rows(a, b, atol=1e-6):
    np.testing.assert_allclose(a[0], b[0], atol=atol, rtol=0)
    assert set(a[1]) == set(b[1])
    for key in a[1]:
        np.testing.assert_allclose(a[1][key], b[1][key], atol=atol, rtol=0, err_msg=f"key {key}")


# --- users' own optimizers, written as Rec SDK's examples write them --------------------------------

class DecayedSGD(tf.compat.v1.train.GradientDescentOptimizer, CustomizedOptimizer):
    """Rec SDK's DLRM example shape: TF class first, the non-resource sparse method, Rec SDK's slot
    protocol methods returning nothing."""

    def __init__(self, learning_rate, weight_decay, use_locking=False, name="DecayedSGD"):
        self.weight_decay = weight_decay
        super()._get_name(name=name)
        super().__init__(learning_rate=learning_rate, use_locking=use_locking, name=self.unique_name)

    def initialize_slots(self, var, table_instance):
        return []

    def insert_slot(self, slot, named_slots_key, slot_name):
        return {}

    def get_slot_init_values(self):
        return []

    def _apply_sparse_duplicate_indices(self, grad, var):
        lr = tf.cast(self._learning_rate_tensor, var.dtype.base_dtype)
        delta = (grad.values + self.weight_decay * tf.gather(var, grad.indices)) * lr
        return tf.compat.v1.scatter_nd_add(var, tf.expand_dims(grad.indices, 1), -delta, use_locking=self._use_locking)

    def _apply_dense(self, grad, var):
        raise NotImplementedError("You are using a wrong type of variable.")


class HeavyBall(CustomizedOptimizer, tf.compat.v1.train.Optimizer):
    """The other base order; a slot made in ``_create_slots`` with a constant 0.5 start (which DDR rows
    must start from too) and a resource sparse update: ``v = 0.5 * v + g; row -= lr * v``."""

    def __init__(self, learning_rate, name="HeavyBall"):
        super().__init__(False, name)
        self._lr = learning_rate

    def _create_slots(self, var_list):
        for var in var_list:
            self._get_or_make_slot_with_initializer(var, tf.compat.v1.constant_initializer(0.5), var.shape,
                                                    var.dtype.base_dtype, "velocity", self._name)

    def _resource_apply_sparse(self, grad, handle, indices):
        slot = self.get_slot(handle, "velocity")
        v = 0.5 * tf.gather(slot, indices) + grad
        return tf.group(tf.raw_ops.ResourceScatterUpdate(resource=slot.handle, indices=indices, updates=v),
                        tf.raw_ops.ResourceScatterAdd(resource=handle.handle, indices=indices, updates=-self._lr * v))


class SlotsBySdkProtocol(tf.compat.v1.train.Optimizer, CustomizedOptimizer):
    """Its slot exists only through Rec SDK's initialize_slots / insert_slot protocol."""

    def __init__(self, learning_rate, name="Protocol"):
        super().__init__(False, name)
        self._lr = learning_rate

    def initialize_slots(self, var, table_instance):
        slot = slot_creator.create_zeros_slot(var, self._name + "/sum")
        return [{"slot": slot, "named_slot_key": (var.op.graph, var.op.name), "slot_name": "sum", "optimizer": self}]

    def get_slot_init_values(self):
        return [0.0]

    def _resource_apply_sparse(self, grad, handle, indices):
        slot = self.get_slot(handle, "sum")
        total = tf.gather(slot, indices) + grad
        return tf.group(tf.raw_ops.ResourceScatterUpdate(resource=slot.handle, indices=indices, updates=total),
                        tf.raw_ops.ResourceScatterAdd(resource=handle.handle, indices=indices,
                                                      updates=-self._lr * total))


def _velocity_reference(lr, decay, start):
    state = {}

    def update(key, row, grad):
        state[key] = decay * state.get(key, np.full(D, start)) + grad
        return row - lr * state[key]
    return update


USER_CLASSES = {
    "dlrm_sgd_with_decay": (lambda: DecayedSGD(0.1, 0.01), lambda: lambda k, row, g: row - 0.1 * (g + 0.01 * row)),
    "heavy_ball_slot": (lambda: HeavyBall(0.05), lambda: _velocity_reference(0.05, 0.5, 0.5)),
    "sdk_slot_protocol": (lambda: SlotsBySdkProtocol(0.02), lambda: _velocity_reference(0.02, 1.0, 0.0)),
}


@pytest.mark.parametrize("name", sorted(USER_CLASSES))
def test_user_subclass_trains_like_numpy_in_hbm_and_in_ddr(name):
    make, reference = USER_CLASSES[name]
    with fresh_graph():
        hbm = _train(make)
    _assert_rows(hbm[:2], _numpy(hbm[2], reference()))
    assert hbm[0][-6:].mean() < hbm[0][:6].mean()
    with fresh_graph():
        ddr = _train(make, host_rows=KEYS, device_rows=80)  # two batches fit on the device, not every key
    _assert_rows(hbm[:2], ddr[:2])
    table = ddr[2]
    assert table.telemetry()["swapped_out"] > 0
    expected = {"dlrm_sgd_with_decay": {}, "heavy_ball_slot": {"velocity": 0.5}, "sdk_slot_protocol": {"sum": 0.0}}
    assert {slot: init for (_, slot), (_, init) in table.slots.items()} == expected[name]  # new rows' slot values


def test_user_subclass_is_checked_like_ours(graph):
    opt = DecayedSGD(0.1, 0.01)
    count = int(opt.get_name().rsplit("_", 1)[1])  # Rec SDK's per-name counter, process-wide
    assert opt.get_name() == f"DecayedSGD_{count}" and DecayedSGD(0.1, 0.01).get_name() == f"DecayedSGD_{count + 1}"
    dense = tf.compat.v1.Variable(tf.zeros([3, D]), use_resource=True)
    with pytest.raises(TypeError, match="sparse table variables only"):
        opt.minimize(tf.reduce_sum(dense), var_list=[dense])
    table = create_table(tf.int64, D, "dense_grad", INIT, device_vocabulary_size=10)
    with pytest.raises(TypeError, match="got a dense gradient"):
        opt.minimize(tf.reduce_sum(table.variable * 2.0), var_list=[table.variable])


# --- by-address optimizers are TF optimizers that loss-scale wrappers accept ------------------------

def _expansion_train(make_optimizer, wrap=None, scale_lr=None):
    """Rec SDK's dynamic-expansion flow; ``wrap(opt)`` puts the optimizer in a loss-scale wrapper, or
    ``scale_lr`` divides its learning rate and multiplies the loss (Rec SDK's DLRM delay_loss_scale)."""
    ids_all, labels, w = _data()
    with fresh_graph(use_dynamic_expansion=True):
        opt = make_optimizer()
        assert isinstance(opt, tf.compat.v1.train.Optimizer) and isinstance(opt, CustomizedOptimizer)
        table = create_table(tf.int64, D, "expanding", INIT, device_vocabulary_size=KEYS)
        ids = tf.compat.v1.placeholder(tf.int64, [B, F])
        y = tf.compat.v1.placeholder(tf.float32, [B])
        loss = _loss(sparse_lookup(table, ids), y, w)
        local_embs = tf.compat.v1.get_collection(ASCEND_SPARSE_LOOKUP_LOCAL_EMB)
        addresses = tf.compat.v1.get_collection(ASCEND_SPARSE_LOOKUP_ID_OFFSET)
        scaled = loss
        if scale_lr:
            attr = "_lr" if hasattr(opt, "_lr") else "_learning_rate"
            setattr(opt, attr, getattr(opt, attr) / scale_lr)
            scaled = loss * scale_lr
        outer = wrap(opt) if wrap else opt
        grads = [g for g, _ in outer.compute_gradients(scaled, var_list=local_embs)]
        train = outer.apply_gradients(list(zip(grads, addresses)))
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            losses = [sess.run([loss, train], {ids: ids_all[s], y: labels[s]})[0] for s in range(STEPS)]
            keys, where = table.backend.items()
            return np.array(losses), dict(zip(keys.tolist(), sess.run(table.variable)[where]))


BY_ADDRESS = {
    "sgd": lambda: gradient_descent_by_addr.create_hash_optimizer_by_addr(0.1, weight_decay=0.001),
    "lazy_adam": lambda: lazy_adam_by_addr.create_hash_optimizer_by_address(0.01),
    "adagrad": lambda: adagrad_by_addr.create_hash_optimizer_by_address(0.1, 0.5),
}
LOSS_SCALE = tf.compat.v1.mixed_precision


@pytest.mark.parametrize("name", sorted(BY_ADDRESS))
def test_by_address_optimizers_train_the_same_inside_tf_loss_scale_wrappers(name):
    plain = _expansion_train(BY_ADDRESS[name])
    assert plain[0][-6:].mean() < plain[0][:6].mean()
    wrappers = [lambda o: LOSS_SCALE.MixedPrecisionLossScaleOptimizer(o, 1024.0),
                lambda o: LOSS_SCALE.MixedPrecisionLossScaleOptimizer(o, "dynamic")]
    for wrap in wrappers:
        _assert_rows(plain, _expansion_train(BY_ADDRESS[name], wrap=wrap))
    if name == "sgd":  # the learning rate divided, the loss multiplied: the same SGD steps (without decay)
        sgd = lambda: gradient_descent_by_addr.create_hash_optimizer_by_addr(0.1, weight_decay=0.0)  # noqa: E731
        _assert_rows(_expansion_train(sgd), _expansion_train(sgd, scale_lr=1024.0))


def test_ddr_table_trains_the_same_inside_a_dynamic_loss_scale_wrapper():
    def wrapped(opt, loss, table):
        return LOSS_SCALE.MixedPrecisionLossScaleOptimizer(opt, "dynamic").minimize(loss, var_list=[table.variable])

    with fresh_graph():
        plain = _train(lambda: lazy_adam.create_hash_optimizer(0.01), host_rows=KEYS, device_rows=80)
    with fresh_graph():
        scaled = _train(lambda: lazy_adam.create_hash_optimizer(0.01), host_rows=KEYS, device_rows=80,
                        apply=wrapped)
    _assert_rows(plain[:2], scaled[:2])


# --- learning rates as tensors, variables and callables ---------------------------------------------

FACTORIES = {
    "sgd": lambda lr: gradient_descent.create_hash_optimizer(lr, weight_decay=0.001),
    "adagrad": lambda lr: adagrad.create_hash_optimizer(lr, 0.5),
    "ftrl": lambda lr: ftrl.create_hash_optimizer(lr, l1_regularization_strength=0.001),
    "lazy_adam": lambda lr: lazy_adam.create_hash_optimizer(lr),
    "momentum": lambda lr: momentum.create_hash_optimizer(lr, 0.9),
    "ftrl_t": lambda lr: ftrl_t.create_hash_optimizer(lr, alpha=lr * 10),  # its step size is alpha
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_learning_rate_may_be_a_tensor_a_variable_or_a_callable(name):
    steps, rate = 6, 0.05
    with fresh_graph():
        expected = _train(lambda: FACTORIES[name](rate), steps=steps)
    forms = {"tensor": lambda: tf.constant(rate), "variable": lambda: tf.compat.v1.Variable(rate, trainable=False),
             "callable": lambda: (lambda: tf.constant(rate) * 1.0)}
    for form, make_rate in forms.items():
        if name == "ftrl_t":  # alpha is a float; the learning rate itself is accepted but unused
            make = lambda: ftrl_t.create_hash_optimizer(make_rate(), alpha=rate * 10)  # noqa: E731
        else:
            make = lambda: FACTORIES[name](make_rate())  # noqa: E731
        with fresh_graph():
            _assert_rows(expected[:2], _train(make, steps=steps)[:2], atol=1e-7)
    with fresh_graph(), pytest.raises(TypeError, match="learning_rate must be"):
        FACTORIES[name]("0.1")


# --- APPLY_GRADIENTS_STRATEGY --------------------------------------------------------------------

def _two_lookup_ids():
    rng = np.random.default_rng(5)
    first = rng.integers(0, 12, (STEPS, B, F)).astype(np.int64)
    second = rng.integers(6, 18, (STEPS, B, F)).astype(np.int64)  # half the keys appear in both lookups
    return first, second, rng.normal(size=(STEPS, B)).astype(np.float32), rng.normal(size=(F, D)).astype(np.float32)


def _two_lookups(make_optimizer, steps=8):
    """A table looked up twice a step (not merged): losses and {key: row}."""
    first, second, labels, w = _two_lookup_ids()
    table = create_table(tf.int64, D, "twice", INIT, device_vocabulary_size=64)
    a = tf.compat.v1.placeholder(tf.int64, [B, F])
    b = tf.compat.v1.placeholder(tf.int64, [B, F])
    y = tf.compat.v1.placeholder(tf.float32, [B])
    loss = _loss(sparse_lookup(table, a) + 0.5 * sparse_lookup(table, b), y, w)
    train = make_optimizer().minimize(loss, var_list=[table.variable])
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        losses = [sess.run([loss, train], {a: first[s], b: second[s], y: labels[s]})[0] for s in range(steps)]
        keys, where = table.backend.items()
        return np.array(losses), dict(zip(keys.tolist(), sess.run(table.variable)[where])), table


def _two_lookups_reference(make_tf_optimizer, table, sequential, steps=8):
    """TF on a plain variable (ids are row numbers): the two lookups' gradients summed into one update,
    or (``sequential``) the first lookup's gradient applied, then the second's."""
    first, second, labels, w = _two_lookup_ids()
    with tf.Graph().as_default():
        var = tf.compat.v1.Variable(table.initial_values(np.arange(18, dtype=np.int64)), use_resource=True)
        a = tf.compat.v1.placeholder(tf.int64, [B, F])
        b = tf.compat.v1.placeholder(tf.int64, [B, F])
        y = tf.compat.v1.placeholder(tf.float32, [B])
        ea, eb = tf.gather(var, a), tf.gather(var, b)
        loss = _loss(ea + 0.5 * eb, y, w)
        opt = make_tf_optimizer()
        if sequential:
            ga, gb = tf.gradients(loss, [ea, eb])
            shape = tf.shape(var, out_type=tf.int64)
            first_op = opt.apply_gradients([(tf.IndexedSlices(tf.reshape(ga, [-1, D]), tf.reshape(a, [-1]), shape),
                                             var)])
            with tf.control_dependencies([first_op]):
                train = opt.apply_gradients([(tf.IndexedSlices(tf.reshape(gb, [-1, D]), tf.reshape(b, [-1]), shape),
                                              var)])
        else:
            train = opt.minimize(loss, var_list=[var])
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            losses = [sess.run([loss, train], {a: first[s], b: second[s], y: labels[s]})[0] for s in range(steps)]
            final = sess.run(var)
    return np.array(losses), {k: final[k] for k in range(18)}


@pytest.mark.parametrize("strategy", [None, "sum_same_id_gradients_and_apply", "direct_apply"])
def test_apply_gradients_strategy_sums_or_applies_each_lookup_in_turn(monkeypatch, strategy):
    if strategy is None:
        monkeypatch.delenv("APPLY_GRADIENTS_STRATEGY", raising=False)
    else:
        monkeypatch.setenv("APPLY_GRADIENTS_STRATEGY", strategy)
    sequential = strategy == "direct_apply"
    with fresh_graph():
        ours = _two_lookups(lambda: adagrad.create_hash_optimizer(0.3, 0.1))
    reference = _two_lookups_reference(lambda: tf.compat.v1.train.AdagradOptimizer(0.3, 0.1), ours[2], sequential)
    _assert_rows(ours[:2], reference)
    other = _two_lookups_reference(lambda: tf.compat.v1.train.AdagradOptimizer(0.3, 0.1), ours[2], not sequential)
    assert max(np.abs(ours[1][k] - other[1][k]).max() for k in ours[1]) > 1e-3  # the strategies really differ
    with fresh_graph():  # SGD: either way the same numbers
        sgd = _two_lookups(lambda: gradient_descent.create_hash_optimizer(0.1))
    _assert_rows(sgd[:2], _two_lookups_reference(lambda: tf.compat.v1.train.GradientDescentOptimizer(0.1), sgd[2],
                                                 sequential=False))


def test_apply_gradients_strategy_values_and_errors(monkeypatch):
    assert ApplyGradientsStrategy.mapping("direct_apply") is ApplyGradientsStrategy.DIRECT_APPLY
    assert ApplyGradientsStrategy.mapping(ApplyGradientsStrategy.DIRECT_APPLY) is ApplyGradientsStrategy.DIRECT_APPLY
    with pytest.raises(KeyError, match="sum_same_id_gradients_and_apply"):
        ApplyGradientsStrategy.mapping("sum")
    monkeypatch.setenv("APPLY_GRADIENTS_STRATEGY", "sum")
    with fresh_graph(), pytest.raises(ValueError, match="APPLY_GRADIENTS_STRATEGY='sum' is not one of"):
        _two_lookups(lambda: adagrad.create_hash_optimizer(0.3, 0.1), steps=1)


def test_direct_apply_without_lookup_parts_applies_each_index_in_occurrence_order(graph):
    indices = tf.constant([5, 3, 5, 5, 3, 9], tf.int64)
    values = tf.constant([[1.0], [2.0], [3.0], [4.0], [5.0], [6.0]])
    var = tf.compat.v1.Variable(tf.zeros([10, 1]), use_resource=True)
    seen = []

    def apply(v, i):  # row = 10 * row + value: the order of a row's updates shows in its digits
        seen.append(i)
        rows = tf.gather(var, i) * 10.0 + v
        return tf.raw_ops.ResourceScatterUpdate(resource=var.handle, indices=i, updates=rows)

    update = apply_in_rounds(apply, tf.identity(values), tf.identity(indices), rounds=3)
    with tf.compat.v1.Session() as sess:
        sess.run(var.initializer)
        assert sess.run(occurrence(indices)).tolist() == [0, 0, 1, 2, 1, 0]
        assert sess.run(occurrence(tf.zeros([0], tf.int64))).tolist() == []
        sess.run(update)
        assert sess.run(var)[[3, 5, 9], 0].tolist() == [25.0, 134.0, 6.0]
    assert len(seen) == 3
