"""The Rec SDK import paths (SPEC section 3) resolve (single-process collectives: ``tests/unit/communication``)."""
import importlib
import logging
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
    "mx_rec.util.tf_version_adapter": ["hccl_ops", "npu_ops", "NPUCheckpointSaverHook", "NPULossScaleOptimizer"],
    "rec_sdk_common.communication.hccl.hccl_info": ["get_rank_id", "get_rank_size", "get_local_rank_size"],
    "mx_rec.graph.merge_lookup": ["do_merge_lookup"],
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
            "import mx_rec.util\n"
            "assert mx_rec.util.communication.hccl_ops.get_rank_size() == 1  # no other import first\n"
            f"for m in {sorted(DOORS)!r}: importlib.import_module(m)\n"
            "assert tf.executing_eagerly()\n"
            "assert not hasattr(tf.data.Dataset, 'eos_map'), 'eos_map patched at import'\n"
            "print(len(tf.compat.v1.get_default_graph().get_operations()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"


def test_dense_and_sparse_variables_are_split(graph):
    from mx_rec.core.embedding import create_table
    from mx_rec.util.variable import get_dense_and_sparse_variable
    table = create_table(tf.int64, 4, "split", tf.zeros_initializer())
    w = tf.compat.v1.get_variable("w", [2])
    dense, sparse = get_dense_and_sparse_variable()
    assert dense == [w] and sparse == [table.variable]


# ---------------------------------------------------------------- constants and enums

REC_SDK_CONSTANTS = {
    "ASCEND_GLOBAL_HASHTABLE_COLLECTION": "ASCEND_GLOBAL_HASHTABLE_COLLECTION",
    "ASCEND_CUTTING_POINT_INITIALIZER": "ASCEND_CUTTING_POINT_INITIALIZER",
    "ASCEND_SPARSE_LOOKUP_ENTRANCE": "ASCEND_SPARSE_LOOKUP_ENTRANCE",
    "ASCEND_SPARSE_LOOKUP_ID_OFFSET": "ASCEND_SPARSE_LOOKUP_ID_OFFSET",
    "ASCEND_SPARSE_LOOKUP_UNIQUE_KEYS": "ASCEND_SPARSE_LOOKUP_UNIQUE_KEYS",
    "ASCEND_SPARSE_LOOKUP_LOCAL_EMB": "ASCEND_SPARSE_LOOKUP_LOCAL_EMB",
    "ASCEND_TIMESTAMP": "ASCEND_TIMESTAMP",
    "LIBASC_OPS_SO": "libasc_ops.so", "LIBREC_EOS_OPS_SO": "librec_eos_ops.so",
    "LIBREC_TF_REC_V1_CPU_SO": "librec_tf_rec_v1_cpu.so",
    "TRAIN_CHANNEL_ID": 0, "EVAL_CHANNEL_ID": 1, "DEFAULT_EVICT_TIME_INTERVAL": 86400, "MULTI_LOOKUP_TIMES": 128,
    "MAX_INT32": 2**31 - 1, "HASHTABLE_COLLECTION_NAME_LENGTH": 30, "MAX_VOCABULARY_SIZE": 10**10,
}
REC_SDK_ENUMS = ("BaseEnum", "EnvOption", "DataName", "DataAttr", "ASCAnchorAttr", "MxRecMode", "OptimizerType",
                 "All2allGradientsOp", "RecPyLogLevel", "RecCPPLogLevel", "TFDevice", "Flag", "AnchorDatasetOp",
                 "AnchorIteratorOp")


def test_rec_sdk_constants_and_enums():
    from mx_rec.constants import constants
    wrong = {name: getattr(constants, name, "<missing>") for name, value in REC_SDK_CONSTANTS.items()
             if getattr(constants, name, "<missing>") != value}
    assert not wrong, wrong
    assert [name for name in REC_SDK_ENUMS if not hasattr(constants, name)] == []
    op = constants.All2allGradientsOp
    assert issubclass(op, constants.BaseEnum)
    assert op.mapping("sum_gradients_and_div_by_ranksize") is op.SUM_GRADIENTS_AND_DIV_BY_RANKSIZE
    assert op.mapping(op.SUM_GRADIENTS) is op.SUM_GRADIENTS
    assert constants.MxRecMode.mapping("ASC") is constants.MxRecMode.ASC
    with pytest.raises(KeyError, match=r"All2allGradientsOp has no member with value 'mean'.*'sum_gradients'"):
        op.mapping("mean")
    assert constants.OptimizerType.get_optimizer_state_meta(constants.OptimizerType.LAZY_ADAM) == ["momentum",
                                                                                                   "velocity"]


