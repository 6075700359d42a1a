"""Builds one lookup's ops for flat keys: replicated, sharded over ranks, or on this rank alone.

``sparse_lookup`` calls it once per call; with multi-lookup, ``lookup.merge`` calls it once for
the concatenated keys of several calls on one table.
"""
from dataclasses import replace
from typing import Tuple

import tensorflow as tf

from mx_rec.config.graph_registry import registry_of
from mx_rec.config.initializer import ConfigInitializer
from mx_rec.key_process.lookahead import NextKeys
from mx_rec.lookup.exchange import replicated_rows, sharded_rows
from mx_rec.lookup.key_stage import DEDUP_DTYPES, dedup_stage, key_stage
from mx_rec.lookup.owner import owner_rows
from mx_rec.lookup.request import LookupRequest
from mx_rec.tables.table import EmbeddingTable


def _staged_owner_rows(table: EmbeddingTable, request: LookupRequest) -> Tuple[tf.Tensor, tf.Tensor]:
    """One rank, modify-graph mode: dedup is a key stage (movable into the pipeline); the owner
    lookup then sees distinct keys, each weighted by its occurrences."""
    keys, insert = request.keys, request.insert
    lookahead = None
    if table.places_ahead(insert):  # the stage also tells the table which keys come next
        next_keys = NextKeys()
        unique, inverse, counts, seq = key_stage(table.table_name, next_keys.dedup_stage, keys,
                                                 DEDUP_DTYPES + [tf.int64], True, insert, "dedup")
        seq.set_shape([])
        lookahead = (next_keys, seq)
    else:
        unique, inverse, counts = key_stage(table.table_name, dedup_stage, keys, DEDUP_DTYPES, True, insert, "dedup")
    unique.set_shape([None])
    inverse.set_shape(keys.shape)
    counts.set_shape([None])
    extended, row_of_key = owner_rows(table, replace(request, keys=unique, weights=counts, lookahead=lookahead,
                                                     distinct=True))
    # one expansion from the gathered rows to the ids: each distinct key's row, padding ids -> the zero row
    zero_row = tf.shape(extended, out_type=tf.int32)[:1] - 2
    return extended, tf.gather(tf.concat([row_of_key, zero_row], axis=0), inverse)


def build_rows(table: EmbeddingTable, request: LookupRequest) -> Tuple[tf.Tensor, tf.Tensor]:
    """Rows of keys int64 [N] (-1 = padding, zeros): (extended value_dtype [R, out_dim], index int32 [N]);
    ``owner.expand_rows(extended, index)`` gives the embeddings [N, out_dim]. The expansion is the
    caller's, so merged lookups can expand each call's part separately (and their gradients add up
    per call, exactly as for separate lookups).

    Args:
        request: the lookup (see :class:`LookupRequest`); ``send_count`` is per rank, checked and
            never padded to. With ``modify_graph`` the key stage waits for graph modification to
            move it into the input pipeline.
    """
    config = ConfigInitializer.get_instance()
    registry_of(table.variable.graph).count_built(table.table_name)  # the lookup's id: table.built_lookups
    if config.rank_size > 1 and table.config.is_dp:
        return replicated_rows(table, request)
    if config.rank_size > 1:
        return sharded_rows(table, request)
    if request.modify_graph:
        return _staged_owner_rows(table, request)
    return owner_rows(table, request)
