"""FeatureSpecs as Rec SDK defines them: names may repeat (two tables reading one feature, one spec
per lookup of a table), each spec reads the batch through index_key, and training is the same as
with distinct names."""
import numpy as np
import pytest
import tensorflow as tf

from mx_rec.core.asc.feature_spec import FeatureSpec
from mx_rec.core.asc.helper import get_asc_insert_func
from mx_rec.core.asc.manager import start_asc_pipeline
from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.optimizers.gradient_descent import create_hash_optimizer as sgd
from tests.graphs import fresh_graph

N, B, STEPS = 64, 8, 6
INIT = tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=11)


def _data(copies=()):
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 40, (N, 3)).astype(np.int64)
    data = {"sparse_feature": ids, "label": rng.random(N).astype(np.float32)}
    data.update({key: ids.copy() for key in copies})
    return data


def _train(specs, tables, copies=(), **init_kwargs):
    """Train STEPS steps; each spec is looked up in its table (ids found from the iterator):
    (losses, rows of every table for keys 0..39)."""
    with fresh_graph(**init_kwargs):
        made = {}
        for name, dim in tables.items():
            made[name] = create_table(tf.int64, dim, name, INIT, device_vocabulary_size=100)
        dataset = tf.data.Dataset.from_tensor_slices(_data(copies)).batch(B, drop_remainder=True)
        dataset = dataset.map(get_asc_insert_func(tgt_key_specs=specs, is_training=True))
        iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
        batch = iterator.get_next()
        total = 0.0
        for i, spec in enumerate(specs):
            emb = sparse_lookup(made[spec.table_name], spec, name=f"lookup_{i}")
            total += tf.reduce_sum(emb * (i + 1.0), axis=[1, 2])
        loss = tf.reduce_mean(tf.square(total - batch["label"]))
        train = sgd(0.05).minimize(loss, var_list=[t.variable for t in made.values()])
        start_asc_pipeline()
        with tf.compat.v1.Session() as sess:
            sess.run([tf.compat.v1.global_variables_initializer(), iterator.initializer])
            losses = [sess.run([loss, train])[0] for _ in range(STEPS)]
            rows = {}
            for name, table in made.items():
                keys, where = table.backend.items()
                order = np.argsort(keys)
                rows[name] = (keys[order], sess.run(table.variable)[where[order]])
    return np.array(losses), rows


def _assert_same(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    for name in a[1]:
        np.testing.assert_array_equal(a[1][name][0], b[1][name][0])
        np.testing.assert_array_equal(a[1][name][1], b[1][name][1])


def test_wide_and_deep_tables_reading_one_feature_train_as_with_distinct_names():
    tables = {"wide": 1, "deep": 4}
    shared = _train([FeatureSpec("sparse_feature", table_name="wide"),
                     FeatureSpec("sparse_feature", table_name="deep")], tables)
    distinct = _train([FeatureSpec("wide_ids", table_name="wide"), FeatureSpec("deep_ids", table_name="deep")],
                      tables, copies=("wide_ids", "deep_ids"))
    assert shared[0][-1] < shared[0][0]
    _assert_same(shared, distinct)


@pytest.mark.parametrize("multi_lookup", [False, True], ids=["separate", "merged"])
def test_one_spec_per_lookup_of_a_table_trains_as_with_distinct_names(multi_lookup):
    shared = _train([FeatureSpec("sparse_feature", table_name="t"), FeatureSpec("sparse_feature", table_name="t")],
                    {"t": 4}, use_multi_lookup=multi_lookup)
    distinct = _train([FeatureSpec("a", table_name="t", index_key="sparse_feature"),
                       FeatureSpec("b", table_name="t", index_key="sparse_feature")],
                      {"t": 4}, use_multi_lookup=multi_lookup)
    assert shared[0][-1] < shared[0][0]
    _assert_same(shared, distinct)


def test_specs_of_one_name_get_unique_internal_names_and_read_index_key():
    first, second = FeatureSpec("clicks_x"), FeatureSpec("clicks_x", index_key="raw_clicks")
    assert first.unique_name == "clicks_x" and second.unique_name == "clicks_x_1"
    assert (first.index_key, second.index_key) == ("clicks_x", "raw_clicks")
    assert "(internal name 'clicks_x_1" in second.label


@pytest.mark.parametrize("kwargs, match", [
    (dict(access_threshold=-2), r"access_threshold must be an int in \[0, 2147483647\]"),
    (dict(eviction_threshold=2**31), "eviction_threshold must be an int"),
    (dict(batch_size=0), r"batch_size must be an int in \[1, 2147483647\]"),
    (dict(faae_coefficient=0), "faae_coefficient must be an int"),
    (dict(index_key=256), r"an int index_key must be in \[0, 255\]"),
    (dict(table_name=""), "table_name must be a string of 1 to 255 characters"),
])
def test_spec_arguments_outside_rec_sdk_ranges_name_the_spec(kwargs, match):
    with pytest.raises(ValueError, match=f"FeatureSpec 'f': {match}"):
        FeatureSpec("f", **kwargs)


def test_minus_one_thresholds_switch_admission_and_eviction_off():
    spec = FeatureSpec("g", access_threshold=-1, eviction_threshold=-1)
    assert spec.access_threshold is None and spec.eviction_threshold is None


def test_insert_func_ignores_undocumented_keywords_as_rec_sdk_does(graph):
    insert = get_asc_insert_func(tgt_key_specs=[FeatureSpec("sparse_feature")], is_training=True, dump_graph=True,
                                 unused_option=3)
    batch = tf.compat.v1.data.make_one_shot_iterator(
        tf.data.Dataset.from_tensor_slices(_data()).batch(B).map(insert)).get_next()
    assert batch["sparse_feature"].shape.as_list() == [None, 3]