# ---------------------------------------------------------------- host ops and channels


def test_import_host_pipeline_ops_takes_the_library_name():
    from mx_rec.constants.constants import LIBREC_EOS_OPS_SO, LIBREC_TF_REC_V1_CPU_SO
    from mx_rec.util.ops import HostPipelineOps, import_host_pipeline_ops
    for name in (LIBREC_EOS_OPS_SO, LIBREC_TF_REC_V1_CPU_SO, "/opt/lib/libasc_ops.so"):
        ops = import_host_pipeline_ops(name)
        assert isinstance(ops, HostPipelineOps) and ops.so_pkg_name == name
    assert import_host_pipeline_ops().so_pkg_name == "libasc_ops.so"
    with pytest.raises(RuntimeError, match="unknown op library 'libnope.so'; mx_rec provides libasc_ops.so"):
        import_host_pipeline_ops("libnope.so")


def test_set_threshold_is_a_graph_op_that_applies_when_run(graph):
    from mx_rec.constants.constants import LIBREC_EOS_OPS_SO
    from mx_rec.core.embedding import create_table, sparse_lookup
    from mx_rec.util.ops import import_host_pipeline_ops
    init = tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=3)
    table = create_table(tf.int64, 4, "thr_op", init, device_vocabulary_size=10)
    ids = tf.compat.v1.placeholder(tf.int64, [None])
    emb = sparse_lookup(table, ids, access_and_evict_config={"access_threshold": 5}, serving_default_value=0.5)
    threshold = tf.compat.v1.placeholder(tf.int32, [])
    librec = import_host_pipeline_ops(LIBREC_EOS_OPS_SO)
    op = librec.set_threshold(threshold, emb_name=["thr_op"], ids_name=["ids"])
    assert isinstance(op, tf.Tensor) and op.dtype == tf.int64
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        assert sess.run(emb, {ids: [3]}).tolist() == [[0.5] * 4]          # 1 sighting of 5: not admitted
        assert table.lifecycle.access_threshold == 5                       # building the op changed nothing
        assert sess.run(op, {threshold: 2}) == 2
        assert table.lifecycle.access_threshold == 2
        np.testing.assert_array_equal(sess.run(emb, {ids: [3]})[0], table.initial_values(np.array([3]))[0])
        sess.run(op, {threshold: 0})                                       # Rec SDK: 0 keeps the threshold
        assert table.lifecycle.access_threshold == 2
    with pytest.raises(ValueError, match="no table named 'nope'"):
        librec.set_threshold(threshold, emb_name=["nope"])
    with pytest.raises(TypeError, match="integer scalar"):
        librec.set_threshold(tf.constant(1.5), emb_name="thr_op")


