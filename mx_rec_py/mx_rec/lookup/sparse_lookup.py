"""``sparse_lookup``: ids -> embeddings, with the gradient landing on the table variable.

This module checks arguments and resolves ids (tensors or FeatureSpecs), admission/eviction
settings and timestamps; ``lookup.owner`` builds the lookup on the shard that holds the keys and
``lookup.exchange`` routes keys to their owners when the table is sharded over several ranks.

"""
from typing import Optional, Union

import numpy as np
import tensorflow as tf

from mx_rec.config.graph_registry import registry_of
from mx_rec.config.initializer import ConfigInitializer
from mx_rec.constants.constants import ASCEND_TIMESTAMP
from mx_rec.key_process.key_stats import NO_TIMESTAMP
from mx_rec.key_process.lifecycle import lifecycle_from_dict, make_lifecycle
from mx_rec.lookup.feature_spec import FeatureSpec
from mx_rec.lookup.build import build_rows
from mx_rec.lookup.default_value import static_default
from mx_rec.lookup.input_pipeline import find_feature_ids, timestamp_spec_for
from mx_rec.lookup.keys import mask_padding_keys, signed_array, signed_ids
from mx_rec.lookup.trace import iterator_source
from mx_rec.lookup.merge import PendingLookup, defer
from mx_rec.lookup.owner import expand_rows
from mx_rec.lookup.registry import record_lookup
from mx_rec.lookup.request import LookupRequest
from mx_rec.system.log import log_once
from mx_rec.tables.table import EmbeddingTable

MAX_LOOKUPS_PER_TABLE = 128


def _resolve_ids(table: EmbeddingTable, ids, batch, is_train: bool) -> tf.Tensor:
    if isinstance(ids, FeatureSpec):
        if batch is not None:
            if ids.batch_key not in batch:
                raise KeyError(f"FeatureSpec '{ids.label}': batch has no key {ids.batch_key!r}")
            return batch[ids.batch_key]
        return find_feature_ids(ids, is_train)
    if isinstance(ids, (tf.Tensor, tf.Variable)):
        return ids
    array = np.asarray(ids)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"sparse_lookup on table '{table.table_name}': ids must be integers, got {array.dtype}")
    return tf.constant(signed_array(table.table_name, table.key_dtype, array), dtype=table.key_dtype)


def _configure_lifecycle(table: EmbeddingTable, ids, access_and_evict_config) -> None:
    if access_and_evict_config is not None:
        table.set_lifecycle(lifecycle_from_dict(table.table_name, access_and_evict_config))
    if isinstance(ids, FeatureSpec) and (ids.access_threshold is not None or ids.eviction_threshold is not None):
        table.set_lifecycle(make_lifecycle(table.table_name, ids.access_threshold, ids.eviction_threshold,
                                           ids.faae_coefficient))


def _batch_timestamp(table: EmbeddingTable, ids, batch, is_train: bool) -> tf.Tensor:
    """int64 scalar: the newest timestamp of the batch (seconds), for tables that evict."""
    if not (is_train and table.lifecycle is not None and table.lifecycle.evicts):
        return tf.constant(NO_TIMESTAMP, tf.int64)
    stamps = None
    if isinstance(ids, FeatureSpec):
        ts_spec = timestamp_spec_for(ids)
        if ts_spec is not None:
            stamps = batch[ts_spec.batch_key] if batch is not None else find_feature_ids(ts_spec, is_train)
    if stamps is None and tf.compat.v1.get_collection(ASCEND_TIMESTAMP):
        stamps = tf.compat.v1.get_collection(ASCEND_TIMESTAMP)[-1]
    if stamps is None:
        raise ValueError(
            f"table '{table.table_name}' evicts (eviction_threshold={table.lifecycle.eviction_threshold}) but its "
            "lookup has no timestamp: add FeatureSpec(name, is_timestamp=True) to the pipeline's specs, or "
            "tf.compat.v1.add_to_collection(ASCEND_TIMESTAMP, t), or import_host_pipeline_ops().return_timestamp(t)")
    if not stamps.dtype.is_integer:
        raise TypeError(f"table '{table.table_name}': timestamps must be integer seconds, got {stamps.dtype.name}")
    return tf.reduce_max(tf.cast(stamps, tf.int64))


def _check_args(table: EmbeddingTable, ids: tf.Tensor, send_count, dim) -> int:
    if not ids.dtype.is_integer:
        raise TypeError(f"sparse_lookup on table '{table.table_name}': ids must be an integer tensor, "
                        f"got {ids.dtype.name}")
    if ids.dtype != table.key_dtype:
        raise TypeError(f"sparse_lookup on table '{table.table_name}': ids are {ids.dtype.name} but the table's "
                        f"key_dtype is {table.key_dtype.name}; cast them with tf.cast")
    if send_count is not None and (isinstance(send_count, bool) or not isinstance(send_count, int)
                                   or send_count < 1):
        raise ValueError(f"sparse_lookup on table '{table.table_name}': send_count must be a positive int, "
                         f"got {send_count!r}")
    if dim is None:
        return table.dim
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= table.dim:
        raise ValueError(f"sparse_lookup on table '{table.table_name}': dim must be an int in [1, {table.dim}], "
                         f"got {dim!r}")
    return dim


def _default_value(table: EmbeddingTable, value, dim: int) -> Optional[np.ndarray]:
    """``serving_default_value`` as value_dtype [dim], or None (zeros)."""
    if value is None:
        return None
    value = np.asarray(static_default(table.table_name, value), dtype=table.value_dtype.as_numpy_dtype)
    if value.shape not in ((), (1,), (dim,)):
        raise ValueError(f"sparse_lookup on table '{table.table_name}': serving_default_value must be a scalar "
                         f"or have shape [{dim}], got shape {value.shape}")
    return np.broadcast_to(value, (dim,))


