"""The graph's record of its ``sparse_lookup`` calls, for tools that rewrite or export the graph.

Each lookup adds one JSON string to the graph collection ``LOOKUP_COLLECTION``; strings survive
in a Saver's ``.meta`` file, so an exported MetaGraphDef still says which tensor holds which
table's embeddings and which tensor held the ids:

    {"table": str, "ids": ids tensor name (any int shape S), "output": embeddings tensor name
     (value_dtype S + [dim]), "dim": int, "is_train": bool, "default": list of dim floats or null,
     "padding_keys": list of ints (only when the table masks padding keys: those ids read zeros)}
"""
import json
from typing import Dict, List, Optional, Sequence

import tensorflow as tf

LOOKUP_COLLECTION = "mx_rec_lookups"


def record_lookup(table_name: str, ids: tf.Tensor, output: tf.Tensor, dim: int, is_train: bool,
                  default: Optional[List[float]], padding_keys: Sequence[int] = ()) -> None:
    """Add one lookup to the default graph's ``LOOKUP_COLLECTION``."""
    record = {"table": table_name, "ids": ids.name, "output": output.name, "dim": int(dim),
              "is_train": bool(is_train), "default": default}
    if padding_keys:
        record["padding_keys"] = [int(k) for k in padding_keys]
    tf.compat.v1.add_to_collection(LOOKUP_COLLECTION, json.dumps(record))


def recorded_lookups(graph: Optional[tf.Graph] = None) -> List[Dict]:
    """The lookups recorded in ``graph`` (default graph), in creation order."""
    graph = graph or tf.compat.v1.get_default_graph()
    return [json.loads(item.decode() if isinstance(item, bytes) else item)
            for item in graph.get_collection(LOOKUP_COLLECTION)]
