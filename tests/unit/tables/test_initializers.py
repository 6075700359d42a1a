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


VOCAB, DIM = 3000, 16


def _tf_values(initializer, shape=(VOCAB, DIM)):
    """What TensorFlow itself draws for a [vocabulary, dim] variable."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        return sess.run(initializer(shape, dtype=tf.float32))


@pytest.mark.parametrize("make", [
    lambda: tf.compat.v1.glorot_uniform_initializer(seed=1),
    lambda: tf.keras.initializers.GlorotNormal(seed=1),
    lambda: tf.keras.initializers.HeNormal(seed=1),
    lambda: tf.compat.v1.keras.initializers.he_uniform(seed=1),
    lambda: tf.keras.initializers.LecunNormal(seed=1),
    lambda: tf.keras.initializers.LecunUniform(seed=1),
    lambda: tf.compat.v1.variance_scaling_initializer(2.0, mode="fan_avg", distribution="normal", seed=1),
    lambda: tf.keras.initializers.VarianceScaling(0.5, mode="fan_out", distribution="untruncated_normal", seed=1),
    lambda: tf.compat.v1.uniform_unit_scaling_initializer(1.5, seed=1),
    lambda: tf.keras.initializers.Orthogonal(gain=2.0, seed=1),
], ids=["glorot_uniform_v1", "glorot_normal", "he_normal", "he_uniform_v1", "lecun_normal", "lecun_uniform",
        "vs_fan_avg_normal_v1", "vs_fan_out_untruncated", "uniform_unit_scaling", "orthogonal"])
def test_shaped_initializers_spread_rows_as_tensorflow_does_for_the_table_shape(make):
    spec = parse_initializer(make(), "shaped", shape=(VOCAB, DIM))
    ours = initial_rows(spec, KEYS[:VOCAB], DIM)
    theirs = _tf_values(make())
    assert abs(ours.std() / theirs.std() - 1) < 0.05, (ours.std(), theirs.std())
    assert abs(ours.mean()) < 0.1 * theirs.std()
    assert np.abs(ours).max() <= np.abs(theirs).max() * 1.5  # bounded where TF's are (uniform, truncated)
    np.testing.assert_array_equal(initial_rows(spec, KEYS[10:20], DIM), ours[10:20])  # a function of the key


def test_shaped_initializers_use_the_whole_table_vocabulary_whatever_the_tier():
    from mx_rec.tables.config import make_table_config
    he = tf.keras.initializers.HeUniform(seed=4)
    hbm = make_table_config(tf.int64, DIM, "he", he, device_vocabulary_size=VOCAB)
    ddr = make_table_config(tf.int64, DIM, "he", he, device_vocabulary_size=VOCAB // 10,
                            host_vocabulary_size=VOCAB - VOCAB // 10)
    assert hbm.init_shape == ddr.init_shape == (VOCAB, DIM)
    assert parse_initializer(he, "he", shape=hbm.init_shape) == parse_initializer(he, "he", shape=ddr.init_shape)
    limit = parse_initializer(he, "he", shape=hbm.init_shape).b
    assert limit == pytest.approx(np.sqrt(6.0 / VOCAB))


@pytest.mark.parametrize("initializer, name", [
    (tf.keras.initializers.Identity(), "Identity"),
    (lambda shape, dtype=None: tf.zeros(shape, dtype), "function"),
])
def test_unsupported_initializer_names_the_table(initializer, name):
    with pytest.raises(TypeError, match=f"table 'tt': emb_initializer {name} is not supported; use one of"):
        parse_initializer(initializer, "tt", shape=(10, 2))


def test_bad_variance_scaling_settings_name_the_table():
    bad = tf.keras.initializers.VarianceScaling()
    bad.mode = "fan_sideways"
    with pytest.raises(ValueError, match="table 'vs': emb_initializer mode 'fan_sideways'"):
        parse_initializer(bad, "vs", shape=(10, 2))
