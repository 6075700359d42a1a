"""The Rec SDK import paths (SPEC section 3) resolve, and single-process collectives are identities."""
import importlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

DOORS = {
    "mx_rec.util.initialize": ["init", "terminate_config_initializer", "ConfigInitializer", "get_rank_id",
                               "get_rank_size", "get_local_rank_size"],
    "mx_rec.util.communication.hccl_ops": ["get_rank_id", "get_rank_size", "get_local_rank_size", "allreduce",
                                           "all_to_all_v", "broadcast"],
    "mx_rec.core.embedding": ["create_table", "sparse_lookup"],
    "mx_rec.core.asc.feature_spec": ["FeatureSpec"],
    "mx_rec.core.asc.helper": ["FeatureSpec", "get_asc_insert_func"],
    "mx_rec.core.asc.manager": ["start_asc_pipeline"],
    "mx_rec.optimizers.gradient_descent": ["create_hash_optimizer"],
    "mx_rec.optimizers.lazy_adam": ["create_hash_optimizer"],
    "mx_rec.optimizers.adagrad": ["create_hash_optimizer"],
    "mx_rec.optimizers.ftrl": ["create_hash_optimizer"],
    "mx_rec.util.variable": ["get_dense_and_sparse_variable"],
    "mx_rec.constants.constants": ["ASCEND_TIMESTAMP", "ASCEND_SPARSE_LOOKUP_LOCAL_EMB",
                                   "ASCEND_SPARSE_LOOKUP_ID_OFFSET", "ASCEND_GLOBAL_HASHTABLE_COLLECTION"],
    "mx_rec.util.log": ["logger"],
    "mx_rec.util.ops": ["import_host_pipeline_ops"],
    "mx_rec.core.feature_process": ["EvictHook"],
    "mx_rec.saver.sparse": ["export"],
    "mx_rec.optimizers.gradient_descent_by_addr": ["create_hash_optimizer_by_addr"],
    "mx_rec.optimizers.lazy_adam_by_addr": ["create_hash_optimizer_by_address"],
    "mx_rec.optimizers.adagrad_by_addr": ["create_hash_optimizer_by_address"],
}


@pytest.mark.parametrize("module", sorted(DOORS))
def test_door_exports(module):
    mod = importlib.import_module(module)
    missing = [name for name in DOORS[module] if not hasattr(mod, name)]
    assert not missing, f"{module} lacks {missing}"


def test_feature_spec_is_one_class_behind_both_doors():
    from mx_rec.core.asc import feature_spec, helper
    assert feature_spec.FeatureSpec is helper.FeatureSpec


def test_importing_mx_rec_leaves_tensorflow_alone():
    """A fresh interpreter: every door imports without adding ops or leaving eager mode."""
    code = ("import tensorflow as tf, importlib\n"
            f"for m in {sorted(DOORS)!r}: importlib.import_module(m)\n"
            "assert tf.executing_eagerly()\n"
            "print(len(tf.compat.v1.get_default_graph().get_operations()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"


def test_single_process_collectives(graph):
    from mx_rec.util.communication import hccl_ops
    from mx_rec.util.initialize import ConfigInitializer
    assert (hccl_ops.get_rank_id(), hccl_ops.get_rank_size(), hccl_ops.get_local_rank_size()) == (0, 1, 1)
    assert ConfigInitializer.get_instance().rank_size == 1
    x = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    received, counts = hccl_ops.all_to_all_v(x, tf.constant([2], tf.int32))
    with tf.compat.v1.Session() as sess:
        out = sess.run([hccl_ops.allreduce(x, "sum"), hccl_ops.broadcast(x, 0), received, counts])
    for value in out[:3]:
        np.testing.assert_array_equal(value, [[1.0, 2.0], [3.0, 4.0]])
    assert out[3].tolist() == [2]
    with pytest.raises(ValueError, match="reduction must be one of"):
        hccl_ops.allreduce(x, "prod")


def test_dense_and_sparse_variables_are_split(graph):
    from mx_rec.core.embedding import create_table
    from mx_rec.util.variable import get_dense_and_sparse_variable
    table = create_table(tf.int64, 4, "split", tf.zeros_initializer())
    w = tf.compat.v1.get_variable("w", [2])
    dense, sparse = get_dense_and_sparse_variable()
    assert dense == [w] and sparse == [table.variable]
