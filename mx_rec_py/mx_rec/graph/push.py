"""Tensors to compute in the input pipeline instead of the training step (Rec SDK's "push ops to dataset").

``push_to_pipeline(tensor)`` records, in its graph's registry (``config.graph_registry``), a tensor
computed from a dataset iterator's ``get_next()`` outputs by stateless ops (string parsing, casts,
slicing). When graph modification rebuilds that iterator's pipeline
(``modify_graph_and_start_emb_cache``, ``GraphModifierHook``), the tensor is computed inside the
``tf.data`` map, one or two batches ahead, and every reader of it reads the pipeline's copy: its
ops no longer run in the step. Only iterators that feed a ``modify_graph=True`` lookup are rebuilt;
a tensor of another iterator stays where it is.
"""
from typing import List

import tensorflow as tf

from mx_rec.config.graph_registry import find_registry, registry_of
from mx_rec.lookup.trace import iterator_source

_UNPUSHABLE = (tf.variant, tf.resource)


def push_to_pipeline(tensor: tf.Tensor) -> bool:
    """Ask graph modification to compute ``tensor`` in the input pipeline; False (nothing recorded) when it
    cannot: it does not come from one iterator through stateless ops, or it is a variant/resource handle."""
    if tensor.dtype in _UNPUSHABLE:
        return False
    try:
        iterator_source(tensor, f"tensor '{tensor.name}'")
    except ValueError:
        return False
    recorded = registry_of(tensor.graph).pushed
    if not any(t is tensor for t in recorded):
        recorded.append(tensor)
    return True


def pushed_tensors(graph: tf.Graph) -> List[tf.Tensor]:
    """The tensors recorded for ``graph`` and not yet moved, in order."""
    registry = find_registry(graph)
    return list(registry.pushed) if registry is not None else []


def mark_moved(graph: tf.Graph, tensors: List[tf.Tensor]) -> None:
    """Forget ``tensors`` (moved into a rebuilt pipeline)."""
    moved = {id(t) for t in tensors}
    registry = registry_of(graph)
    registry.pushed = [t for t in registry.pushed if id(t) not in moved]
