"""sparse_lookup through the Rec SDK doors: shapes, padding, gradients, FeatureSpec mode, multi-lookup."""
import numpy as np
import pytest
import tensorflow as tf

from mx_rec.core.asc.helper import FeatureSpec, get_asc_insert_func
from mx_rec.core.asc.manager import start_asc_pipeline
from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.optimizers.gradient_descent import create_hash_optimizer as sgd
from mx_rec.util.variable import get_dense_and_sparse_variable

INIT = tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=7)


def _table(name="t", dim=4, size=1000, **kwargs):
    return create_table(tf.int64, dim, name, INIT, device_vocabulary_size=size, **kwargs)


@pytest.mark.parametrize("shape", [[6], [3, 4], [2, 3, 5]])
def test_any_id_shape_gives_initial_rows_and_zero_padding(graph, shape):
    table = _table()
    rng = np.random.default_rng(0)
    ids_value = rng.choice(np.array([3, -7, 2**62, -(2**63), -1, 11], np.int64), shape)
    ids = tf.compat.v1.placeholder(tf.int64, shape)
    emb = sparse_lookup(table, ids)
    assert emb.shape.as_list() == shape + [4]
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        out = sess.run(emb, {ids: ids_value})
    flat = ids_value.reshape(-1)
    expected = table.initial_values(flat)
    expected[flat == -1] = 0.0
    np.testing.assert_array_equal(out.reshape(-1, 4), expected)
    assert table.size() == len(set(flat.tolist()) - {-1})


def test_gradient_is_indexed_slices_over_the_used_rows_summed_per_key(graph):
    table = _table()
    ids = tf.constant([[5, 5, -1], [9, 5, 9]], tf.int64)
    emb = sparse_lookup(table, ids)
    loss = tf.reduce_sum(emb * tf.constant([1.0, 2.0, 3.0, 4.0]))
    (grad,) = tf.gradients(loss, [table.variable])
    assert isinstance(grad, tf.IndexedSlices)
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        indices, values = sess.run([grad.indices, grad.values])
    keys, rows = table.backend.items()
    row_of = dict(zip(keys.tolist(), rows.tolist()))
    assert sorted(indices.tolist()) == sorted([row_of[5], row_of[9]])
    by_row = dict(zip(indices.tolist(), values.tolist()))
    np.testing.assert_allclose(by_row[row_of[5]], [3, 6, 9, 12])
    np.testing.assert_allclose(by_row[row_of[9]], [2, 4, 6, 8])


def test_two_lookups_of_one_table_share_rows_and_sum_updates(graph):
    table = _table()
    a = sparse_lookup(table, tf.constant([1, 2], tf.int64), name="first")
    b = sparse_lookup(table, tf.constant([[2, 3]], tf.int64), name="second")
    loss = tf.reduce_sum(a) + tf.reduce_sum(b)
    opt = sgd(0.5)
    _, sparse_vars = get_dense_and_sparse_variable()
    train = opt.minimize(loss, var_list=sparse_vars)
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        before_a, before_b = sess.run([a, b])  # key 2 is new to both lookups in the same step
        np.testing.assert_array_equal(before_a, table.initial_values(np.array([1, 2])))
        np.testing.assert_array_equal(before_b[0], table.initial_values(np.array([2, 3])))
        sess.run(train)
        after_a, after_b = sess.run([a, b])
    np.testing.assert_allclose(after_a[0], before_a[0] - 0.5, rtol=1e-6)
    np.testing.assert_allclose(after_a[1], before_a[1] - 1.0, rtol=1e-6)  # key 2 used by both lookups
    np.testing.assert_allclose(after_b[0, 1], before_b[0, 1] - 0.5, rtol=1e-6)
    assert table.size() == 3


def test_evaluation_lookup_never_inserts_and_gives_the_serving_default(graph):
    table = _table()
    train_emb = sparse_lookup(table, tf.constant([1], tf.int64))
    eval_emb = sparse_lookup(table, tf.constant([1, 4, -1], tf.int64), is_train=False, serving_default_value=0.5)
    assert eval_emb.op.type != "Placeholder"
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(train_emb)
        out = sess.run(eval_emb)
    np.testing.assert_array_equal(out[0], table.initial_values(np.array([1]))[0])
    np.testing.assert_array_equal(out[1], np.full(4, 0.5, np.float32))
    np.testing.assert_array_equal(out[2], np.zeros(4, np.float32))
    assert table.size() == 1


