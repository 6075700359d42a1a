"""Every name Rec SDK's API reference lists (docs/en/tensorflow/tf_rec_v1/api/*.md) exists at its documented
path with its documented signature, and answers a documented call.

The reference is a table (``API``): one row per documented callable with the file it comes from, its import
path, and its parameters in documented order with their defaults. A row fails on its own, naming what is
missing or different, so a gap shows up as one failing row. Calls that are cheap are made for real
(``CALLS``): the documented example, with the documented result.
"""
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple

import pytest
import tensorflow as tf

REQUIRED = inspect.Parameter.empty


class _Any:
    """A default the reference gives in words (e.g. ``(os.getcwd(),)``): any default is accepted."""

    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()
KWARGS = "**kwargs"


@dataclass(frozen=True)
class Api:
    """One documented callable.

    Attributes:
        doc: the reference file.
        path: ``module:attribute`` (attribute may be dotted: ``Class.method``).
        params: (name, default) in documented order (``REQUIRED`` for none); ``KWARGS`` for ``**kwargs``.
        ordered: False where the reference lists parameters in a table without an order (class reference).
    """

    doc: str
    path: str
    params: Tuple[Tuple[str, Any], ...] = ()
    ordered: bool = True


_P = REQUIRED
API: List[Api] = [
    # model_apis.md
    Api("model_apis.md", "mx_rec.core.embedding:create_table", (
        ("key_dtype", _P), ("dim", _P), ("name", _P), ("emb_initializer", _P), ("device_vocabulary_size", 1),
        ("host_vocabulary_size", 0), ("ssd_vocabulary_size", 0), ("ssd_data_path", ANY), ("is_save", True),
        ("is_dp", False), ("init_param", 1.0), ("all2all_gradients_op", "sum_gradients"), ("enable_merge", False),
        ("padding_keys", None), ("padding_keys_mask", False), ("padding_keys_len", None),
        ("value_dtype", tf.float32), ("shard_num", 1), ("fusion_optimizer_var", True), ("hashtable_threshold", 0))),
    Api("model_apis.md", "mx_rec.core.embedding:sparse_lookup", (
        ("hashtable", _P), ("ids", _P), ("send_count", ANY), ("is_train", True), ("name", None),
        ("modify_graph", False), ("batch", None), ("access_and_evict_config", None), ("is_grad", True),
        ("serving_default_value", None), (KWARGS, None))),
    Api("model_apis.md", "mx_rec.util.variable:get_dense_and_sparse_variable"),
    Api("model_apis.md", "mx_rec.saver.sparse:export", (("table_list", None),)),
    # data_apis.md
    Api("data_apis.md", "mx_rec.core.asc.helper:get_asc_insert_func", (
        ("tgt_key_specs", None), ("args_index_list", None), ("table_names", None), (KWARGS, None))),
    Api("data_apis.md", "mx_rec.graph.modifier:modify_graph_and_start_emb_cache", (
        ("full_graph", None), ("dump_graph", False))),
    Api("data_apis.md", "mx_rec.core.asc.manager:start_asc_pipeline"),
    # optimizers_apis.md
    Api("optimizers_apis.md", "mx_rec.optimizers.adagrad:create_hash_optimizer", (
        ("learning_rate", 0.001), ("initial_accumulator_value", 0.9), ("use_locking", False), ("name", "Adagrad"))),
    Api("optimizers_apis.md", "mx_rec.optimizers.ftrl:create_hash_optimizer", (
        ("learning_rate", _P), ("use_locking", False), ("name", "Ftrl"), (KWARGS, None))),
    Api("optimizers_apis.md", "mx_rec.optimizers.gradient_descent:create_hash_optimizer", (
        ("learning_rate", _P), ("use_locking", False), ("name", "GradientDescent"), ("use_fusion_optim", False),
        ("weight_decay", None))),
    Api("optimizers_apis.md", "mx_rec.optimizers.gradient_descent_by_addr:create_hash_optimizer_by_addr", (
        ("learning_rate", _P), ("weight_decay", 0.0001), ("use_locking", False), ("name", "GradientDescentByAddr"))),
    Api("optimizers_apis.md", "mx_rec.optimizers.lazy_adam:create_hash_optimizer", (
        ("learning_rate", 0.001), ("beta1", 0.9), ("beta2", 0.999), ("epsilon", 1e-8), ("name", "LazyAdam"),
        ("use_fusion_optim", False))),
    Api("optimizers_apis.md", "mx_rec.optimizers.lazy_adam_by_addr:create_hash_optimizer_by_address", (
        ("learning_rate", 0.001), ("beta1", 0.9), ("beta2", 0.999), ("epsilon", 1e-8), ("name", "LazyAdamByAddress"))),
    Api("optimizers_apis.md", "mx_rec.optimizers.adagrad_by_addr:create_hash_optimizer_by_address", (
        ("learning_rate", 0.001), ("initial_accumulator_value", 0.9), ("name", "Adagrad"))),
    # initialization_and_deinitialization_of_the_training_framework.md
    Api("initialization.md", "mx_rec.util.initialize:init", ((KWARGS, None),)),
    Api("initialization.md", "mx_rec.util.initialize:terminate_config_initializer"),
    # other_apis.md
    Api("other_apis.md", "mx_rec:version"),
    Api("other_apis.md", "rec_sdk_common.communication.hccl.hccl_info:get_rank_id"),
    Api("other_apis.md", "rec_sdk_common.communication.hccl.hccl_info:get_rank_size"),
    Api("other_apis.md", "mx_rec.util.ops:import_host_pipeline_ops", (("so_pkg_name", "libasc_ops.so"),)),
    Api("other_apis.md", "mx_rec.util.initialize:ConfigInitializer.get_instance"),
    Api("other_apis.md", "mx_rec.config.initializer:TrainParamsConfig.get_target_batch", (("is_training", _P),)),
    # class_reference.md (parameters in a table: names and defaults, no order)
    Api("class_reference.md", "mx_rec.core.asc.feature_spec:FeatureSpec", (
        ("name", _P), ("index_key", ANY), ("table_name", ANY), ("access_threshold", ANY),
        ("eviction_threshold", ANY), ("is_timestamp", ANY), ("batch_size", ANY), ("faae_coefficient", 1)),
        ordered=False),
    Api("class_reference.md", "mx_rec.graph.modifier:GraphModifierHook", (
        ("dump_graph", False), ("modify_graph", True)), ordered=False),
    Api("class_reference.md", "mx_rec.core.feature_process:EvictHook", (
        ("evict_enable", False), ("evict_time_interval", 24 * 60 * 60), ("evict_step_interval", None)),
        ordered=False),
    # automatic_graph_modification.md
    Api("automatic_graph_modification.md", "mx_rec.config.initializer:TrainParamsConfig.get_initializer", (
        ("is_training", _P),)),
    Api("automatic_graph_modification.md", "mx_rec.graph:LookupSubgraphSlicerHook", (("op_types", _P),),
        ordered=False),
    Api("automatic_graph_modification.md", "mx_rec.graph:OrphanLookupKeySlicerHook"),
    Api("automatic_graph_modification.md", "mx_rec.graph:GraphModifierHook", (
        ("dump_graph", False), ("modify_graph", True)), ordered=False),
    Api("automatic_graph_modification.md", "mx_rec.graph.merge_lookup:do_merge_lookup", (("is_train", ANY),)),
    # tensorflow_apis.md (TF's Saver as patched by init())
    Api("tensorflow_apis.md", "tensorflow:compat.v1.train.Saver.save", (
        ("sess", _P), ("save_path", _P), ("global_step", None), ("latest_filename", None),
        ("meta_graph_suffix", "meta"), ("write_meta_graph", True), ("write_state", True),
        ("strip_default_attrs", False), ("save_debug_info", False), ("is_incremental_checkpoint", False),
        ("save_delta", False))),
    Api("tensorflow_apis.md", "tensorflow:compat.v1.train.Saver.restore", (("sess", _P), ("save_path", _P))),
    Api("tensorflow_apis.md", "tensorflow.python.client.session:BaseSession.run", (
        ("fetches", _P), ("feed_dict", None), ("options", None), ("run_metadata", None))),
]

