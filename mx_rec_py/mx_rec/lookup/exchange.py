"""Requester side of a sharded lookup: route distinct keys to their owners and bring rows back.

    ids [N] --numpy_function(route)--> send_keys [S] grouped by owner, send_counts [ranks], positions [N]
    (send_count mode: each bucket also carries its sender's largest bucket, checked on every rank
    before the owners plan, so an overflow stops all ranks; S stays the real count of distinct
    keys: the all-to-all has variable splits, padding buys nothing)
    recv_keys [R] = all_to_all(send_keys)           owners receive the keys they hold
    rows [R, dim] = owner_lookup(recv_keys)         on the owner shard
    back [S, dim] = all_to_all(rows)                answers return in send order
    out [N, dim] = gather(concat(back, zeros[1, dim]), positions)     (expand_rows, by the caller)

Gradients take the reverse path (Horovod's all-to-all gradient) and are summed per key on the
owner; with ``sum_gradients_and_div_by_ranksize`` they are divided by the rank count on the way
(``communication.gradient_reduction``, the table config's strategy).
"""
from dataclasses import replace
from typing import Tuple

import numpy as np
import tensorflow as tf

from mx_rec.communication import collectives
from mx_rec.key_process.partition import add_trailers, route, strip_trailers
from mx_rec.lookup.key_stage import DEDUP_DTYPES, dedup_stage, key_stage
from mx_rec.lookup.owner import owner_lookup
from mx_rec.lookup.request import LookupRequest
from mx_rec.tables.table import EmbeddingTable


def _checked_exchange(table: EmbeddingTable, send_keys: tf.Tensor, send_counts: tf.Tensor, send_count: int
                      ) -> Tuple[tf.Tensor, tf.Tensor]:
    """Static shapes' all-to-all of keys: (received keys int64 [R], receive counts int32 [ranks]).
    Each bucket carries its sender's largest bucket as a trailer (``add_trailers``), so every rank
    learns the largest bucket of any rank from the exchange itself and fails the step together on
    overflow, before any owner plans (a separate all-reduce cost about 1 ms of CPU a step)."""
    received, counts = collectives.all_to_all_v(send_keys, send_counts + 1)

    def check(received_np: np.ndarray, counts_np: np.ndarray) -> np.ndarray:
        keys, largest = strip_trailers(received_np, counts_np)
        value = int(largest.max())
        if value > send_count:
            raise ValueError(f"table '{table.table_name}': {value} distinct keys bound for one rank exceed "
                             f"send_count={send_count}; set send_count >= {value}")
        return keys

    keys = tf.numpy_function(check, [received, counts], tf.int64, stateful=True, name="check_send_count")
    return keys, counts - 1


def sharded_rows(table: EmbeddingTable, request: LookupRequest) -> Tuple[tf.Tensor, tf.Tensor]:
    """Rows of ids ``request.keys`` int64 [N] from a table sharded over ``collectives.get_rank_size()``
    ranks: (extended value_dtype [S + 1, out_dim], positions int32 [N]); ``expand_rows`` gives [N, out_dim].
    The routing is a key stage (``lookup.key_stage``) that graph modification may move into the pipeline."""
    ranks = collectives.get_rank_size()
    keys, timestamp, send_count, out_dim = request.keys, request.timestamp, request.send_count, request.out_dim

    def plan(keys_np: np.ndarray):
        r = route(keys_np, ranks)
        sent = r.send_keys if send_count is None else add_trailers(r.send_keys, r.send_counts, r.largest_bucket)
        return sent, r.send_counts, r.occurrences, r.positions

    send_keys, send_counts, occurrences, positions = key_stage(
        table.table_name, plan, keys, [tf.int64, tf.int32, tf.int64, tf.int32], request.modify_graph, request.insert,
        "route")
    for tensor in (send_keys, occurrences):
        tensor.set_shape([None])
    send_counts.set_shape([ranks])
    positions.set_shape(keys.shape)
    if send_count is None:
        recv_keys, recv_counts = collectives.all_to_all_v(send_keys, send_counts)
    else:
        recv_keys, recv_counts = _checked_exchange(table, send_keys, send_counts, send_count)
    recv_keys.set_shape([None])
    weights = None
    if table.lifecycle is not None and table.lifecycle.counts:
        weights, _ = collectives.all_to_all_v(occurrences, send_counts)
    if table.lifecycle is not None and table.lifecycle.evicts:
        timestamp = collectives.allreduce(timestamp, "max")
    # at most ranks * send_count distinct keys arrive: every requester checked its bucket
    rows = owner_lookup(table, replace(request, keys=recv_keys, timestamp=timestamp, send_count=None, weights=weights))
    back, _ = collectives.all_to_all_v(rows, recv_counts)
    back.set_shape([None, out_dim])
    back = table.config.gradient_reduction.exchanged_rows(back, ranks)
    extended = tf.concat([back, tf.zeros([1, out_dim], table.value_dtype)], axis=0)
    return extended, positions


def replicated_rows(table: EmbeddingTable, request: LookupRequest) -> Tuple[tf.Tensor, tf.Tensor]:
    """Rows of ids ``request.keys`` int64 [N] from an ``is_dp=True`` table, replicated on every rank:
    (extended value_dtype [U_all + 1, out_dim], index int32 [N]).

    Every rank looks up the all-gathered distinct keys of all ranks in the same order, so the
    replicas insert, count and update identically; the gradient of those rows is summed (or
    averaged, with ``sum_gradients_and_div_by_ranksize``) over ranks. ``send_count`` does not apply.
    """
    keys, timestamp, out_dim = request.keys, request.timestamp, request.out_dim
    unique, positions, counts = key_stage(table.table_name, dedup_stage, keys, DEDUP_DTYPES, request.modify_graph,
                                          request.insert, "dedup")
    unique.set_shape([None])
    counts.set_shape([None])
    positions.set_shape(keys.shape)
    all_keys = collectives.allgather(unique)
    sizes = collectives.allgather(tf.shape(unique, out_type=tf.int32)[:1])
    offset = tf.reduce_sum(sizes[:collectives.get_rank_id()])
    weights = collectives.allgather(counts) if table.lifecycle is not None and table.lifecycle.counts else None
    if table.lifecycle is not None and table.lifecycle.evicts:
        timestamp = collectives.allreduce(timestamp, "max")
    rows = owner_lookup(table, replace(request, keys=all_keys, timestamp=timestamp, send_count=None, weights=weights))
    rows = table.config.gradient_reduction.replicated_rows(rows)
    total = tf.shape(all_keys, out_type=tf.int32)[0]
    mine = tf.where(positions < tf.size(unique), positions + offset, total)  # padding ids -> zero row
    extended = tf.concat([rows, tf.zeros([1, out_dim], table.value_dtype)], axis=0)
    return extended, mine
