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


def test_bfloat16_rounding_of_ties_extremes_and_nans_is_tf_casts(monkeypatch):
    """beta1 = beta2 = 0 and step 0: m = bf16(g), v = bf16(g * g), rows unchanged unless g is NaN."""
    bits = np.array([0x3F808000, 0x3F818000, 0x3F800001, 0x7F7FFFFF, 0xFF800000, 0x7FC00001, 0xFFC00000,
                     0x00000001, 0x80000001, 0x00000000], np.uint32)
    grads = bits.view(np.float32)[None, :]
    results = []
    for fused in (True, False):
        monkeypatch.setenv(library.ENV_NAME, "1" if fused else "0")
        with tf.Graph().as_default(), tf.compat.v1.Session() as session:
            var, m, v = (tf.compat.v1.Variable(tf.ones([2, bits.size], tf.bfloat16), use_resource=True)
                         for _ in range(3))
            zero = tf.compat.v1.placeholder(tf.float32, [])  # fed, so grappler folds no multiplication by 0
            update = ops.sparse_lazy_adam(var, m, v, zero, zero, zero, tf.constant(1e-8), tf.constant(grads),
                                          tf.constant([1], tf.int64))
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(update, {zero: 0.0})
            results.append([np.asarray(x).view(np.uint16) for x in session.run([var, m, v])])
    for a, b in zip(*results):  # bit for bit, but a NaN's sign (x86's 0 * inf is -NaN, Eigen's ops may differ)
        nan = (a & 0x7FFF) > 0x7F80
        np.testing.assert_array_equal(nan, (b & 0x7FFF) > 0x7F80)
        np.testing.assert_array_equal(a[~nan], b[~nan])
    normal = slice(0, 7)  # TF's threads flush denormal floats to zero, numpy does not
    np.testing.assert_array_equal(results[0][1][1][normal],
                                  grads[0, normal].astype(tf.bfloat16.as_numpy_dtype).view(np.uint16))
    assert results[0][1][1][:2].tolist() == [0x3F80, 0x3F82]  # ties to even
