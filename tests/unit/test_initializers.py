"""Initial rows are a deterministic function of (table, key, initializer) with the right distribution."""
import numpy as np
import pytest
import tensorflow as tf

from mx_rec.tables.initializers import initial_rows, parse_initializer

KEYS = np.arange(-20_000, 20_000, dtype=np.int64) * 7919


def test_same_key_same_row_whatever_the_batch_order():
    spec = parse_initializer(tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=3), "t")
    rows = initial_rows(spec, KEYS, 8)
    perm = np.random.default_rng(0).permutation(len(KEYS))
    np.testing.assert_array_equal(initial_rows(spec, KEYS[perm], 8), rows[perm])
    np.testing.assert_array_equal(initial_rows(spec, KEYS[:5], 8), rows[:5])


def test_table_name_and_seed_change_the_rows():
    base = initial_rows(parse_initializer(tf.random_normal_initializer(seed=1), "a"), KEYS[:100], 4)
    other_table = initial_rows(parse_initializer(tf.random_normal_initializer(seed=1), "b"), KEYS[:100], 4)
    other_seed = initial_rows(parse_initializer(tf.random_normal_initializer(seed=2), "a"), KEYS[:100], 4)
    assert not np.allclose(base, other_table) and not np.allclose(base, other_seed)


def test_truncated_normal_stays_within_two_stddev_with_the_truncated_spread():
    rows = initial_rows(parse_initializer(tf.compat.v1.truncated_normal_initializer(0.5, 0.1), "t"), KEYS, 4)
    assert rows.min() >= 0.5 - 0.2 and rows.max() <= 0.5 + 0.2
    assert abs(rows.mean() - 0.5) < 0.002
    assert abs(rows.std() - 0.1 * 0.8796) < 0.002  # std of a normal truncated at +-2 sigma


def test_normal_uniform_constant_and_init_param():
    normal = initial_rows(parse_initializer(tf.keras.initializers.RandomNormal(1.0, 2.0), "t"), KEYS, 4)
    assert abs(normal.mean() - 1.0) < 0.03 and abs(normal.std() - 2.0) < 0.03
    uniform = initial_rows(parse_initializer(tf.random_uniform_initializer(-3, 5), "t"), KEYS, 4)
    assert uniform.min() >= -3 and uniform.max() < 5 and abs(uniform.mean() - 1.0) < 0.05
    const = initial_rows(parse_initializer(tf.constant_initializer(0.25), "t", init_param=2.0), KEYS[:3], 4)
    np.testing.assert_array_equal(const, np.full((3, 4), 0.5, np.float32))
    ones = initial_rows(parse_initializer(tf.ones_initializer(), "t"), KEYS[:3], 2)
    np.testing.assert_array_equal(ones, np.ones((3, 2), np.float32))


def test_unsupported_initializer_names_the_table():
    with pytest.raises(TypeError, match="table 'tt'.*GlorotUniform"):
        parse_initializer(tf.compat.v1.glorot_uniform_initializer(), "tt")
