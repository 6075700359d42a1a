"""Owner side of a lookup: keys this shard holds -> embeddings, with the gradient on the variable.

    keys [K] --table.backend.gather(host plan)--> gathered [G, dim], inverse [K]
        (the backend plans on the host, writes or swaps the rows it needs, then gathers; see
        ``storage.device_backend`` and ``storage.tiered_backend``)
    out = gather(concat(gathered, zeros[1, dim], default[1, dim]), inverse) -> [K, dim]

The gradient with respect to the variable is ``IndexedSlices(values [G, dim], indices gather_rows)``,
already summed per key. Lookups of one table are independent of each other: a row inserted by one
lookup is written by every lookup that gathers it until a write is confirmed (see DeviceStore).
"""
from typing import Tuple

import numpy as np
import tensorflow as tf

from mx_rec.config.graph_registry import registry_of
from mx_rec.constants.constants import (ASCEND_SPARSE_LOOKUP_ID_OFFSET, ASCEND_SPARSE_LOOKUP_LOCAL_EMB,
                                       ASCEND_SPARSE_LOOKUP_UNIQUE_KEYS)
from mx_rec.kernels.ops import segment_sum
from mx_rec.key_process.key_stats import NO_TIMESTAMP
from mx_rec.lookup.request import LookupRequest
from mx_rec.storage.plan import PlanRequest
from mx_rec.tables.table import EmbeddingTable


def expand_rows(rows: tf.Tensor, indices: tf.Tensor) -> tf.Tensor:
    """``tf.gather(rows, indices)`` for few rows [G, d] and many indices [N], whose gradient is one
    dense segment sum [G, d] instead of IndexedSlices [N, d] that later ops would densify again."""
    @tf.custom_gradient
    def gather(values):
        def grad(dy):
            return segment_sum(dy, indices, tf.shape(values, out_type=indices.dtype)[0])
        return tf.gather(values, indices), grad
    return gather(rows)


def owner_lookup(table: EmbeddingTable, request: LookupRequest) -> tf.Tensor:
    """Embeddings value_dtype [K, out_dim] of keys held by this shard; see :func:`owner_rows`."""
    return expand_rows(*owner_rows(table, request))


def owner_rows(table: EmbeddingTable, request: LookupRequest) -> Tuple[tf.Tensor, tf.Tensor]:
    """Rows of keys int64 [K] held by this shard, before expansion to one row per key.

    ``request`` (see :class:`LookupRequest`): ``send_count`` is checked here (an overflow stops the
    step naming the count, before the table changes); only the real keys are gathered.
    ``lookahead`` is for a DDR/SSD table whose keys are distinct and come from a rebuilt pipeline.

    Returns:
        extended: value_dtype [G + 2, out_dim], the gathered rows, a zero row, the default row.
        inverse: int32 [K], each key's row in ``extended``.
    """
    lookup_id = table.built_lookups
    keys, weights, lookahead, insert = request.keys, request.weights, request.lookahead, request.insert
    send_count, out_dim = request.send_count, request.out_dim

    def host_plan(keys_np: np.ndarray, stamp: np.ndarray, *rest):
        plan = table.plan(PlanRequest(keys_np, insert, send_count, None if stamp == NO_TIMESTAMP else int(stamp),
                                      rest[0] if weights is not None else None, lookup_id,
                                      int(rest[-1]) if lookahead is not None else None, request.distinct))
        table.rejections += plan.rejected
        return plan

    inputs = [keys, request.timestamp] + ([weights] if weights is not None else [])
    inputs += [lookahead[1]] if lookahead is not None else []
    variables = table.row_variables()
    gathered, gather_rows, inverse = table.backend.gather(variables, host_plan, inputs, keys.shape)
    if lookahead is not None:  # only for a backend that places ahead (``table.places_ahead``)
        next_keys, seq = lookahead

        def next_placement(seq_np: int):
            keys_np = next_keys.after(seq_np)
            return None if keys_np is None else table.prepare(keys_np, lookup_id, seq_np + 1, send_count)

        table.lookahead_ops.append(table.backend.place_next_batch(variables, next_placement, seq, inverse))
    if table.expandable and insert:
        # Rec SDK's expansion flow: gradients w.r.t. the local rows, applied by address (*_by_addr).
        tf.compat.v1.add_to_collection(ASCEND_SPARSE_LOOKUP_LOCAL_EMB, gathered)
        tf.compat.v1.add_to_collection(ASCEND_SPARSE_LOOKUP_ID_OFFSET, gather_rows)
        # newer Rec SDK scripts pair LOCAL_EMB with this collection instead; our rows are distinct per lookup
        tf.compat.v1.add_to_collection(ASCEND_SPARSE_LOOKUP_UNIQUE_KEYS, gather_rows)
        registry_of(table.variable.graph).addresses.setdefault(table.table_name, []).append(gather_rows)
    if out_dim != table.dim:
        gathered = gathered[:, :out_dim]
    extended = tf.concat([gathered, tf.zeros([1, out_dim], table.value_dtype), request.default_row], axis=0)
    return extended, inverse