def sparse_lookup(hashtable: EmbeddingTable, ids: Union[tf.Tensor, FeatureSpec], send_count: Optional[int] = None,
                  is_train: bool = True, name: Optional[str] = None, modify_graph: bool = False, batch=None,
                  access_and_evict_config: Optional[dict] = None, is_grad: bool = True,
                  serving_default_value=None, dim: Optional[int] = None, **kwargs) -> tf.Tensor:
    """Look ids up in a table.

    Args:
        hashtable: a table from ``create_table``.
        ids: integer tensor of any shape (dtype = the table's ``key_dtype``, or unsigned: see
            ``mx_rec.lookup.keys``), or a ``FeatureSpec`` whose ids come from a pipeline mapped with
            ``get_asc_insert_func``. -1 is padding, and so are the table's masked ``padding_keys``.
        send_count: with ``init(use_dynamic=False)``, the fixed bucket size: the most distinct keys
            per batch and owner rank (more is an error naming the count needed); None: the table's
            ``padding_keys_len`` if it has one. A contract, not a cost: only the real keys are
            exchanged and gathered. Ignored in dynamic mode.
        is_train: True inserts new keys; False (evaluation) never inserts, and keys without a row
            get ``serving_default_value`` (zeros when None).
        name: name scope of the lookup's ops.
        modify_graph: ids are plain tensors from a dataset iterator's ``get_next()``;
            ``mx_rec.graph.modifier.modify_graph_and_start_emb_cache()`` must then run before the
            session starts (it moves the lookup's key processing into the input pipeline).
        batch: the batch dict, to take a FeatureSpec's ids from.
        access_and_evict_config: admission/eviction settings of the table, a dict with
            ``access_threshold``, ``eviction_threshold`` (seconds) and ``faae_coefficient``; the same
            settings may come from the FeatureSpec instead.
        is_grad: False stops the gradient at the embeddings.
        serving_default_value: scalar or [dim] value for keys without a row: a number, list, numpy
            array, or a tensor computed from constants (``tf.ones([dim]) * 2``), evaluated once here.
        dim: number of leading columns to return (default: the table's dim).
        kwargs: Rec SDK's internal keywords (``feature_spec_name_ids_dict``, ``multi_lookup``,
            ``lookup_ids``) and any other: not used (Rec SDK ignores undocumented ones too), logged once.

    With multi-lookup on (``init(use_multi_lookup=True)`` or ``USE_MULTI_LOOKUP=1``), training
    lookups of one table are built later as one merged lookup (see ``mx_rec.lookup.merge``).

    Returns:
        value_dtype tensor of shape ``ids.shape + [dim]``; padding ids give zeros.
    """
    if not isinstance(hashtable, EmbeddingTable):
        raise TypeError(f"sparse_lookup: hashtable must come from create_table, got {type(hashtable).__name__}")
    table = hashtable
    if kwargs:
        log_once(f"lookup_kwargs:{sorted(kwargs)}", f"sparse_lookup: keyword(s) {sorted(kwargs)} are not used here")
    config = ConfigInitializer.get_instance()
    _configure_lifecycle(table, ids, access_and_evict_config)
    timestamp = _batch_timestamp(table, ids, batch, is_train)
    ids = _resolve_ids(table, ids, batch, is_train)
    raw_ids = ids
    ids = signed_ids(table.table_name, table.key_dtype, ids)
    out_dim = _check_args(table, ids, send_count, dim)
    registry_of(table.variable.graph).count_call(table.table_name, MAX_LOOKUPS_PER_TABLE)
    # static shapes: checked, never padded to
    send_count = (table.config.padding_keys_len if send_count is None else send_count) if config.use_static else None
    insert = bool(is_train)
    if modify_graph:
        iterator_source(ids, f"sparse_lookup on table '{table.table_name}' (modify_graph=True)")
    with tf.name_scope(name or f"{table.table_name}_lookup"):
        keys = tf.reshape(ids, [-1])
        if keys.dtype != tf.int64:
            keys = tf.cast(keys, tf.int64)
        keys = mask_padding_keys(keys, table.config.masked_keys)
        default = _default_value(table, serving_default_value, out_dim)
        default_row = (tf.zeros([1, out_dim], dtype=table.value_dtype) if default is None
                       else tf.constant(default[None, :], dtype=table.value_dtype))
        ids_shape = tf.shape(ids, out_type=tf.int32)
        static_shape = ids.shape.concatenate([out_dim])
        if config.use_multi_lookup and insert:
            out = defer(PendingLookup(table, keys, ids_shape, timestamp, send_count, default_row,
                                      b"" if default is None else default.tobytes(), out_dim, not is_grad,
                                      modify_graph),
                        static_shape, "embeddings")
        else:
            out = expand_rows(*build_rows(table, LookupRequest(keys, timestamp, insert, send_count, default_row,
                                                               out_dim, modify_graph)))
            out = tf.reshape(out, tf.concat([ids_shape, [out_dim]], axis=0))
            out.set_shape(static_shape)
            if not (is_grad and is_train):
                out = tf.stop_gradient(out)
            out = tf.identity(out, name="embeddings")
    record_lookup(table.table_name, raw_ids, out, out_dim, is_train, None if default is None else default.tolist(),
                  table.config.masked_keys)
    return out