# Names the reference lists that are values, not callables: (doc, module, attribute)
VALUES = [
    ("constant_reference.md", "mx_rec.constants.constants", "ASCEND_TIMESTAMP"),
    ("other_apis.md", "mx_rec", "__version__"),
    ("other_apis.md", "mx_rec.util.tf_version_adapter", "hccl_ops"),
    ("other_apis.md", "mx_rec.config.initializer", "TrainParamsConfig.ascend_global_hashtable_collection"),
    ("other_apis.md", "mx_rec.config.initializer", "ConfigInitializer"),
    ("model_apis.md", "mx_rec.util.initialize", "ConfigInitializer"),
]


def _resolve(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    obj = __import__(module_name, fromlist=["_"])
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


def _same_default(documented: Any, actual: Any) -> bool:
    if documented is ANY:
        return True
    if isinstance(documented, tf.dtypes.DType):
        return isinstance(actual, tf.dtypes.DType) and documented == actual
    return type(documented) is type(actual) and documented == actual


def signature_problems(func: Callable, api: Api) -> List[str]:
    """What differs between ``func`` and the documented parameters (empty: it matches)."""
    target = func.__init__ if inspect.isclass(func) else func
    params = [p for p in inspect.signature(target).parameters.values() if p.name not in ("self", "cls")]
    named = {p.name: p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    has_kwargs = any(p.kind is p.VAR_KEYWORD for p in params)
    problems = []
    documented = [(n, d) for n, d in api.params if n != KWARGS]
    if any(n == KWARGS for n, _ in api.params) and not has_kwargs:
        problems.append("does not take **kwargs")
    for name, default in documented:
        if name not in named:
            problems.append(f"no parameter {name!r}")
            continue
        actual = named[name].default
        if default is REQUIRED and actual is not REQUIRED:
            continue  # a documented mandatory parameter may have a default here
        if default is not REQUIRED and actual is REQUIRED:
            problems.append(f"{name!r} is required here; documented default {default!r}")
        elif default is not REQUIRED and not _same_default(default, actual):
            problems.append(f"{name!r} defaults to {actual!r}; documented {default!r}")
    if api.ordered:
        positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        wanted = [n for n, _ in documented if n in named]
        if positional[:len(wanted)] != wanted:
            problems.append(f"positional order {positional} does not start with the documented {wanted}")
    extra_required = [p.name for p in params if p.default is REQUIRED and p.name not in dict(documented)
                      and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if extra_required:
        problems.append(f"undocumented required parameter(s) {extra_required}")
    return problems


@pytest.fixture
def initialised():
    """TensorFlow's classes as ``init()`` leaves them (the Saver is patched), then restored."""
    from mx_rec.util.initialize import init, terminate_config_initializer
    graph = tf.Graph()
    with graph.as_default():
        init()
        yield graph
    terminate_config_initializer()


@pytest.mark.parametrize("api", API, ids=[a.path for a in API])
def test_documented_signature(api, initialised):
    try:
        func = _resolve(api.path)
    except (ImportError, AttributeError) as err:
        pytest.fail(f"{api.doc}: {api.path} does not exist: {err}")
    assert callable(func), f"{api.path} is not callable"
    problems = signature_problems(func, api)
    assert not problems, f"{api.doc}: {api.path}: " + "; ".join(problems)


@pytest.mark.parametrize("doc,module,attribute", VALUES, ids=[f"{m}:{a}" for _, m, a in VALUES])
def test_documented_value_exists(doc, module, attribute):
    try:
        _resolve(f"{module}:{attribute}")
    except (ImportError, AttributeError) as err:
        pytest.fail(f"{doc}: {module}.{attribute} does not exist: {err}")


# ---------------------------------------------------------------- the documented examples, called


def _create_table_example():
    from mx_rec.core.embedding import create_table
    table = create_table(key_dtype=tf.int32, dim=tf.TensorShape([8]), name="sparse_embeddings_table",
                         emb_initializer=tf.compat.v1.truncated_normal_initializer(), device_vocabulary_size=64,
                         host_vocabulary_size=0)
    assert table.size() == 0 and table.capacity() >= 64


def _sparse_lookup_example():
    from mx_rec.core.asc.feature_spec import FeatureSpec
    from mx_rec.core.embedding import create_table, sparse_lookup
    table = create_table(tf.int64, 4, "sparse_embeddings_table", tf.compat.v1.ones_initializer(),
                         device_vocabulary_size=16)
    ids = tf.constant([[1, 2]], tf.int64)
    emb = sparse_lookup(table, ids, send_count=None, is_train=True, name="sparse_embeddings")
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        assert sess.run(emb).tolist() == [[[1.0] * 4, [1.0] * 4]]
    assert FeatureSpec("sparse_feature", table_name="sparse_embeddings_table", batch_size=1).name == "sparse_feature"


def _variables_example():
    from mx_rec.core.embedding import create_table
    from mx_rec.util.variable import get_dense_and_sparse_variable
    table = create_table(tf.int64, 4, "t", tf.compat.v1.zeros_initializer())
    tf.compat.v1.get_variable("dense", [2])
    dense, sparse = get_dense_and_sparse_variable()
    assert [v.name for v in dense] == ["dense:0"] and sparse == [table.variable]


def _optimizer_examples():
    from mx_rec.optimizers import adagrad, adagrad_by_addr, ftrl, gradient_descent, gradient_descent_by_addr
    from mx_rec.optimizers import lazy_adam, lazy_adam_by_addr
    made = {
        "CustomizedAdagrad": adagrad.create_hash_optimizer(0.001),
        "CustomizedFtrl": ftrl.create_hash_optimizer(0.001),
        "CustomizedGradientDescent": gradient_descent.create_hash_optimizer(0.001),
        "CustomizedLazyAdam": lazy_adam.create_hash_optimizer(),
    }
    wrong = {want: type(opt).__name__ for want, opt in made.items() if type(opt).__name__ != want}
    assert not wrong, f"documented class -> class returned: {wrong}"
    for opt in (gradient_descent_by_addr.create_hash_optimizer_by_addr(0.001),
                lazy_adam_by_addr.create_hash_optimizer_by_address(),
                adagrad_by_addr.create_hash_optimizer_by_address()):
        assert opt is not None


def _learning_rate_tensor():
    from mx_rec.optimizers import adagrad, ftrl, gradient_descent, lazy_adam
    rate = tf.constant(0.01)
    for make in (adagrad.create_hash_optimizer, ftrl.create_hash_optimizer, gradient_descent.create_hash_optimizer,
                 lazy_adam.create_hash_optimizer):
        assert make(rate) is not None


def _init_example():
    from mx_rec.util.initialize import ConfigInitializer, init, terminate_config_initializer
    terminate_config_initializer()
    init(max_steps=200, train_steps=100, eval_steps=10, save_steps=100, use_dynamic=True, use_dynamic_expansion=False)
    config = ConfigInitializer.get_instance()
    assert (config.max_steps, config.train_steps, config.eval_steps, config.save_steps) == (200, 100, 10, 100)
    init(if_load=False, bind_cpu=True, save_checkpoint_due_time=20, save_delta_checkpoints_secs=10,
         is_incremental_checkpoint=False, recent_key_count_threshold=0, use_lccl=False)
    assert ConfigInitializer.get_instance().if_load is False
    assert ConfigInitializer.get_instance().use_dynamic_expansion is False


def _other_examples():
    import mx_rec
    from mx_rec.util.initialize import ConfigInitializer
    from rec_sdk_common.communication.hccl.hccl_info import get_rank_id, get_rank_size
    assert mx_rec.version() == mx_rec.__version__
    assert (get_rank_id(), get_rank_size()) == (0, 1)
    params = ConfigInitializer.get_instance().train_params_config
    assert params.ascend_global_hashtable_collection == "ASCEND_GLOBAL_HASHTABLE_COLLECTION"
    params.ascend_global_hashtable_collection = "test"
    assert params.ascend_global_hashtable_collection == "test"


def _host_ops_example():
    from mx_rec.util.ops import import_host_pipeline_ops
    ops = import_host_pipeline_ops()
    assert callable(ops.set_threshold) and callable(ops.return_timestamp) and callable(ops.clear_channel)


def _saver_example(tmp_path):
    from mx_rec.core.embedding import create_table
    from mx_rec.util.initialize import get_rank_id
    create_table(tf.int64, 4, "saved", tf.compat.v1.zeros_initializer())
    tf.compat.v1.get_variable("w", [2])
    saver = tf.compat.v1.train.Saver()
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        path = saver.save(sess, str(tmp_path / f"model-{get_rank_id()}"), global_step=200)
        assert path == str(tmp_path / "model-0-200")
        saver.restore(sess, str(tmp_path / "model-0-200"))


def _merge_lookup_example():
    from mx_rec.graph.merge_lookup import do_merge_lookup
    do_merge_lookup(is_train=True)
    with pytest.raises(ValueError, match="is_train must be True or False"):
        do_merge_lookup(is_train="yes")


CALLS: Dict[str, Callable[..., None]] = {
    "create_table": _create_table_example,
    "sparse_lookup": _sparse_lookup_example,
    "get_dense_and_sparse_variable": _variables_example,
    "optimizers": _optimizer_examples,
    "learning_rate_tensor": _learning_rate_tensor,
    "init": _init_example,
    "other_apis": _other_examples,
    "import_host_pipeline_ops": _host_ops_example,
    "saver": _saver_example,
    "do_merge_lookup": _merge_lookup_example,
}


@pytest.mark.parametrize("name", list(CALLS))
def test_documented_example_runs(name, graph, tmp_path):
    call = CALLS[name]
    if "tmp_path" in inspect.signature(call).parameters:
        call(tmp_path)
    else:
        call()
