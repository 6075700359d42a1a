"""``ConfigInitializer``: the process-wide state behind ``init()`` (settings, ranks, tables)."""
import os
import threading
from typing import Any, Dict, Optional

import tensorflow as tf

from mx_rec.communication import collectives
from mx_rec.config.params import validate_init_kwargs
from mx_rec.constants.constants import (ASCEND_GLOBAL_HASHTABLE_COLLECTION, EVAL_CHANNEL_ID,
                                        HASHTABLE_COLLECTION_NAME_LENGTH, TRAIN_CHANNEL_ID)
from mx_rec.util.log import logger


class TrainParamsConfig:
    """Iterator initializers and batches that graph-modify mode hands back to the user script,
    the data channel of each mode, and the name of the tables' graph collection."""

    def __init__(self) -> None:
        self._initializers: Dict[bool, Any] = {}
        self._batches: Dict[bool, Any] = {}
        self._ascend_global_hashtable_collection = ASCEND_GLOBAL_HASHTABLE_COLLECTION

    @property
    def ascend_global_hashtable_collection(self) -> str:
        """Graph collection that holds every table variable (``get_dense_and_sparse_variable`` reads it)."""
        return self._ascend_global_hashtable_collection

    @ascend_global_hashtable_collection.setter
    def ascend_global_hashtable_collection(self, name: str) -> None:
        if not isinstance(name, str) or not 1 <= len(name) <= 255:
            raise ValueError(f"ascend_global_hashtable_collection must be a string of 1 to 255 characters, "
                             f"got {name!r}")
        if len(name) > HASHTABLE_COLLECTION_NAME_LENGTH:
            logger.warning("hashtable collection name %r is longer than Rec SDK's %d characters", name,
                           HASHTABLE_COLLECTION_NAME_LENGTH)
        self._ascend_global_hashtable_collection = name

    @staticmethod
    def get_training_mode_channel_id(is_training: bool) -> int:
        """The data channel of the training (0) or evaluation (1) pipeline, as Rec SDK numbers them."""
        return TRAIN_CHANNEL_ID if is_training else EVAL_CHANNEL_ID

    def set_initializer(self, is_training: bool, initializer: Any) -> None:
        self._initializers[bool(is_training)] = initializer

    def set_target_batch(self, is_training: bool, batch: Any) -> None:
        self._batches[bool(is_training)] = batch

    def get_initializer(self, is_training: bool) -> Any:
        """The rebuilt iterator's initializer op for the train (True) or eval (False) pipeline."""
        if bool(is_training) not in self._initializers:
            raise RuntimeError(
                f"no {'training' if is_training else 'evaluation'} iterator initializer is registered: "
                "call mx_rec.graph.modifier.modify_graph_and_start_emb_cache() first")
        return self._initializers[bool(is_training)]

    def registered_initializers(self) -> list:
        """Every rebuilt iterator's initializer registered so far (training first)."""
        return [self._initializers[k] for k in (True, False) if k in self._initializers]

    def get_target_batch(self, is_training: bool) -> Any:
        """The rebuilt pipeline's batch (dict of tensors) for train (True) or eval (False)."""
        if bool(is_training) not in self._batches:
            raise RuntimeError(
                f"no {'training' if is_training else 'evaluation'} batch is registered: "
                "call mx_rec.graph.modifier.modify_graph_and_start_emb_cache() first")
        return self._batches[bool(is_training)]


class ConfigInitializer:
    """Singleton holding the settings given to ``init()`` and the tables created since.

    Attributes mirror the ``init()`` keywords (``train_steps``, ``use_dynamic``, ...);
    ``use_static`` is ``not use_dynamic``; ``tables`` maps table name to table object.
    """

    _instance: Optional["ConfigInitializer"] = None
    _lock = threading.Lock()

    def __init__(self, **kwargs: Any) -> None:
        if "use_multi_lookup" not in kwargs:
            kwargs["use_multi_lookup"] = os.environ.get("USE_MULTI_LOOKUP", "0") == "1"
        values = validate_init_kwargs(kwargs)
        for name, value in values.items():
            setattr(self, name, value)
        self.use_static = not self.use_dynamic
        self.modify_graph = False  # Rec SDK's flag; scripts set and read it (mx_rec.util.initialize.set_modify_graph)
        self.rank_id = collectives.get_rank_id()
        self.rank_size = collectives.get_rank_size()
        self.local_rank_size = collectives.get_local_rank_size()
        self.tables: Dict[str, Any] = {}
        self.hash_optimizers: list = []  # created since init(); DDR tables make their slots at creation
        self.train_params_config = TrainParamsConfig()

    @classmethod
    def get_instance(cls) -> "ConfigInitializer":
        """The live configuration; raises RuntimeError before ``init()`` or after termination."""
        if cls._instance is None:
            raise RuntimeError("mx_rec is not initialised: call mx_rec.util.initialize.init() first")
        return cls._instance

    @classmethod
    def is_initialized(cls) -> bool:
        return cls._instance is not None

    @classmethod
    def create(cls, **kwargs: Any) -> "ConfigInitializer":
        with cls._lock:
            instance = cls(**kwargs)
            if cls._instance is not None:
                logger.warning("init() called again: the previous configuration and its tables are dropped")
            cls._instance = instance
            return instance

    @classmethod
    def terminate(cls) -> None:
        with cls._lock:
            cls._instance = None

    def sparse_variables(self) -> list:
        """Every table variable and optimizer slot of the live tables: rows that only make sense with the
        host key index (kept out of TF's checkpoints and of the dense broadcast)."""
        out = []
        for table in self.tables.values():
            out.append(table.variable)
            out.extend(slot for slot, _ in table.slots.values())
        return out

    def register_table(self, table: Any) -> None:
        if table.table_name in self.tables:
            raise ValueError(f"table '{table.table_name}' already exists; table names must be unique")
        self.tables[table.table_name] = table
        collection = self.train_params_config.ascend_global_hashtable_collection
        if collection != ASCEND_GLOBAL_HASHTABLE_COLLECTION and getattr(table, "variable", None) is not None:
            tf.compat.v1.add_to_collection(collection, table.variable)
