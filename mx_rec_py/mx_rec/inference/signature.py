"""Which tensor a model predicts with and which batch entries feed it, recorded in the graph.

A model calls :func:`set_prediction` once, in its evaluation graph, before the Saver writes the
``.meta`` file; the record is one JSON string in the graph collection ``SIGNATURE_COLLECTION``
(strings survive in a MetaGraphDef), so ``tools/export_local.py`` can cut the dense graph out of
a checkpoint without running model code:

    {"prediction": tensor name,
     "inputs": {batch key: {"tensor": name, "dtype": str, "shape": [int|None], "aliases": [names]}}}

Example:
    >>> probs = tf.sigmoid(logits)                                   # doctest: +SKIP
    >>> set_prediction(probs, eval_batch)   # eval_batch: the iterator's dict of tensors
"""
import json
from typing import Any, Dict, Mapping, Optional

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

SIGNATURE_COLLECTION = "mx_rec_inference_signature"


def set_prediction(prediction: tf.Tensor, inputs: Mapping[str, tf.Tensor],
                   aliases: Optional[Mapping[str, tf.Tensor]] = None) -> None:
    """Record ``prediction`` (any dtype and shape, leading dimension = batch) and the batch entries
    ``inputs`` (name -> tensor, e.g. the iterator's ``dense_feature`` float32 [B, D]) it is computed from.

    Args:
        aliases: other tensors holding the same entries (name -> tensor), e.g. the iterator's outputs
            before ``modify_graph_and_start_emb_cache`` rebuilt its pipeline: lookups recorded their ids
            as those. Entries that the prediction does not depend on (labels, flags) are dropped at
            export. Calling it again replaces the earlier record.

    Raises:
        TypeError: ``prediction`` or an input is not a ``tf.Tensor`` (the entry's name is given).
    """
    if not isinstance(prediction, tf.Tensor):
        raise TypeError(f"set_prediction: prediction must be a tf.Tensor, got {type(prediction).__name__}")
    described = {}
    for key, tensor in list(inputs.items()) + list((aliases or {}).items()):
        if not isinstance(tensor, tf.Tensor):
            raise TypeError(f"set_prediction: input {key!r} must be a tf.Tensor, got {type(tensor).__name__}")
        entry = described.get(str(key))
        if entry is None:
            shape = tensor.shape.as_list() if tensor.shape.rank is not None else None
            described[str(key)] = {"tensor": tensor.name, "dtype": tensor.dtype.name, "shape": shape, "aliases": []}
        elif tensor.name != entry["tensor"] and tensor.name not in entry["aliases"]:
            entry["aliases"].append(tensor.name)
    graph = prediction.graph
    graph.clear_collection(SIGNATURE_COLLECTION)
    graph.add_to_collection(SIGNATURE_COLLECTION, json.dumps({"prediction": prediction.name, "inputs": described}))


def _decode(item: Any) -> Dict[str, Any]:
    return json.loads(item.decode() if isinstance(item, bytes) else item)


def graph_signature(graph: Optional[tf.Graph] = None) -> Optional[Dict[str, Any]]:
    """The signature recorded in ``graph`` (default graph), or None."""
    items = (graph or tf.compat.v1.get_default_graph()).get_collection(SIGNATURE_COLLECTION)
    return _decode(items[-1]) if items else None


def collection_strings(meta_graph: meta_graph_pb2.MetaGraphDef, name: str) -> list:
    """The string items of collection ``name`` in a MetaGraphDef (empty when it has none)."""
    if name not in meta_graph.collection_def:
        return []
    return [_decode(v) for v in meta_graph.collection_def[name].bytes_list.value]


def meta_signature(meta_graph: meta_graph_pb2.MetaGraphDef) -> Optional[Dict[str, Any]]:
    """The signature recorded in a MetaGraphDef (a Saver's ``.meta``), or None."""
    items = collection_strings(meta_graph, SIGNATURE_COLLECTION)
    return items[-1] if items else None
