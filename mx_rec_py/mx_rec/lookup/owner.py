"""Owner side of a lookup: keys this shard holds -> embeddings, with the gradient on the variable.

    keys [K] --numpy_function(host plan)--> gather_rows [G], inverse [K], write_rows [M], write_values [M, dim]
    ResourceScatterUpdate(variable, write_rows, write_values)      # initial rows of new keys
    numpy_function(confirm written rows)                           # after the write
    gathered = ResourceGather(variable, gather_rows)  [G, dim]      # after the confirmation
    out = gather(concat(gathered, zeros[1, dim], default[1, dim]), inverse) -> [K, dim]

The gradient with respect to the variable is ``IndexedSlices(values [G, dim], indices gather_rows)``,
already summed per key. Lookups of one table are independent of each other: a row inserted by one
lookup is written by every lookup that gathers it until a write is confirmed (see DeviceStore).
"""
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from mx_rec.config.graph_registry import registry_of
from mx_rec.constants.constants import (ASCEND_SPARSE_LOOKUP_ID_OFFSET, ASCEND_SPARSE_LOOKUP_LOCAL_EMB,
                                       ASCEND_SPARSE_LOOKUP_UNIQUE_KEYS)
from mx_rec.key_process.key_stats import NO_TIMESTAMP
from mx_rec.key_process.lookahead import NextKeys
from mx_rec.tables.table import EmbeddingTable


def _write_rows(table: EmbeddingTable, rows: tf.Tensor, values: tf.Tensor, device_rows: tf.Tensor) -> tf.Tensor:
    """Write rows before the gather; with expansion, first grow the variable to ``device_rows`` rows
    (zero-filled) inside the table's critical section, so two lookups never grow it at once."""
    def write():
        return tf.raw_ops.ResourceScatterUpdate(resource=table.variable.handle, indices=rows, updates=values,
                                                name="init_new_rows")

    if not table.expandable:
        return write()

    def grow_then_write():
        current = tf.raw_ops.VariableShape(input=table.variable.handle, out_type=tf.int64)[0]

        def grow():
            extra = tf.zeros(tf.stack([device_rows - current, table.dim]), table.value_dtype)
            grown = tf.concat([table.variable.read_value(), extra], axis=0)
            return table.variable.assign(grown, read_value=False)

        grew = tf.cond(current < device_rows, lambda: tf.group(grow()), tf.no_op)
        with tf.control_dependencies([grew]):
            return tf.group(write())

    return table.grow_lock.execute(grow_then_write)


def expand_rows(rows: tf.Tensor, indices: tf.Tensor) -> tf.Tensor:
    """``tf.gather(rows, indices)`` for few rows [G, d] and many indices [N], whose gradient is one
    dense segment sum [G, d] instead of IndexedSlices [N, d] that later ops would densify again."""
    @tf.custom_gradient
    def gather(values):
        def grad(dy):
            return tf.math.unsorted_segment_sum(dy, indices, tf.shape(values, out_type=indices.dtype)[0])
        return tf.gather(values, indices), grad
    return gather(rows)


def _swap(table: EmbeddingTable, swap_out: tf.Tensor, write_rows: tf.Tensor, write_values: tf.Tensor) -> tf.Tensor:
    """DDR mode, inside the table's critical section: read the rows leaving the device (int64 [V],
    with their slots) back to the host, then write the arriving rows [M] (``write_values`` [parts,
    M, dim]: the embedding, then each slot). Each half is skipped when empty (a batch placed ahead
    swaps nothing in its own step). Returns a tensor that exists once the writes are done."""
    variables = [table.variable] + [table.slots[name][0] for name in table.slot_order()]
    write_values.set_shape([len(variables), None, table.dim])

    def read_back():
        leaving = [tf.gather(v, swap_out) for v in variables]
        return tf.numpy_function(lambda *parts: (table.store.accept_swapped_out(parts), np.int64(0))[1], leaving,
                                 tf.int64, stateful=True, name="swap_out")

    def write():
        with tf.control_dependencies([tf.raw_ops.ResourceScatterUpdate(
                resource=v.handle, indices=write_rows, updates=write_values[i]) for i, v in enumerate(variables)]):
            return tf.constant(1, tf.int64)

    accepted = tf.cond(tf.size(swap_out) > 0, read_back, lambda: tf.constant(0, tf.int64))
    with tf.control_dependencies([accepted]):
        return tf.cond(tf.size(write_rows) > 0, write, lambda: tf.constant(0, tf.int64))


