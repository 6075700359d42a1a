"""Bad input gets a clear error naming the table or the argument (bad optimizer input:
``tests/unit/optimizers/test_optimizer_errors.py``)."""
import numpy as np
import pytest
import tensorflow as tf

from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.util.initialize import init, terminate_config_initializer

INIT = tf.compat.v1.truncated_normal_initializer(stddev=0.1)


def test_create_table_before_init():
    terminate_config_initializer()
    with tf.Graph().as_default(), pytest.raises(RuntimeError, match=r"call mx_rec.util.initialize.init\(\) first"):
        create_table(tf.int64, 4, "t", INIT)


def test_unknown_or_out_of_range_init_keyword():
    with pytest.raises(ValueError, match=r"unknown keyword\(s\) \['train_stpes'\]"):
        init(train_stpes=10)
    with pytest.raises(ValueError, match="use_dynamic must be True or False"):
        init(use_dynamic="yes")
    with pytest.raises(ValueError, match=r"train_steps=-5 is outside"):
        init(train_steps=-5)


@pytest.mark.parametrize("dim", [0, 8193, -1])
def test_dim_outside_range_names_the_table(graph, dim):
    with pytest.raises(ValueError, match=rf"table 'wide': dim={dim} is outside \[1, 8192\]"):
        create_table(tf.int64, dim, "wide", INIT)


def test_wrong_key_dtype_names_the_table(graph):
    with pytest.raises(TypeError, match="table 'k': key_dtype must be tf.int64 or tf.int32, got float32"):
        create_table(tf.float32, 4, "k", INIT)
    table = create_table(tf.int64, 4, "k64", INIT)
    with pytest.raises(TypeError, match="table 'k64': ids are int32 but the table's key_dtype is int64"):
        sparse_lookup(table, tf.constant([1, 2], tf.int32))


def test_float_ids_name_the_table(graph):
    table = create_table(tf.int64, 4, "f", INIT)
    with pytest.raises(TypeError, match="table 'f': ids must be an integer tensor, got float32"):
        sparse_lookup(table, tf.constant([1.0, 2.0]))
    with pytest.raises(TypeError, match="table 'f': ids must be integers"):
        sparse_lookup(table, np.array([1.5]))


def test_duplicate_table_name(graph):
    create_table(tf.int64, 4, "dup", INIT)
    with pytest.raises(ValueError, match="table 'dup' already exists"):
        create_table(tf.int64, 8, "dup", INIT)


def test_full_table_names_table_and_size_to_set(graph):
    table = create_table(tf.int64, 4, "small", INIT, device_vocabulary_size=5)
    ids = tf.compat.v1.placeholder(tf.int64, [None])
    emb = sparse_lookup(table, ids)
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(emb, {ids: [1, 2, 3]})
        with pytest.raises(tf.errors.OpError,
                           match=r"table 'small' is full: .*at least 7 rows.*device_vocabulary_size"):
            sess.run(emb, {ids: [3, 4, 5, 6, 7]})
        assert table.size() == 3
        sess.run(emb, {ids: [4, 5]})  # the failed batch lost nothing: what fits still fits
    assert table.size() == 5
