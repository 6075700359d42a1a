"""Multi-lookup: training lookups of one table merge into one key-processing pass and one exchange.

With ``init(use_multi_lookup=True)`` (or ``USE_MULTI_LOOKUP=1``), ``sparse_lookup(is_train=True)``
returns a stand-in tensor and records the call in the graph's registry (``config.graph_registry``).
``build_pending_lookups()`` then builds, per table, one lookup of all recorded calls' keys
concatenated, splits its rows back into each call's shape and rewires every stand-in to its part,
so the model built on the stand-ins sees real embeddings and the gradient of every call reaches
the one merged lookup (summed per key there).

Hash optimizers call ``build_pending_lookups()`` in ``compute_gradients`` (so ``minimize`` does),
as do ``get_dense_and_sparse_variable()`` and graph modification. A stand-in that is still pending
when the session runs stops the step with a message saying so.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from mx_rec.config.graph_registry import find_registry, registry_of
from mx_rec.lookup.build import build_rows
from mx_rec.lookup.owner import expand_rows
from mx_rec.lookup.request import LookupRequest
from mx_rec.tables.table import EmbeddingTable


@dataclass(eq=False)
class PendingLookup:
    """One recorded call. keys: int64 [K] (flat ids); ids_shape: int32 [rank] of the call's ids;
    stand_in: the Identity op whose input becomes the real embeddings [ids.shape + [out_dim]]."""

    table: EmbeddingTable
    keys: tf.Tensor
    ids_shape: tf.Tensor
    timestamp: tf.Tensor
    send_count: Optional[int]
    default_row: tf.Tensor
    default_key: bytes
    out_dim: int
    stop_gradient: bool
    modify_graph: bool
    stand_in: Optional[tf.Operation] = None


def defer(lookup: PendingLookup, static_shape: tf.TensorShape, name: str) -> tf.Tensor:
    """Record ``lookup`` and return its stand-in: value_dtype ``static_shape`` (ids.shape + [out_dim])."""
    table_name = lookup.table.table_name

    def unbuilt() -> np.ndarray:
        raise RuntimeError(
            f"table '{table_name}': lookups merged by multi-lookup were never built; call "
            "mx_rec.lookup.merge.build_pending_lookups() (hash optimizers' compute_gradients/minimize, "
            "get_dense_and_sparse_variable() and modify_graph_and_start_emb_cache() do) before the session runs")

    placeholder = tf.numpy_function(unbuilt, [], lookup.table.value_dtype, stateful=True, name="pending_lookup")
    placeholder = tf.reshape(placeholder, tf.concat([lookup.ids_shape, [lookup.out_dim]], axis=0))
    out = tf.identity(placeholder, name=name)
    out.set_shape(static_shape)
    lookup.stand_in = out.op
    registry_of(out.graph).pending.append(lookup)
    return out


def _group_key(lookup: PendingLookup) -> Tuple:
    return (lookup.table.table_name, lookup.out_dim, lookup.default_key, lookup.send_count is None,
            lookup.modify_graph)


def _build_group(group: List[PendingLookup]) -> None:
    first = group[0]
    table = first.table
    keys = tf.concat([p.keys for p in group], axis=0)
    timestamp = tf.reduce_max(tf.stack([p.timestamp for p in group]))
    send_count = None if first.send_count is None else sum(p.send_count for p in group)
    with tf.name_scope(f"{table.table_name}_merged_lookup"):
        extended, index = build_rows(table, LookupRequest(keys, timestamp, True, send_count, first.default_row,
                                                          first.out_dim, first.modify_graph))
        sizes = tf.stack([tf.size(p.keys, out_type=tf.int32) for p in group])
        indices = tf.split(index, sizes, axis=0, num=len(group))
    for lookup, part_index in zip(group, indices):
        with tf.name_scope(f"{table.table_name}_merged_part"):
            part = expand_rows(extended, part_index)
            part = tf.reshape(part, tf.concat([lookup.ids_shape, [lookup.out_dim]], axis=0))
            if lookup.stop_gradient:
                part = tf.stop_gradient(part)
        lookup.stand_in._update_input(0, part)  # pylint: disable=protected-access


def build_pending_lookups(graph: Optional[tf.Graph] = None) -> int:
    """Build the merged lookups recorded in ``graph`` (default graph); returns how many were built.

    Calls on one table with the same output width, default value, shape mode and feed mode
    (``modify_graph``) merge into one lookup, in call order; calls with other settings form their
    own group.
    """
    graph = graph or tf.compat.v1.get_default_graph()
    registry = find_registry(graph)
    pending = registry.take_pending() if registry is not None else []
    groups: Dict[Tuple, List[PendingLookup]] = {}
    for lookup in pending:
        groups.setdefault(_group_key(lookup), []).append(lookup)
    with graph.as_default():
        for group in groups.values():
            _build_group(group)
    return len(groups)