def test_channels_and_eos_map(graph):
    from mx_rec.util import initialize
    from mx_rec.util.initialize import ConfigInitializer
    from mx_rec.util.ops import import_host_pipeline_ops
    params = ConfigInitializer.get_instance().train_params_config
    assert (params.get_training_mode_channel_id(True), params.get_training_mode_channel_id(False)) == (0, 1)
    librec = import_host_pipeline_ops()
    ops = [librec.clear_channel(0), librec.clear_channel(1), initialize.clear_channel(True), initialize.clear_channel()]
    assert [op.type for op in ops] == ["NoOp"] * 4 and ops[2].name.startswith("clear_channel_0")
    with pytest.raises(ValueError, match="channel_id must be 0 .* or 1 .*got 2"):
        librec.clear_channel(2)
    base = tf.data.Dataset.range(10)

    def values(dataset):
        nxt = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
        out = []
        with tf.compat.v1.Session() as sess:
            sess.run(ops)
            try:
                while True:
                    out.append(int(sess.run(nxt)))
            except tf.errors.OutOfRangeError:
                return out

    assert values(base.eos_map(librec, 0, 3, 2)) == [0, 1, 2]            # training channel: max_train_steps
    assert values(base.eos_map(librec, 1, 3, 2)) == [0, 1]               # evaluation channel: max_eval_steps
    assert values(base.eos_map(librec, 1)) == list(range(10))
    assert values(tf.compat.v1.data.Dataset.range(4).eos_map(librec, 0, -1, 1)) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="max_train_steps must be -1"):
        base.eos_map(librec, 0, 0)
    with pytest.raises(ValueError, match="eos_map: channel_id"):
        base.eos_map(librec, True)
    initialize.terminate_config_initializer()
    assert not hasattr(tf.data.Dataset, "eos_map")
    initialize.init()


# ---------------------------------------------------------------- init() keywords


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def log_lines():
    from mx_rec.util.log import logger
    from mx_rec.system import log as system_log
    handler = _Lines()
    logger.addHandler(handler)
    system_log._logged.clear()
    yield handler.lines
    logger.removeHandler(handler)


def test_init_accepts_every_documented_keyword(graph, log_lines):
    from mx_rec.util.initialize import ConfigInitializer, init
    documented = dict(max_steps=200, train_steps=100, eval_steps=10, if_load=True, use_dynamic=True,
                      use_dynamic_expansion=False, bind_cpu=False, save_steps=100, save_checkpoint_due_time=20,
                      save_delta_checkpoints_secs=10, is_incremental_checkpoint=False, recent_key_count_threshold=3,
                      use_lccl=True, use_shm_swap=True)
    init(**documented)
    init(**documented)
    config = ConfigInitializer.get_instance()
    assert all(getattr(config, k) == v for k, v in documented.items())
    npu = [line for line in log_lines if "NPU-only" in line]
    assert sorted(line.split("=")[0] for line in npu) == ["init(bind_cpu", "init(use_lccl", "init(use_shm_swap"]
    assert sum("only used with is_incremental_checkpoint=True" in line for line in log_lines) == 3  # once each


@pytest.mark.parametrize("kwargs,error,needle", [
    ({"is_incremental_checkpoint": True}, ValueError,
     "is_incremental_checkpoint=True needs save_checkpoint_due_time and save_delta_checkpoints_secs"),
    ({"is_incremental_checkpoint": True, "save_checkpoint_due_time": 5, "save_delta_checkpoints_secs": 10},
     ValueError, "save_checkpoint_due_time=5 must not be shorter than save_delta_checkpoints_secs=10"),
    ({"restore_model_version": -1}, ValueError, "restore_model_version=-1 is outside [0, 2147483647]"),
    ({"save_checkpoint_due_time": 0}, ValueError, "save_checkpoint_due_time=0 is outside [1, 2147483647]"),
    ({"recent_key_count_threshold": -1}, ValueError, "recent_key_count_threshold=-1 is outside [0,"),
    ({"use_lccl": 1}, ValueError, "use_lccl must be True or False"),
])
def test_init_refuses_what_is_out_of_range(kwargs, error, needle):
    from mx_rec.util.initialize import ConfigInitializer, init
    with pytest.raises(error) as info:
        init(**kwargs)
    assert needle in str(info.value)
    assert not ConfigInitializer.is_initialized()


# ---------------------------------------------------------------- tf_version_adapter, accessors


