"""``ConfigInitializer``: the process-wide state behind ``init()`` (settings, ranks, tables)."""
import os
import threading
import weakref
from typing import Any, Dict, List, Optional

import tensorflow as tf

from mx_rec.communication import collectives
from mx_rec.config.graph_registry import GraphRegistry, clear_all, find_registry, registry_of
from mx_rec.config.params import validate_init_kwargs
from mx_rec.constants.constants import (ASCEND_GLOBAL_HASHTABLE_COLLECTION, EVAL_CHANNEL_ID,
                                        HASHTABLE_COLLECTION_NAME_LENGTH, TRAIN_CHANNEL_ID)
from mx_rec.system.log import logger


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

    Tables and hash optimizers are kept per graph, in its ``config.graph_registry.GraphRegistry``
    (emptied when this configuration ends): ``tf.estimator.Estimator`` builds a new graph and
    calls ``model_fn`` again for every train / evaluate / predict, so ``create_table`` runs again
    with the same names. ``tables`` (and ``hash_optimizers``) are those of the default graph, or,
    when it has none (a host callback on a TF thread, code after the graph's ``with`` block), those
    of the graph that most recently created a table. A table's rows and host key index belong to its
    graph's table object; they reach a new graph's table through a checkpoint, as in Rec SDK (the
    Estimator restores ``model_dir``'s latest checkpoint into every graph it builds).
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
        self._graphs: List["weakref.ref[tf.Graph]"] = []  # graphs holding this configuration's tables, oldest first
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
                clear_all()
            cls._instance = instance
            return instance

    @classmethod
    def terminate(cls) -> None:
        with cls._lock:
            cls._instance = None
            clear_all()  # every graph's tables, pipelines, key stages and pending lookups

    def _state(self, graph: tf.Graph, create: bool = False) -> Optional[GraphRegistry]:
        """The registry of ``graph`` (``config.graph_registry``); ``create`` also counts the graph as one of
        this configuration's."""
        if not create:
            return find_registry(graph)
        registry = registry_of(graph)
        if not any(ref() is graph for ref in self._graphs):
            self._graphs = [ref for ref in self._graphs if ref() is not None] + [weakref.ref(graph)]
        return registry

    def _current_state(self) -> Optional[GraphRegistry]:
        """The default graph's state, else that of the newest live graph with tables."""
        state = self._state(tf.compat.v1.get_default_graph())
        if state is not None and state.tables:
            return state
        for ref in reversed(self._graphs):
            graph = ref()
            other = self._state(graph) if graph is not None else None
            if other is not None and other.tables:
                return other
        return state

    @property
    def tables(self) -> Dict[str, Any]:
        """Table name -> table object, of the default graph (see the class docstring)."""
        state = self._current_state()
        return state.tables if state is not None else {}

    @property
    def hash_optimizers(self) -> List[Any]:
        """Hash optimizers created in the default graph since ``init()`` (DDR tables make their slots at
        creation); append to register one."""
        return self._state(tf.compat.v1.get_default_graph(), create=True).hash_optimizers

    def table_in_graph(self, name: str, graph: Optional[tf.Graph] = None) -> bool:
        """Whether ``graph`` (default: the default graph) already has a table called ``name``."""
        state = self._state(graph or tf.compat.v1.get_default_graph())
        return state is not None and name in state.tables

    def sparse_variables(self) -> list:
        """Every table variable and optimizer slot of the live tables: rows that only make sense with the
        host key index (kept out of TF's checkpoints and of the dense broadcast)."""
        out = []
        for table in self.tables.values():
            out.append(table.variable)
            out.extend(slot for slot, _ in table.slots.values())
        return out

    def register_table(self, table: Any) -> None:
        """Add ``table`` to its variable's graph.

        Raises:
            ValueError: that graph already has a table of this name.
        """
        graph = table.variable.graph
        if self.table_in_graph(table.table_name, graph):
            raise ValueError(f"table '{table.table_name}' already exists; table names must be unique")
        replaced = any(ref() is not graph and ref() is not None and self.table_in_graph(table.table_name, ref())
                       for ref in self._graphs)
        if replaced:
            logger.info("table '%s' is created again in a new graph (an Estimator builds one per train, evaluate "
                        "and predict): this graph's table starts empty; the checkpoint it restores fills it",
                        table.table_name)
        self._state(graph, create=True).tables[table.table_name] = table
        collection = self.train_params_config.ascend_global_hashtable_collection
        if collection != ASCEND_GLOBAL_HASHTABLE_COLLECTION and getattr(table, "variable", None) is not None:
            tf.compat.v1.add_to_collection(collection, table.variable)
