"""Door kept for Rec SDK scripts: ``init``, ``terminate_config_initializer``, ``ConfigInitializer``,
and the module-level accessors older Rec SDK scripts call (``get_use_dynamic_expansion()``,
``set_if_load(True)``, ``get_initializer(True)``, ``clear_channel()``, ...)."""
from typing import Any, Dict, List, Optional

import tensorflow as tf

from mx_rec.communication import collectives, dense_sync
from mx_rec.communication.collectives import get_local_rank_size, get_rank_id, get_rank_size  # noqa: F401
from mx_rec.config.initializer import ConfigInitializer
from mx_rec.constants import constants
from mx_rec.lookup import host_ops
from mx_rec.saver import tf_saver
from mx_rec.util.log import logger


def init(**kwargs: Any) -> ConfigInitializer:
    """Start the SDK for this process (keywords as in Rec SDK; see ``mx_rec.config.params``).

    Under ``horovodrun`` this starts Horovod: tables are sharded over the ranks, and
    ``global_variables_initializer()`` also broadcasts rank 0's dense variables. From here on
    ``tf.compat.v1.train.Saver`` also saves and restores the sparse tables, and ``tf.data``
    datasets have Rec SDK's ``eos_map``.

    Example:
        >>> init(max_steps=200, train_steps=100, eval_steps=10, save_steps=100, use_dynamic=True)  # doctest: +SKIP

    Raises:
        ValueError: an unknown keyword or an out-of-range value.
    """
    collectives.start()
    config = ConfigInitializer.create(**kwargs)
    tf_saver.install()
    host_ops.install()
    if config.rank_size > 1:
        dense_sync.install(_live_sparse_variables)
    logger.info("mx_rec initialised: rank %d of %d", config.rank_id, config.rank_size)
    return config


def _live_sparse_variables() -> Optional[List[tf.Variable]]:
    """The live configuration's table variables and slots (what the dense broadcast leaves alone)."""
    if not ConfigInitializer.is_initialized():
        return None
    return ConfigInitializer.get_instance().sparse_variables()


def terminate_config_initializer() -> None:
    """Drop the configuration and table registry (call at the end of a job or between tests)."""
    ConfigInitializer.terminate()
    tf_saver.uninstall()
    host_ops.uninstall()
    dense_sync.uninstall()


# --- module-level accessors of Rec SDK's initialize module -------------------------------------------

def _config() -> ConfigInitializer:
    return ConfigInitializer.get_instance()


def get_use_dynamic_expansion() -> bool:
    return _config().use_dynamic_expansion


def get_use_static() -> bool:
    return _config().use_static


def get_use_hot() -> bool:
    return _config().use_hot


def get_enable_table_merge() -> bool:
    """Table merging (``enable_merge``) is not done here: always False."""
    return False


def get_if_load() -> bool:
    return _config().if_load


def set_if_load(if_load: bool) -> None:
    if not isinstance(if_load, bool):
        raise ValueError(f"set_if_load: if_load must be True or False, got {if_load!r}")
    _config().if_load = if_load


def _steps(name: str, steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or not -1 <= steps <= constants.MAX_INT32:
        raise ValueError(f"set_{name}: {name} must be an int in [-1, {constants.MAX_INT32}], got {steps!r}")
    setattr(_config(), name, steps)


def get_train_steps() -> int:
    return _config().train_steps


def get_eval_steps() -> int:
    return _config().eval_steps


def get_save_steps() -> int:
    return _config().save_steps


def set_train_steps(steps: int) -> None:
    _steps("train_steps", steps)


def set_eval_steps(steps: int) -> None:
    _steps("eval_steps", steps)


def set_save_steps(steps: int) -> None:
    _steps("save_steps", steps)


def get_device_id() -> int:
    """Rec SDK's NPU device id; here the rank on this host (Horovod's local rank, 0 alone)."""
    return collectives.get_local_rank_id()


def get_modify_graph() -> bool:
    return _config().modify_graph


def set_modify_graph(is_modify_graph: bool) -> None:
    _config().modify_graph = bool(is_modify_graph)


def get_host_pipeline_ops() -> host_ops.HostPipelineOps:
    """The host ops object (as ``import_host_pipeline_ops()`` returns)."""
    return host_ops.import_host_pipeline_ops()


def get_training_mode_channel_id(is_training: bool) -> int:
    return _config().train_params_config.get_training_mode_channel_id(is_training)


def clear_channel(is_train_channel: bool = False) -> tf.Operation:
    """Clear the training (True) or evaluation (False) data channel: a no-op op here (see ``host_ops``)."""
    if not isinstance(is_train_channel, bool):
        raise ValueError(f"clear_channel: is_train_channel must be True or False, got {is_train_channel!r}")
    return host_ops.clear_channel(get_training_mode_channel_id(is_train_channel))


def get_initializer(is_training: bool) -> Any:
    if not isinstance(is_training, bool):
        raise ValueError(f"get_initializer: is_training must be True or False, got {is_training!r}")
    return _config().train_params_config.get_initializer(is_training)


def set_initializer(is_training: bool, initializer: Any) -> None:
    _config().train_params_config.set_initializer(is_training, initializer)


def get_target_batch(is_training: bool) -> Dict[str, tf.Tensor]:
    return _config().train_params_config.get_target_batch(is_training)


def set_target_batch(is_training: bool, batch: Dict[str, tf.Tensor]) -> None:
    _config().train_params_config.set_target_batch(is_training, batch)


def get_table_instance_by_name(table_name: str) -> Any:
    tables = _config().tables
    if table_name not in tables:
        raise KeyError(f"no table named {table_name!r}; tables: {sorted(tables)}")
    return tables[table_name]


def export_table_instances() -> Dict[str, Any]:
    return dict(_config().tables)


def export_table_num() -> int:
    return len(_config().tables)


def export_table_name_set() -> set:
    return set(_config().tables)


def export_optimizer() -> List[Any]:
    return list(_config().hash_optimizers)


def set_ascend_table_name_must_contain(name: str = "merged") -> None:
    constants.ASCEND_TABLE_NAME_MUST_CONTAIN = name
