"""One registry per graph records which lookups exist; a configuration's end empties it."""
import numpy as np
import tensorflow as tf

from mx_rec.config.graph_registry import find_registry, registry_of
from mx_rec.config.initializer import ConfigInitializer
from mx_rec.core.asc.feature_spec import FeatureSpec
from mx_rec.core.asc.helper import get_asc_insert_func
from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.graph.push import push_to_pipeline, pushed_tensors
from mx_rec.lookup.input_pipeline import timestamp_spec_for
from mx_rec.lookup.key_stage import recorded_stages
from mx_rec.lookup.merge import build_pending_lookups
from mx_rec.lookup.registry import recorded_lookups
from mx_rec.optimizers import lazy_adam
from tests.graphs import fresh_graph

INIT = tf.compat.v1.zeros_initializer()


def _build(graph: tf.Graph):
    """In ``graph``: a table, a FeatureSpec pipeline with a timestamp, a merged (pending) training lookup,
    a modify-graph evaluation lookup (a key stage) and a pushed tensor. Returns (table, spec)."""
    table = create_table(tf.int64, 4, "t", INIT, device_vocabulary_size=50)
    lazy_adam.create_hash_optimizer(0.1)
    spec, stamp = FeatureSpec("f", table_name="t"), FeatureSpec("ts", is_timestamp=True)
    data = {"f": np.arange(24, dtype=np.int64).reshape(8, 3), "ts": np.arange(8, dtype=np.int64)}
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(4).map(get_asc_insert_func([spec, stamp]))
    batch = tf.compat.v1.data.make_initializable_iterator(dataset).get_next()
    sparse_lookup(table, spec)  # multi-lookup: recorded, built later
    sparse_lookup(table, batch["f"] + 1, is_train=False, modify_graph=True)
    assert push_to_pipeline(batch["f"] * 2)
    return table, spec


def test_one_registry_per_graph_emptied_when_the_configuration_ends():
    with fresh_graph(use_multi_lookup=True) as first:
        table, spec = _build(first)
        registry = registry_of(first)
        assert registry.tables == {"t": table} and len(registry.hash_optimizers) == 1
        assert [p.specs[0] for p in registry.pipelines.values()] == [spec]  # traced in the map, kept here
        assert timestamp_spec_for(spec).name == "ts"
        assert len(registry.pending) == 1 and len(recorded_stages(first)) == 1 and len(pushed_tensors(first)) == 1
        assert (table.lookup_count, table.built_lookups) == (2, 1)
        with tf.Graph().as_default() as other:  # another graph: a registry of its own, empty
            assert find_registry(other) is None and timestamp_spec_for(spec) is None
            assert build_pending_lookups(other) == 0 and recorded_lookups(other) == []
        assert len(recorded_lookups(first)) == 2
    # fresh_graph terminated the configuration: the first graph's registry is gone with it
    assert find_registry(first) is None and table.lookup_count == 0 and table.built_lookups == 0
    assert recorded_stages(first) == [] and pushed_tensors(first) == [] and build_pending_lookups(first) == 0
    assert len(recorded_lookups(first)) == 2  # the records stay in the graph's collection, beside their ops

    with fresh_graph() as second:
        config = ConfigInitializer.get_instance()
        assert config.tables == {} and list(config.hash_optimizers) == []
        assert timestamp_spec_for(spec) is None and recorded_lookups() == [] and build_pending_lookups() == 0
        again = create_table(tf.int64, 4, "t", INIT, device_vocabulary_size=50)
        assert (again.lookup_count, again.built_lookups) == (0, 0)
        sparse_lookup(again, tf.constant([1, 2], tf.int64))
        assert (again.lookup_count, again.built_lookups) == (1, 1)
        assert registry_of(second).tables == {"t": again} and len(recorded_lookups()) == 1


def test_init_again_empties_the_registry_of_the_same_graph():
    with fresh_graph(use_multi_lookup=True) as graph:
        _build(graph)
        from mx_rec.util.initialize import init
        init()
        assert find_registry(graph) is None and recorded_stages(graph) == [] and build_pending_lookups(graph) == 0


def test_by_address_rows_are_the_registrys_and_go_with_it():
    from mx_rec.constants.constants import ASCEND_SPARSE_LOOKUP_ID_OFFSET
    from mx_rec.optimizers.by_address import _owner
    with fresh_graph(use_dynamic_expansion=True) as graph:
        table = create_table(tf.int64, 4, "t", INIT, device_vocabulary_size=50)
        sparse_lookup(table, tf.constant([3, 4], tf.int64))
        (address,) = tf.compat.v1.get_collection(ASCEND_SPARSE_LOOKUP_ID_OFFSET)
        assert registry_of(graph).addresses == {"t": [address]} and _owner(address) is table
    assert find_registry(graph) is None