def test_evaluation_lookup_does_not_pull_the_training_pipeline(graph):
    table = _table()
    train_it = tf.compat.v1.data.make_initializable_iterator(
        tf.data.Dataset.from_tensor_slices(tf.constant([[1, 2], [3, 4]], tf.int64)))
    eval_it = tf.compat.v1.data.make_initializable_iterator(
        tf.data.Dataset.from_tensor_slices(tf.constant([[1, 50], [2, 60], [3, 70]], tf.int64)))
    train_emb = sparse_lookup(table, train_it.get_next(), is_train=True)
    eval_emb = sparse_lookup(table, eval_it.get_next(), is_train=False)
    with tf.compat.v1.Session() as sess:
        sess.run([tf.compat.v1.global_variables_initializer(), train_it.initializer, eval_it.initializer])
        for _ in range(3):
            sess.run(eval_emb)
        assert table.size() == 0
        sess.run(train_emb)
        sess.run(train_emb)  # the training pipeline still has both its batches
    assert table.size() == 4


def test_lookup_dim_returns_leading_columns(graph):
    table = _table(dim=8)
    emb = sparse_lookup(table, tf.constant([4], tf.int64), dim=3)
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(emb)[0], table.initial_values(np.array([4]))[0, :3])


def _dataset(n_batches=4, batch=8):
    rng = np.random.default_rng(3)
    data = {"user": rng.integers(0, 50, (n_batches * batch,)).astype(np.int64),
            "item": rng.integers(0, 50, (n_batches * batch, 2)).astype(np.int64),
            "label": rng.random(n_batches * batch).astype(np.float32)}
    return data, tf.data.Dataset.from_tensor_slices(data).batch(batch, drop_remainder=True)


@pytest.mark.parametrize("pass_batch", [False, True])
def test_feature_spec_mode_finds_ids_from_the_iterator(graph, pass_batch):
    table_u, table_i = _table("user_t"), _table("item_t")
    specs = [FeatureSpec("user", table_name="user_t"), FeatureSpec("item", table_name="item_t")]
    data, dataset = _dataset()
    dataset = dataset.map(get_asc_insert_func(tgt_key_specs=specs, is_training=True)).prefetch(2)
    iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
    batch = iterator.get_next()
    kwargs = {"batch": batch} if pass_batch else {}
    user = sparse_lookup(table_u, specs[0], **kwargs)
    item = sparse_lookup(table_i, specs[1], **kwargs)
    start_asc_pipeline()
    assert user.shape.as_list() == [8, 4] and item.shape.as_list() == [8, 2, 4]
    with tf.compat.v1.Session() as sess:
        sess.run([tf.compat.v1.global_variables_initializer(), iterator.initializer])
        u, i = sess.run([user, item])
    np.testing.assert_array_equal(u, table_u.initial_values(data["user"][:8]))
    np.testing.assert_array_equal(i.reshape(-1, 4), table_i.initial_values(data["item"][:8].reshape(-1)))


def test_feature_spec_missing_from_batch_names_the_spec(graph):
    _, dataset = _dataset()
    with pytest.raises(KeyError, match="FeatureSpec 'clicks'"):
        dataset.map(get_asc_insert_func(tgt_key_specs=[FeatureSpec("clicks")]))


def test_send_count_is_a_contract_not_a_padding_and_overflow_names_the_count(graph):
    from mx_rec.util.initialize import init
    init(use_dynamic=False)
    table = _table()
    ids = tf.compat.v1.placeholder(tf.int64, [6])
    emb = sparse_lookup(table, ids, send_count=4)
    assert emb.shape.as_list() == [6, 4]
    gather = [op for op in graph.get_operations() if op.type == "ResourceGather"][-1].outputs[0]
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        out, gathered = sess.run([emb, gather], {ids: [1, 2, 1, -1, 3, 3]})
        assert gathered.shape == (3, 4)  # the 3 distinct keys, not send_count rows
        np.testing.assert_array_equal(out[4], table.initial_values(np.array([3]))[0])
        with pytest.raises(tf.errors.OpError, match=r"5 distinct keys .* exceed send_count=4; set send_count >= 5"):
            sess.run(emb, {ids: [10, 11, 12, 13, 14, 10]})
    assert table.size() == 3


