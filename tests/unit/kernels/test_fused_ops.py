"""The compiled kernels against TF's own ops: built by bootstrap, loaded, and giving the same numbers."""
import numpy as np
import pytest
import tensorflow as tf

from mx_rec.kernels import build, library, ops

ROWS, DIM = 300, 8


@pytest.fixture
def fallback(monkeypatch):
    """Run a block with the kernels off (TF's ops), then on again."""
    def off():
        monkeypatch.setenv(library.ENV_NAME, "0")
    yield off
    monkeypatch.delenv(library.ENV_NAME, raising=False)


def test_bootstrap_built_the_library_for_this_tensorflow():
    assert build.library_path().exists(), f"tools/bootstrap.sh should have built {build.library_path()}"
    lib = library.library()
    assert lib is not None and hasattr(lib, "mxrec_sparse_lazy_adam") and hasattr(lib, "mxrec_segment_sum")


def _adam_run(storage, indices_steps, grads, monkeypatch, fused: bool):
    monkeypatch.setenv(library.ENV_NAME, "1" if fused else "0")
    math = tf.float64 if storage == tf.float64 else tf.float32
    rng = np.random.default_rng(1)
    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as session:
        init = rng.standard_normal((ROWS, DIM))
        var, m, v = (tf.compat.v1.Variable(tf.cast(x, storage), use_resource=True)
                     for x in (init, np.zeros_like(init), np.full_like(init, 0.01)))
        idx = tf.compat.v1.placeholder(tf.int64, [None])
        grad = tf.compat.v1.placeholder(math, [None, DIM])
        step = tf.compat.v1.placeholder(math, [])
        update = ops.sparse_lazy_adam(var, m, v, step, tf.constant(0.9, math), tf.constant(0.999, math),
                                      tf.constant(1e-8, math), grad, idx)
        session.run(tf.compat.v1.global_variables_initializer())
        for t, (indices, g) in enumerate(zip(indices_steps, grads), start=1):
            session.run(update, {idx: indices, grad: g, step: 0.01 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)})
        types = {op.type for op in graph.get_operations()}
        return [tf.cast(x, tf.float64).eval() for x in (var, m, v)], types


def _steps(rng, steps=3, n=120):
    indices = [rng.choice(ROWS, n, replace=False).astype(np.int64) for _ in range(steps)]
    return indices, [rng.standard_normal((n, DIM)) for _ in range(steps)]


@pytest.mark.parametrize("storage", [tf.float32, tf.float64, tf.float16, tf.bfloat16])
def test_fused_lazy_adam_matches_tf_ops_bit_for_bit(storage, monkeypatch):
    indices, grads = _steps(np.random.default_rng(0))
    fused, fused_types = _adam_run(storage, indices, grads, monkeypatch, fused=True)
    plain, plain_types = _adam_run(storage, indices, grads, monkeypatch, fused=False)
    assert "MxrecSparseLazyAdam" in fused_types and "MxrecSparseLazyAdam" not in plain_types
    for a, b in zip(fused, plain):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(fused[0], _adam_run(storage, indices[:1], grads[:1], monkeypatch, True)[0][0])


def test_repeated_rows_are_updated_once_per_occurrence_in_order(monkeypatch):
    rng = np.random.default_rng(2)
    first = rng.choice(ROWS, 50, replace=False).astype(np.int64)
    second = np.concatenate([first[:20], rng.choice(np.setdiff1d(np.arange(ROWS), first), 10, replace=False)])
    g1, g2 = rng.standard_normal((50, DIM)), rng.standard_normal((30, DIM))
    together, _ = _adam_run(tf.float32, [np.concatenate([first, second])], [np.concatenate([g1, g2])], monkeypatch,
                            fused=True)
    # the same two updates as two steps of distinct rows, with step 1's step size both times
    monkeypatch.setenv(library.ENV_NAME, "0")
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        rng1 = np.random.default_rng(1)
        init = rng1.standard_normal((ROWS, DIM))
        var, m, v = (tf.compat.v1.Variable(tf.cast(x, tf.float32), use_resource=True)
                     for x in (init, np.zeros_like(init), np.full_like(init, 0.01)))
        idx = tf.compat.v1.placeholder(tf.int64, [None])
        grad = tf.compat.v1.placeholder(tf.float32, [None, DIM])
        update = ops.sparse_lazy_adam(var, m, v, tf.constant(0.01 * np.sqrt(1 - 0.999) / (1 - 0.9), tf.float32),
                                      tf.constant(0.9), tf.constant(0.999), tf.constant(1e-8), grad, idx)
        session.run(tf.compat.v1.global_variables_initializer())
        session.run(update, {idx: first, grad: g1})
        session.run(update, {idx: second, grad: g2})
        in_rounds = [x.eval() for x in (var, m, v)]
    for a, b in zip(together, in_rounds):
        np.testing.assert_array_equal(a, b)


def test_an_index_outside_the_variable_is_refused_naming_it():
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        var, m, v = (tf.compat.v1.Variable(tf.zeros([4, 2]), use_resource=True) for _ in range(3))
        update = ops.sparse_lazy_adam(var, m, v, tf.constant(0.1), tf.constant(0.9), tf.constant(0.999),
                                      tf.constant(1e-8), tf.ones([2, 2]), tf.constant([1, 7], tf.int64))
        session.run(tf.compat.v1.global_variables_initializer())
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"indices\[1\] = 7 is not a row of var \(4 rows\)"):
            session.run(update)
        np.testing.assert_array_equal(var.eval(), np.zeros([4, 2]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_segment_sum_is_tf_unsorted_segment_sum_bit_for_bit(dtype):
    rng = np.random.default_rng(3)
    data = rng.standard_normal((5000, 16)).astype(dtype)
    ids = rng.integers(-1, 700, 5000).astype(np.int32)  # -1: dropped, as TF drops it
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        x = tf.constant(data)
        ours = ops.segment_sum(x, tf.constant(ids), 702)
        theirs = tf.math.unsorted_segment_sum(x, tf.constant(ids), 702)
        assert ours.op.type == "MxrecSegmentSum" and ours.shape.as_list() == [702, 16]
        a, b = session.run([ours, theirs])
        np.testing.assert_array_equal(a, b)
        ga, gb = session.run([tf.gradients(tf.reduce_sum(ours * ours), x)[0],
                              tf.gradients(tf.reduce_sum(theirs * theirs), x)[0]])
        np.testing.assert_array_equal(ga, gb)
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"segment_ids\[1\] = 9 is not below num_segments"):
            session.run(ops.segment_sum(tf.ones([2, 3]), tf.constant([0, 9]), 4))


def test_a_failed_build_leaves_nothing_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MXREC_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "false")  # a "compiler" that fails at once
    with pytest.raises(build.KernelBuildError, match="building libmx_rec_kernels.so failed"):
        build.build()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_without_the_library_tf_ops_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MXREC_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(library, "_loaded", {})
    assert library.library() is None
    with tf.Graph().as_default():
        out = ops.segment_sum(tf.ones([3, 2]), tf.constant([0, 0, 1]), 2)
        assert out.op.type == "UnsortedSegmentSum"
