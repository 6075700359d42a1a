"""The fused lazy Adam with slots of another dtype than the rows: same numbers as TF's ops, float32 math."""
import numpy as np
import pytest
import tensorflow as tf

from mx_rec.kernels import library, ops

ROWS, DIM = 200, 8
PAIRS = [(tf.float32, tf.bfloat16), (tf.float32, tf.float16), (tf.bfloat16, tf.float32), (tf.float16, tf.bfloat16)]


def _run(rows_dtype, slot_dtype, monkeypatch, fused: bool, steps: int = 3):
    monkeypatch.setenv(library.ENV_NAME, "1" if fused else "0")
    rng = np.random.default_rng(7)
    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as session:
        init = rng.standard_normal((ROWS, DIM))
        var = tf.compat.v1.Variable(tf.cast(init, rows_dtype), use_resource=True)
        m, v = (tf.compat.v1.Variable(tf.cast(x, slot_dtype), use_resource=True)
                for x in (np.zeros_like(init), np.full_like(init, 0.01)))
        idx = tf.compat.v1.placeholder(tf.int64, [None])
        grad = tf.compat.v1.placeholder(tf.float32, [None, DIM])
        step = tf.compat.v1.placeholder(tf.float32, [])
        update = ops.sparse_lazy_adam(var, m, v, step, tf.constant(0.9), tf.constant(0.999), tf.constant(1e-8),
                                      grad, idx)
        session.run(tf.compat.v1.global_variables_initializer())
        for t in range(1, steps + 1):
            indices = rng.choice(ROWS, 90, replace=False).astype(np.int64)
            session.run(update, {idx: indices, grad: rng.standard_normal((90, DIM)),
                                 step: 0.01 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)})
        assert ("MxrecSparseLazyAdam" in {op.type for op in graph.get_operations()}) == fused
        return [x.dtype.base_dtype for x in (var, m, v)], [tf.cast(x, tf.float64).eval() for x in (var, m, v)]


@pytest.mark.parametrize("rows_dtype,slot_dtype", PAIRS)
def test_mixed_rows_and_slots_match_tf_ops_bit_for_bit(rows_dtype, slot_dtype, monkeypatch):
    dtypes, fused = _run(rows_dtype, slot_dtype, monkeypatch, fused=True)
    _, plain = _run(rows_dtype, slot_dtype, monkeypatch, fused=False)
    assert dtypes == [rows_dtype, slot_dtype, slot_dtype]
    for a, b in zip(fused, plain):
        np.testing.assert_array_equal(a, b)
    # float32 math: the float32 run rounded to the storage types is within one rounding of it
    _, wide = _run(tf.float32, tf.float32, monkeypatch, fused=True)
    rel = {tf.float32: 1e-6, tf.float16: 2.0 ** -10, tf.bfloat16: 2.0 ** -7}
    assert not np.array_equal(fused[1], wide[1]) or slot_dtype == tf.float32
    coarse = max(rel[rows_dtype], rel[slot_dtype])  # rounded slots move the rows too
    for narrow, exact in zip(fused, wide):  # a few roundings, relative to the values' scale
        assert np.abs(narrow - exact).max() <= 3 * coarse * np.abs(exact).max()


def test_slots_of_two_dtypes_are_refused(monkeypatch):
    with tf.Graph().as_default():
        var = tf.compat.v1.Variable(tf.zeros([4, 2]), use_resource=True)
        m = tf.compat.v1.Variable(tf.zeros([4, 2], tf.float16), use_resource=True)
        v = tf.compat.v1.Variable(tf.zeros([4, 2], tf.bfloat16), use_resource=True)
        with pytest.raises(TypeError, match="slots m \\(float16\\) and v \\(bfloat16\\) of .* must share one dtype"):
            ops.sparse_lazy_adam(var, m, v, tf.constant(0.1), tf.constant(0.9), tf.constant(0.999),
                                 tf.constant(1e-8), tf.zeros([1, 2]), tf.constant([0], tf.int64))
