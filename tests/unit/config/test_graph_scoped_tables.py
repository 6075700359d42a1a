"""Tables are registered per graph (an Estimator calls ``model_fn`` in a new graph for every call)."""
import gc
import weakref

import pytest
import tensorflow as tf

from mx_rec.config.initializer import ConfigInitializer
from mx_rec.core.embedding import create_table
from mx_rec.optimizers import lazy_adam

INIT = tf.compat.v1.zeros_initializer()


def test_duplicate_in_one_graph_still_raises(graph):
    create_table(tf.int64, 4, "t", INIT, device_vocabulary_size=10)
    with pytest.raises(ValueError, match="table 't' already exists"):
        create_table(tf.int64, 4, "t", INIT, device_vocabulary_size=10)


def test_same_name_in_a_new_graph_is_that_graphs_table(graph):
    config = ConfigInitializer.get_instance()
    first = create_table(tf.int64, 4, "t", INIT, device_vocabulary_size=10)
    with tf.Graph().as_default() as other:
        second = create_table(tf.int64, 4, "t", INIT, device_vocabulary_size=10)
        assert config.tables == {"t": second} and config.sparse_variables() == [second.variable]
        assert config.table_in_graph("t") and second.variable.graph is other
        with pytest.raises(ValueError, match="already exists"):
            create_table(tf.int64, 4, "t", INIT, device_vocabulary_size=10)
    assert config.tables == {"t": first}  # back in the first graph: its own table
    with tf.Graph().as_default():  # a graph without tables (a TF thread's default graph): the newest graph's
        assert config.tables == {"t": second}


def test_hash_optimizers_are_per_graph(graph):
    config = ConfigInitializer.get_instance()
    opt = lazy_adam.create_hash_optimizer(0.1)
    with tf.Graph().as_default():
        assert list(config.hash_optimizers) == []
        other = lazy_adam.create_hash_optimizer(0.1)
        assert list(config.hash_optimizers) == [other]
    assert list(config.hash_optimizers) == [opt]


def test_a_finished_graph_is_collected_with_its_tables(graph):
    def build():
        with tf.Graph().as_default() as g:
            table = create_table(tf.int64, 4, "t", INIT, device_vocabulary_size=10)
            return weakref.ref(g), weakref.ref(table)

    graph_ref, table_ref = build()
    gc.collect()
    assert graph_ref() is None and table_ref() is None  # mx_rec keeps no reference to a dead graph's table


def test_a_new_configuration_does_not_see_the_old_tables(graph):
    from mx_rec.util.initialize import init
    create_table(tf.int64, 4, "t", INIT, device_vocabulary_size=10)
    init()  # again, same graph: the previous configuration and its tables are dropped
    assert ConfigInitializer.get_instance().tables == {}
    create_table(tf.int64, 4, "t", INIT, device_vocabulary_size=10)
