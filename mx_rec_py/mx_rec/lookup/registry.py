"""The graph's record of its ``sparse_lookup`` calls, for tools that rewrite or export the graph.

Each lookup adds one JSON string to the graph collection ``LOOKUP_COLLECTION`` (through the graph's
``config.graph_registry.GraphRegistry``); strings survive in a Saver's ``.meta`` file, so an
exported MetaGraphDef still says which tensor holds which table's embeddings and which tensor held
the ids:

    {"table": str, "ids": ids tensor name (any int shape S), "output": embeddings tensor name
     (value_dtype S + [dim]), "dim": int, "is_train": bool, "default": list of dim floats or null,
     "padding_keys": list of ints (only when the table masks padding keys: those ids read zeros)}
"""
from typing import Dict, List, Optional, Sequence

import tensorflow as tf

from mx_rec.config.graph_registry import LOOKUP_COLLECTION, lookup_records, registry_of

__all__ = ["LOOKUP_COLLECTION", "record_lookup", "recorded_lookups"]


def record_lookup(table_name: str, ids: tf.Tensor, output: tf.Tensor, dim: int, is_train: bool,
                  default: Optional[List[float]], padding_keys: Sequence[int] = ()) -> None:
    """Add one lookup to the default graph's ``LOOKUP_COLLECTION``."""
    record = {"table": table_name, "ids": ids.name, "output": output.name, "dim": int(dim),
              "is_train": bool(is_train), "default": default}
    if padding_keys:
        record["padding_keys"] = [int(k) for k in padding_keys]
    registry_of(tf.compat.v1.get_default_graph()).record_lookup(record)


def recorded_lookups(graph: Optional[tf.Graph] = None) -> List[Dict]:
    """The lookups recorded in ``graph`` (default graph), in creation order."""
    return lookup_records(graph or tf.compat.v1.get_default_graph())