def test_tf_version_adapter_maps_npu_names(graph):
    from mx_rec.util.communication import hccl_ops as door
    from mx_rec.util.tf_version_adapter import NPUCheckpointSaverHook, NPULossScaleOptimizer, hccl_ops, npu_ops
    assert hccl_ops is door
    assert issubclass(NPUCheckpointSaverHook, tf.compat.v1.train.CheckpointSaverHook)
    assert npu_ops.initialize_system().type == "NoOp"
    x = tf.ones([4, 8])
    assert npu_ops.dropout(x, keep_prob=1.0).shape == (4, 8)
    w = tf.compat.v1.get_variable("w", initializer=tf.constant([1.0, -2.0]))
    loss = tf.reduce_sum(tf.square(w) * 3.0)

    finite_steps = tf.compat.v1.get_variable("finite_steps", [], tf.int32, tf.zeros_initializer())

    class Manager:  # the interface of NPU's loss-scale managers
        def get_loss_scale(self):
            return tf.constant(512.0)

        def update_loss_scale(self, finite):
            return tf.compat.v1.assign_add(finite_steps, tf.cast(finite, tf.int32))

    scaled = NPULossScaleOptimizer(tf.compat.v1.train.GradientDescentOptimizer(0.1), 1024.0)
    managed = NPULossScaleOptimizer(tf.compat.v1.train.GradientDescentOptimizer(0.1), Manager())
    assert isinstance(scaled, tf.compat.v1.train.Optimizer)
    plain_grad = tf.compat.v1.train.GradientDescentOptimizer(0.1).compute_gradients(loss, [w])[0][0]
    scaled_grad = scaled.compute_gradients(loss, [w])[0][0]
    train = managed.minimize(loss, var_list=[w])
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(scaled_grad), sess.run(plain_grad))   # 6 w, scaled and unscaled
        sess.run(train)
        np.testing.assert_allclose(sess.run(w), [1.0 - 0.6, -2.0 + 1.2], rtol=1e-6)
        assert sess.run(finite_steps) == 1
    with pytest.raises(TypeError, match="opt must be a tf.compat.v1.train.Optimizer"):
        NPULossScaleOptimizer(object(), 1.0)


def test_initialize_module_accessors(graph):
    from mx_rec.core.embedding import create_table
    from mx_rec.util import initialize
    from mx_rec.util.ops import HostPipelineOps
    table = create_table(tf.int64, 4, "acc", tf.zeros_initializer())
    config = initialize.ConfigInitializer.get_instance()
    assert initialize.get_use_dynamic_expansion() is False and initialize.get_use_static() is False
    initialize.set_if_load(True)
    assert config.if_load is initialize.get_if_load() is True
    with pytest.raises(ValueError, match="if_load must be True or False"):
        initialize.set_if_load("yes")
    initialize.set_train_steps(7)
    assert initialize.get_train_steps() == config.train_steps == 7
    assert isinstance(initialize.get_host_pipeline_ops(), HostPipelineOps)
    assert initialize.get_table_instance_by_name("acc") is table and initialize.export_table_num() == 1
    assert initialize.get_training_mode_channel_id(False) == 1 and initialize.get_device_id() == 0
    with pytest.raises(RuntimeError, match="modify_graph_and_start_emb_cache"):
        initialize.get_initializer(True)


def test_renamed_hashtable_collection_holds_the_tables(graph):
    from mx_rec.core.embedding import create_table
    from mx_rec.util.initialize import ConfigInitializer
    from mx_rec.util.variable import get_dense_and_sparse_variable
    params = ConfigInitializer.get_instance().train_params_config
    params.ascend_global_hashtable_collection = "my_tables"
    table = create_table(tf.int64, 4, "renamed", tf.zeros_initializer())
    assert tf.compat.v1.get_collection("my_tables") == [table.variable]
    assert get_dense_and_sparse_variable()[1] == [table.variable]
    with pytest.raises(ValueError, match="1 to 255 characters"):
        params.ascend_global_hashtable_collection = ""


def test_sparse_lookup_takes_rec_sdk_kwargs(graph, log_lines):
    from mx_rec.core import create_table, sparse_lookup
    table = create_table(tf.int64, 4, "kw", tf.compat.v1.ones_initializer())
    ids = tf.constant([1, 2], tf.int64)
    emb = sparse_lookup(table, ids, multi_lookup=False, lookup_ids=ids, feature_spec_name_ids_dict={}, dim=2)
    assert emb.shape.as_list() == [2, 2]  # dim reached mx_rec's lookup; Rec SDK's internal keywords were dropped
    assert any("['feature_spec_name_ids_dict', 'lookup_ids', 'multi_lookup'] are not used here" in line
               for line in log_lines), log_lines