def _tiered_gather(table: EmbeddingTable, host_plan, inputs, n_keys) -> tuple:
    """DDR mode: plan and swap inside the table's critical section, then gather outside it (the
    batch's rows are pinned: no other plan of the table moves them until this lookup's next one).
    Returns (gathered [G, dim], inverse)."""
    def plan_and_swap():
        gather_rows, inverse, write_rows, write_values, _, swap_out = tf.numpy_function(
            host_plan, inputs, [tf.int64, tf.int32, tf.int64, table.value_dtype, tf.int64, tf.int64],
            stateful=True, name="host_plan")
        gather_rows.set_shape([None])
        inverse.set_shape(n_keys)
        with tf.control_dependencies([_swap(table, swap_out, write_rows, write_values)]):
            return tf.identity(gather_rows), tf.identity(inverse)

    # the gradient's indices are these rows: optimizers then read slots only after the writes
    written_rows, inverse = table.grow_lock.execute(plan_and_swap)
    return tf.gather(table.variable, written_rows), inverse


def _place_next_batch(table: EmbeddingTable, next_keys: NextKeys, seq: tf.Tensor, after: tf.Tensor,
                      lookup_id: int, send_count: Optional[int]) -> tf.Operation:
    """Lookahead: once this lookup's batch is placed (``after``), place the next batch's keys and
    run its swaps, in a second critical-section execution. The op runs beside the rest of the step
    (the table's hash optimizer groups it with its update); see ``key_process.lookahead``."""
    def host_prepare(seq_np: np.ndarray):
        keys = next_keys.after(int(seq_np))
        placement = None if keys is None else table.prepare(keys, lookup_id, int(seq_np) + 1, send_count)
        if placement is None:
            return np.empty(0, np.int64), np.empty(0, np.int64), table.store.no_values()
        return placement.swap_out_rows, placement.write_rows, placement.write_values

    def prepare():
        swap_out, write_rows, write_values = tf.numpy_function(
            host_prepare, [seq], [tf.int64, tf.int64, table.value_dtype], stateful=True, name="place_next_batch")
        return _swap(table, swap_out, write_rows, write_values)

    with tf.control_dependencies([after]):
        return table.grow_lock.execute(prepare, name="lookahead").op


def _device_gather(table: EmbeddingTable, host_plan, inputs, n_keys, insert: bool) -> tuple:
    """HBM mode: plan, write new rows (growing the variable with expansion), confirm, gather.
    Returns (gathered [G, dim], inverse)."""
    gather_rows, inverse, write_rows, write_values, device_rows, _ = tf.numpy_function(
        host_plan, inputs, [tf.int64, tf.int32, tf.int64, table.value_dtype, tf.int64, tf.int64],
        stateful=True, name="host_plan")
    gather_rows.set_shape([None])
    inverse.set_shape(n_keys)
    write_rows.set_shape([None])
    write_values.set_shape([None, table.dim])
    device_rows.set_shape([])
    write = _write_rows(table, write_rows, write_values, device_rows)
    with tf.control_dependencies([write]):
        confirmed = tf.numpy_function(table.confirm_written, [write_rows], tf.int64, stateful=True,
                                      name="confirm_written")
    with tf.control_dependencies([confirmed]):
        # the gradient's indices are these: optimizers then read slots only after the writes
        gather_rows = tf.identity(gather_rows)
        gathered = tf.gather(table.variable, gather_rows)
    if table.expandable and insert:
        # Rec SDK's expansion flow: gradients w.r.t. the local rows, applied by address (*_by_addr).
        tf.compat.v1.add_to_collection(ASCEND_SPARSE_LOOKUP_LOCAL_EMB, gathered)
        tf.compat.v1.add_to_collection(ASCEND_SPARSE_LOOKUP_ID_OFFSET, gather_rows)
        # newer Rec SDK scripts pair LOCAL_EMB with this collection instead; our rows are distinct per lookup
        tf.compat.v1.add_to_collection(ASCEND_SPARSE_LOOKUP_UNIQUE_KEYS, gather_rows)
        registry_of(table.variable.graph).addresses.setdefault(table.table_name, []).append(gather_rows)
    return gathered, inverse


