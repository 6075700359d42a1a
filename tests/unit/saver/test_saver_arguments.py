"""The hooked Saver takes every argument form TF's own Saver takes, and gives the same prefixes and files.

Each case saves the same trained session twice, once with mx_rec's hook installed and once with
TF's plain Saver (hook removed), and compares the returned prefix and the files TF wrote; the
hooked checkpoint then restores the table rows bit-identically.
"""
import os

import numpy as np
import pytest
import tensorflow as tf

from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.optimizers import lazy_adam
from mx_rec.saver import tf_saver
from tests.graphs import fresh_graph

INIT = tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=1)
STEP = 7


def _model():
    table = create_table(tf.int64, 4, "t", INIT, device_vocabulary_size=50)
    ids = tf.compat.v1.placeholder(tf.int64, [None])
    w = tf.compat.v1.get_variable("w", [4], initializer=tf.constant_initializer(0.5))
    loss = tf.reduce_sum(sparse_lookup(table, ids) * w)
    step = tf.compat.v1.train.get_or_create_global_step()
    train = tf.group(lazy_adam.create_hash_optimizer(0.1).minimize(loss, var_list=[table.variable]),
                     tf.compat.v1.assign(step, STEP))
    return table, ids, train, step


def _rows(sess, table):
    keys, rows = table.backend.items()
    order = np.argsort(keys)
    return keys[order], sess.run(table.variable)[rows[order]]


# global_step forms TF documents: None, a Python int, a numpy integer (what MonitoredTrainingSession's
# CheckpointSaverHook passes), a tensor, a variable and a tensor name
STEP_FORMS = {
    "none": lambda step: None,
    "int": lambda step: STEP,
    "numpy_int64": lambda step: np.int64(STEP),
    "numpy_int32": lambda step: np.int32(STEP),
    "tensor": lambda step: tf.identity(step),
    "variable": lambda step: step,
    "name": lambda step: tf.identity(step, name="step_value").name,  # a tensor name
}


def _files(folder):
    return sorted(f for f in os.listdir(folder) if not f.endswith("-mxrec-sparse"))


@pytest.mark.parametrize("form", sorted(STEP_FORMS))
def test_global_step_forms_match_tf(graph, tmp_path, form):
    table, ids, train, step = _model()
    global_step = STEP_FORMS[form](step)
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(train, {ids: [1, 2, 3]})
        keys, rows = _rows(sess, table)
        ours = tf.compat.v1.train.Saver().save(sess, str(tmp_path / "ours" / "model"), global_step=global_step)
        tf_saver.uninstall()
        try:
            theirs = tf.compat.v1.train.Saver().save(sess, str(tmp_path / "tf" / "model"), global_step=global_step)
        finally:
            tf_saver.install()
    assert os.path.relpath(ours, tmp_path / "ours") == os.path.relpath(theirs, tmp_path / "tf")
    assert ours.endswith("model" if form == "none" else f"model-{STEP}")
    assert _files(tmp_path / "ours") == _files(tmp_path / "tf")
    assert os.path.isdir(ours + "-mxrec-sparse")
    assert tf.compat.v1.train.latest_checkpoint(str(tmp_path / "ours")) == ours
    with fresh_graph():  # a new graph and configuration, as a new process would have
        table, ids, train, step = _model()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().restore(sess, ours.encode())  # bytes, as TF accepts
            got_keys, got_rows = _rows(sess, table)
            assert sess.run(step) == STEP
    np.testing.assert_array_equal(got_keys, keys)
    np.testing.assert_array_equal(got_rows, rows)


def test_other_save_arguments_match_tf(graph, tmp_path):
    """Positional and keyword forms of latest_filename, meta_graph_suffix, write_meta_graph, write_state,
    strip_default_attrs, save_debug_info, and a bytes save_path."""
    table, ids, train, step = _model()
    cases = [
        ((STEP, "state"), {}),
        ((STEP,), dict(latest_filename="state2", meta_graph_suffix="mg", strip_default_attrs=True)),
        ((np.int64(STEP), None, "meta", False), {}),
        ((step,), dict(write_state=False)),
        ((None, None, "meta", True, True, True, True), {}),
    ]
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(train, {ids: [4, 5]})
        for index, (args, kwargs) in enumerate(cases):
            results = {}
            for who in ("ours", "tf"):
                if who == "tf":
                    tf_saver.uninstall()
                try:
                    folder = tmp_path / f"{who}{index}"
                    path = str(folder / "model").encode() if index == 4 else str(folder / "model")
                    results[who] = tf.compat.v1.train.Saver().save(sess, path, *args, **kwargs)
                finally:
                    tf_saver.install()
            assert os.path.basename(results["ours"]) == os.path.basename(results["tf"]), (args, kwargs)
            assert _files(tmp_path / f"ours{index}") == _files(tmp_path / f"tf{index}"), (args, kwargs)
            assert os.path.isdir(results["ours"] + "-mxrec-sparse")


def test_arguments_tf_refuses_fail_the_same_way_before_writing(graph, tmp_path):
    table, ids, train, step = _model()
    saver = tf.compat.v1.train.Saver()
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        with pytest.raises(ValueError, match="must not contain path components"):
            saver.save(sess, str(tmp_path / "model"), global_step=1, latest_filename="sub/checkpoint")
        assert os.listdir(tmp_path) == []
        with pytest.raises(ValueError, match="save_path when it is None"):
            saver.restore(sess, None)
        with pytest.raises(ValueError, match="not a valid checkpoint"):
            saver.restore(sess, str(tmp_path / "nothing-here"))


def test_deferred_build_as_estimators_scaffold_makes_it(graph, tmp_path):
    """``Saver(sharded=True, defer_build=True)`` then ``build()``: what tf.estimator's scaffold does."""
    table, ids, train, step = _model()
    saver = tf.compat.v1.train.Saver(sharded=True, defer_build=True, save_relative_paths=True)
    late = tf.compat.v1.get_variable("late", [2], initializer=tf.constant_initializer(3.0))  # made before build()
    saver.build()
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(train, {ids: [1, 2]})
        prefix = saver.save(sess, str(tmp_path / "model"), global_step=np.int64(STEP))
    names = {name for name, _ in tf.train.list_variables(prefix)}
    assert {"late", "w", "global_step"} <= names and not any(n == "t" or n.startswith("t/") for n in names)
    assert os.path.isdir(prefix + "-mxrec-sparse") and late is not None
