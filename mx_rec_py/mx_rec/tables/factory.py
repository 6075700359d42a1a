"""``create_table``: validates arguments, builds the table and registers it."""
import tensorflow as tf

from mx_rec.config.initializer import ConfigInitializer
from mx_rec.storage.ssd import check_paths
from mx_rec.tables.config import make_table_config
from mx_rec.tables.table import EmbeddingTable, check_optimizer


def create_table(key_dtype, dim, name, emb_initializer, device_vocabulary_size=1, host_vocabulary_size=0,
                 ssd_vocabulary_size=0, ssd_data_path=None, is_save=True, is_dp=False, init_param=1.0,
                 all2all_gradients_op="sum_gradients", enable_merge=False, padding_keys=None,
                 padding_keys_mask=False, padding_keys_len=None, value_dtype=tf.float32, shard_num=1,
                 fusion_optimizer_var=True, hashtable_threshold=0, optimizer_list=None, *, storage_dtype=None,
                 slot_dtype=None) -> EmbeddingTable:
    """Create a sparse embedding table (Rec SDK signature, plus mx_rec's own ``storage_dtype`` / ``slot_dtype``).

    Example:
        >>> table = create_table(tf.int64, 16, "user_table", tf.compat.v1.truncated_normal_initializer(),
        ...                      device_vocabulary_size=100_000, padding_keys=0, padding_keys_mask=True,
        ...                      padding_keys_len=4096)                                   # doctest: +SKIP

    Args:
        key_dtype: tf.int64 or tf.int32. dim: embedding width in [1, 8192]. name: unique table name.
        emb_initializer: a TF initializer (constant, zeros, ones, random uniform/normal, truncated normal,
            VarianceScaling, Glorot, He, LeCun, uniform unit scaling, orthogonal); a key's initial row depends
            only on (name, key, initializer); fans come from the shape [all vocabulary sizes summed, dim].
        device_vocabulary_size: rows on the device, over all ranks (with ``init(use_dynamic_expansion=True)``
            the table instead starts small and grows in chunks as keys arrive, without limit).
        host_vocabulary_size: DDR mode when > 0: the device rows become a cache over this many host rows.
        ssd_vocabulary_size / ssd_data_path: SSD mode when > 0 (needs DDR): RocksDB under these paths,
            filled in order, takes the host's least frequently used rows.
        is_save: include in checkpoints. is_dp: replicate on every rank instead of sharding
            (for small tables: no all-to-all; the batch's keys are all-gathered, gradients all-reduced).
        init_param: multiplies initial values.
        all2all_gradients_op: "sum_gradients" or "sum_gradients_and_div_by_ranksize".
        padding_keys / padding_keys_mask / padding_keys_len: with the mask, ids equal to a padding key are
            padding like -1 (zeros, no row, no update); the length is the feature's length, the static
            ``send_count`` of lookups that give none. See ``mx_rec.tables.extra_args``.
        value_dtype: tf.float32 or tf.float64.
        storage_dtype / slot_dtype (keyword only; mx_rec's own, Rec SDK has no such option): the dtype the rows /
            the optimizer slots are kept in, None (= value_dtype), tf.float16 or tf.bfloat16 (with value_dtype
            tf.float32). Lookups still return value_dtype, gradients reach the optimizer unrounded and the update
            is computed in float32, then rounded once to the storage type; checkpoints and exports hold float32.
            HBM tables only (not with host_vocabulary_size > 0), and only hash lazy Adam updates such a table.
        enable_merge / shard_num / fusion_optimizer_var / hashtable_threshold: NPU-only; validated, and logged
            once as having no effect. optimizer_list: older scripts' argument; checked, no effect.

    Raises:
        RuntimeError: ``init()`` was not called. TypeError / ValueError: a bad argument, naming it and the table.
    """
    config = ConfigInitializer.get_instance()
    table_config = make_table_config(key_dtype, dim, name, emb_initializer, device_vocabulary_size,
                                     host_vocabulary_size, ssd_vocabulary_size, ssd_data_path, is_save, is_dp,
                                     init_param, all2all_gradients_op, value_dtype, enable_merge, padding_keys,
                                     padding_keys_mask, padding_keys_len, shard_num, fusion_optimizer_var,
                                     hashtable_threshold, optimizer_list, storage_dtype=storage_dtype,
                                     slot_dtype=slot_dtype)
    if config.table_in_graph(name):
        raise ValueError(f"table '{name}' already exists; table names must be unique")
    if table_config.ssd_vocabulary_size:
        check_paths(name, table_config.ssd_data_path)
    ddr = table_config.host_vocabulary_size > 0
    if ddr and not config.hash_optimizers:
        raise ValueError(f"table '{name}': DDR mode (host_vocabulary_size > 0) needs the hash optimizer created "
                         "before create_table, as in Rec SDK, so that its slots move with the rows")
    if ddr and config.use_dynamic_expansion:
        raise ValueError(f"table '{name}': DDR mode and dynamic expansion exclude each other (the device variable "
                         "is a fixed-size cache in DDR mode)")
    for optimizer in config.hash_optimizers:  # those made later are checked when they make their slots
        check_optimizer(table_config, optimizer)
    table = EmbeddingTable(table_config, rank_size=config.rank_size, expandable=config.use_dynamic_expansion,
                           rank=config.rank_id)
    config.register_table(table)
    if table.backend.holds_slots:  # its rows carry the optimizer slots: they exist before any lookup
        for optimizer in config.hash_optimizers:
            with tf.init_scope():
                optimizer._create_slots([table.variable])  # slots now, so lookups can swap them
        table.freeze_slots()
    return table