def test_uint64_ids_are_keys_by_their_bits_one_to_one(graph):
    table = _table()
    big = np.array([2**63 + 5, 5, 2**64 - 1, 2**63 + 5], np.uint64)
    as_keys = big.view(np.int64)  # 2**63 + 5 -> -(2**63) + 5; 2**64 - 1 -> -1 (padding)
    ids = tf.compat.v1.placeholder(tf.uint64, [4])
    emb = sparse_lookup(table, ids)
    listed = sparse_lookup(table, big[:2], name="from_a_list")
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        out, out_list = sess.run([emb, listed], {ids: big})
    expected = table.initial_values(as_keys)
    expected[2] = 0.0
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out_list, expected[:2])
    assert not np.array_equal(out[0], out[1])  # 2**63 + 5 and 5 stay distinct keys
    assert table.size() == 2


def test_uint64_ids_on_an_int32_table_name_the_table(graph):
    table = create_table(tf.int32, 4, "narrow", INIT, device_vocabulary_size=10)
    with pytest.raises(TypeError, match="table 'narrow': uint64 ids do not fit the table's key_dtype int32"):
        sparse_lookup(table, tf.constant([1], tf.uint64))
    emb = sparse_lookup(table, tf.constant([7], tf.uint16))  # narrower unsigned ids are cast
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(emb), table.initial_values(np.array([7])))


def test_serving_default_value_may_be_a_tensor_computed_from_constants(graph):
    from mx_rec.lookup.registry import recorded_lookups
    table = _table()
    sparse_lookup(table, tf.constant([1], tf.int64), name="train")
    emb = sparse_lookup(table, tf.constant([1, 99], tf.int64), is_train=False,
                        serving_default_value=tf.ones(shape=(4,), dtype=tf.float32) * 2)
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        out = sess.run(emb)
    np.testing.assert_array_equal(out[1], [2.0] * 4)
    assert recorded_lookups()[-1]["default"] == [2.0] * 4
    fed = tf.compat.v1.placeholder(tf.float32, [4])
    with pytest.raises(TypeError, match="table 't': serving_default_value .* depends on 'Placeholder"):
        sparse_lookup(table, tf.constant([1], tf.int64), is_train=False, serving_default_value=fed * 2)


def _train_two_lookups(use_dynamic: bool, **switches):
    """Eight lazy-Adam steps (two batches in turn) of two lookups of one table: (losses, keys, rows,
    slots), sorted by key."""
    from mx_rec.optimizers.lazy_adam import create_hash_optimizer
    from mx_rec.saver.table_state import collect
    from tests.graphs import fresh_graph

    rng = np.random.default_rng(3)
    batches = rng.integers(0, 40, (2, 8, 3))
    batches[rng.random(batches.shape) < 0.1] = -1
    weights = rng.standard_normal((1, 3, 4)).astype(np.float32)
    with fresh_graph(use_dynamic=use_dynamic, **switches):
        opt = create_hash_optimizer(0.05)
        table = _table(size=100)
        ids = tf.compat.v1.placeholder(tf.int64, [8, 3])
        emb = tf.concat([sparse_lookup(table, ids[:, :2], send_count=16),
                         sparse_lookup(table, ids[:, 2:], send_count=8)], axis=1)
        loss = tf.reduce_sum(tf.square(tf.reduce_sum(emb * weights, axis=[1, 2]) - 1.0))
        train = opt.minimize(loss, var_list=[table.variable])
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            losses = [sess.run([loss, train], {ids: batches[step % 2]})[0] for step in range(8)]
            state = collect(table, sess)
    order = np.argsort(state.keys)
    return np.array(losses), state.keys[order], state.embeddings[order], {k: v[order] for k, v in state.slots.items()}


@pytest.mark.parametrize("switches", [{}, {"use_multi_lookup": True}], ids=["two_lookups", "merged_lookups"])
def test_static_shapes_train_bit_identically_to_dynamic_shapes(switches):
    dynamic = _train_two_lookups(True, **switches)
    static = _train_two_lookups(False, **switches)
    assert dynamic[0][-2] < dynamic[0][0], "the model must learn something"
    for a, b in zip(dynamic[:3], static[:3]):
        np.testing.assert_array_equal(a, b)
    assert dynamic[3].keys() == static[3].keys() and dynamic[3]
    for name in dynamic[3]:
        np.testing.assert_array_equal(dynamic[3][name], static[3][name], err_msg=name)