def owner_lookup(table: EmbeddingTable, keys: tf.Tensor, timestamp: tf.Tensor, insert: bool,
                 send_count: Optional[int], default_row: tf.Tensor, out_dim: int,
                 weights: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Embeddings value_dtype [K, out_dim] of keys held by this shard; see :func:`owner_rows`."""
    return expand_rows(*owner_rows(table, keys, timestamp, insert, send_count, default_row, out_dim, weights))


def owner_rows(table: EmbeddingTable, keys: tf.Tensor, timestamp: tf.Tensor, insert: bool,
               send_count: Optional[int], default_row: tf.Tensor, out_dim: int,
               weights: Optional[tf.Tensor] = None, lookahead: Optional[Tuple[NextKeys, tf.Tensor]] = None,
               distinct: bool = False) -> Tuple[tf.Tensor, tf.Tensor]:
    """Rows of keys held by this shard, before expansion to one row per key.

    Args:
        keys: int64 [K]; may repeat; -1 is padding (zeros).
        timestamp: int64 scalar, the batch's newest timestamp (``NO_TIMESTAMP`` when not evicting).
        insert: training lookup (new keys get rows, sightings are counted).
        send_count: static shapes' most distinct keys (an overflow stops the step naming the
            count, before the table changes), or None. Only the real keys are gathered.
        default_row: value_dtype [1, out_dim] for keys without a row.
        out_dim: leading columns returned.
        weights: int64 [K], sightings each key stands for (requesters' counts), or None for one each.
        lookahead: (the pipeline's NextKeys, the batch's int64 sequence number) for a DDR/SSD table
            whose keys are distinct and come from a rebuilt pipeline: the next batch is placed while
            this one trains (``key_process.lookahead``).
        distinct: ``keys`` are distinct and hold no padding (a dedup key stage ran before).

    Returns:
        extended: value_dtype [G + 2, out_dim], the gathered rows, a zero row, the default row.
        inverse: int32 [K], each key's row in ``extended``.
    """
    lookup_id = table.built_lookups

    def host_plan(keys_np: np.ndarray, stamp: np.ndarray, *rest):
        seq = int(rest[-1]) if lookahead is not None else None
        plan = table.plan(keys_np, insert, send_count, None if stamp == NO_TIMESTAMP else int(stamp),
                          rest[0] if weights is not None else None, lookup_id, seq, distinct)
        table.rejections += plan.rejected
        return (plan.gather_rows, plan.inverse, plan.write_rows, plan.write_values, np.int64(plan.device_rows),
                plan.swap_out_rows)

    inputs = [keys, timestamp] + ([weights] if weights is not None else [])
    inputs += [lookahead[1]] if lookahead is not None else []
    if table.tiered:
        gathered, inverse = _tiered_gather(table, host_plan, inputs, keys.shape)
        if lookahead is not None:
            table.lookahead_ops.append(_place_next_batch(table, lookahead[0], lookahead[1], inverse, lookup_id,
                                                         send_count))
    else:
        gathered, inverse = _device_gather(table, host_plan, inputs, keys.shape, insert)
    if out_dim != table.dim:
        gathered = gathered[:, :out_dim]
    extended = tf.concat([gathered, tf.zeros([1, out_dim], table.value_dtype), default_row], axis=0)
    return extended, inverse
