"""``GraphRegistry``: the one record, per ``tf.Graph``, of the embedding lookups mx_rec built in it.

Everything the SDK must remember between building a lookup and running (or rewriting) the graph
lives in the registry of that graph, and nowhere else:

    tables            table name -> table object (``create_table``)
    hash_optimizers   hash optimizers, in creation order
    pipelines         FeatureSpec pipelines traced in the graph (``get_asc_insert_func``'s map)
    key_stages        the key stages of the lookups (``lookup.key_stage``), in creation order
    pending           multi-lookup calls waiting to be merged (``lookup.merge``)
    pushed            tensors to compute in the input pipeline (``graph.push``)
    addresses         per table, the device-row tensors dynamic-expansion lookups hand to ``*_by_addr``
                      optimizers (``lookup.owner``, ``optimizers.by_address``)
    lookup calls / built lookups, per table name
    lookups           the JSON records of the lookups, kept in the graph collection
                      ``LOOKUP_COLLECTION`` so that they travel with an exported MetaGraphDef

The registry is an attribute of its graph (a finished Estimator graph is collected with its tables'
host rows), so it goes with the graph. ``clear_all()`` (run when a configuration ends: termination, or
``init()`` again) empties every live graph's registry; the lookup records stay in the collection, as
the lookup ops they describe stay in the graph.

This module sits on the config floor and imports no room above it: entries are held as ``Any``.

Example:
    >>> registry = registry_of(tf.compat.v1.get_default_graph())   # doctest: +SKIP
    >>> registry.built_lookups("user_table")                         # doctest: +SKIP
    2
"""
import json
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import tensorflow as tf

LOOKUP_COLLECTION = "mx_rec_lookups"
_ATTR = "_mx_rec_registry"
_lock = threading.Lock()
_live: "weakref.WeakSet[tf.Graph]" = weakref.WeakSet()


@dataclass(eq=False)
class GraphRegistry:
    """What mx_rec built in one graph (see the module docstring). Mutate through the owning modules:
    ``ConfigInitializer`` (tables, hash optimizers), ``lookup.input_pipeline`` (pipelines),
    ``lookup.key_stage`` (key stages), ``lookup.merge`` (pending), ``graph.push`` (pushed),
    ``lookup.owner`` (addresses), ``saver.delta`` (row readers), ``lookup.sparse_lookup`` / ``lookup.build`` (counts) and
    ``lookup.registry`` (lookup records)."""

    graph: "weakref.ref[tf.Graph]"
    tables: Dict[str, Any] = field(default_factory=dict)
    hash_optimizers: List[Any] = field(default_factory=list)
    pipelines: Dict[int, Any] = field(default_factory=dict)  # pipeline id -> input_pipeline._Pipeline
    key_stages: List[Any] = field(default_factory=list)  # lookup.key_stage.KeyStage
    pending: List[Any] = field(default_factory=list)  # lookup.merge.PendingLookup
    pushed: List[tf.Tensor] = field(default_factory=list)
    addresses: Dict[str, List[tf.Tensor]] = field(default_factory=dict)  # table name -> by-address row tensors
    # table name -> (slot names, rows placeholder, gathered [embeddings, slots...]): delta checkpoints' reads
    row_readers: Dict[str, Any] = field(default_factory=dict)
    _calls: Dict[str, int] = field(default_factory=dict)
    _built: Dict[str, int] = field(default_factory=dict)

    def count_call(self, table_name: str, limit: int) -> int:
        """Count one ``sparse_lookup`` call of ``table_name``; returns the calls so far (int).

        Raises:
            ValueError: the table would have more than ``limit`` calls, naming it.
        """
        calls = self._calls.get(table_name, 0)
        if calls >= limit:
            raise ValueError(f"table '{table_name}': more than {limit} lookups of one table")
        self._calls[table_name] = calls + 1
        return calls + 1

    def lookup_calls(self, table_name: str) -> int:
        """``sparse_lookup`` calls of ``table_name`` in this graph (int)."""
        return self._calls.get(table_name, 0)

    def count_built(self, table_name: str) -> int:
        """Count one lookup built of ``table_name`` (one per call, or per merged group); returns its id:
        the lookups built so far (int, 1-based)."""
        self._built[table_name] = self._built.get(table_name, 0) + 1
        return self._built[table_name]

    def built_lookups(self, table_name: str) -> int:
        """Lookups built of ``table_name`` in this graph (int)."""
        return self._built.get(table_name, 0)

    def take_pending(self) -> List[Any]:
        """The pending multi-lookups, forgotten here (they are being built)."""
        pending, self.pending = self.pending, []
        return pending

    def record_lookup(self, record: Dict[str, Any]) -> None:
        """Add one lookup's record (a JSON-able dict) to the graph's ``LOOKUP_COLLECTION``."""
        graph = self.graph()
        if graph is not None:
            graph.add_to_collection(LOOKUP_COLLECTION, json.dumps(record))

    def lookups(self) -> List[Dict[str, Any]]:
        """The lookup records of the graph, in creation order."""
        graph = self.graph()
        return [] if graph is None else lookup_records(graph)


def lookup_records(graph: tf.Graph) -> List[Dict[str, Any]]:
    """The records in ``graph``'s ``LOOKUP_COLLECTION`` (also of a graph imported from a ``.meta`` file)."""
    return [json.loads(item.decode() if isinstance(item, bytes) else item)
            for item in graph.get_collection(LOOKUP_COLLECTION)]


def registry_of(graph: tf.Graph) -> GraphRegistry:
    """The registry of ``graph``, made on first use."""
    registry = getattr(graph, _ATTR, None)
    if registry is None:
        with _lock:
            registry = getattr(graph, _ATTR, None)
            if registry is None:
                registry = GraphRegistry(weakref.ref(graph))
                setattr(graph, _ATTR, registry)
                _live.add(graph)
    return registry


def find_registry(graph: tf.Graph) -> Optional[GraphRegistry]:
    """The registry of ``graph`` if anything was recorded in it, else None (makes none)."""
    return getattr(graph, _ATTR, None)


def clear_all() -> None:
    """Empty the registry of every live graph (a configuration ended: termination, or ``init()`` again)."""
    with _lock:
        for graph in list(_live):
            if hasattr(graph, _ATTR):
                delattr(graph, _ATTR)
        _live.clear()
