# coding=utf-8
"""A Rec-SDK-style "little demo" written for the compat suite from Rec SDK's documented API: two
tables (users, items) on synthetic data, two tasks, evaluation twice during training. What it
exercises beyond the basics:

* ``create_table(padding_keys=..., padding_keys_mask=True, padding_keys_len=...)``: user id lists
  are padded with key 0, whose row takes no update;
* ``sparse_lookup(serving_default_value=tf.ones(dim) * 2)`` (a tensor);
* ``dataset.eos_map(librec, channel_id, max_train_steps, max_eval_steps)`` with the library from
  ``import_host_pipeline_ops(LIBREC_EOS_OPS_SO)`` (FeatureSpec mode, as Rec SDK's demo does);
* ``clear_channel(is_train_channel=False)`` before each evaluation;
* with ``USE_FAAE=1``: admission by count (a threshold no key reaches), then a ``set_threshold``
  graph op run half-way lowers it so that keys get rows from then on;
* ``CACHE_MODE`` DDR and SSD with a device cache of 0.4 of the vocabulary, several lookups of the
  user table (``USE_MULTI_LOOKUP=1``) and evaluation lookups.

Switches from the environment as Rec SDK's run.sh exports them (USE_DYNAMIC, CACHE_MODE, USE_FAAE,
USE_DYNAMIC_EXPANSION, USE_MULTI_LOOKUP, USE_MODIFY_GRAPH); ranks from OMPI_COMM_WORLD_*.
Writes per-step losses, table sizes and evaluation predictions to ``COMPAT_RESULT``.
"""
import json
import os
import warnings

import numpy as np
import tensorflow.compat.v1 as tf

from mx_rec.constants.constants import ASCEND_TIMESTAMP, LIBREC_EOS_OPS_SO
from mx_rec.core.asc.feature_spec import FeatureSpec
from mx_rec.core.asc.helper import get_asc_insert_func
from mx_rec.core.asc.manager import start_asc_pipeline
from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.graph.modifier import modify_graph_and_start_emb_cache
from mx_rec.optimizers.lazy_adam import create_hash_optimizer
from mx_rec.util.initialize import (ConfigInitializer, clear_channel, get_initializer, get_rank_id, get_rank_size,
                                    init, terminate_config_initializer)
from mx_rec.util.ops import import_host_pipeline_ops
from mx_rec.util.tf_version_adapter import hccl_ops
from mx_rec.util.variable import get_dense_and_sparse_variable
from mx_rec.util.log import logger

tf.disable_eager_execution()

_SSD_SAVE_PATH = ["ssd_data"]
GLOBAL_BATCH = 128
TRAIN_STEPS = 20
EVAL_STEPS = 4
USER_VOCAB = 3000
ITEM_VOCAB = 1000
USER_LEN, ITEM_LEN = 8, 4
PAD_KEY = 0
DIM = 8
SEED = 2024
HIGH_THRESHOLD = 1000  # no key is seen this often in the run: nothing is admitted until set_threshold


class Config:
    def __init__(self):
        self.rank_id = int(os.getenv("OMPI_COMM_WORLD_RANK")) if os.getenv("OMPI_COMM_WORLD_RANK") else None
        self.rank_size = int(os.getenv("OMPI_COMM_WORLD_SIZE")) if os.getenv("OMPI_COMM_WORLD_SIZE") else None
        self.batch_size = GLOBAL_BATCH // (self.rank_size or 1)
        self.user_send_cnt = self.batch_size * USER_LEN
        self.item_send_cnt = self.batch_size * ITEM_LEN
        self.access_threshold = HIGH_THRESHOLD
        self.eviction_threshold = 3600


def make_samples(count, seed):
    """``count`` samples: padded user id lists (Zipf), item ids, and two labels from a planted model."""
    rng = np.random.default_rng(seed)
    users = (rng.zipf(1.3, size=(count, USER_LEN)) - 1) % USER_VOCAB + 1
    lengths = rng.integers(3, USER_LEN + 1, size=count)
    users[np.arange(USER_LEN)[None, :] >= lengths[:, None]] = PAD_KEY
    items = (rng.zipf(1.3, size=(count, ITEM_LEN)) - 1) % ITEM_VOCAB + 1
    user_weight = np.sin(np.arange(USER_VOCAB + 1) * 0.7)
    user_weight[PAD_KEY] = 0.0
    item_weight = np.cos(np.arange(ITEM_VOCAB + 1) * 1.3)
    score = user_weight[users].sum(1) / lengths + item_weight[items].mean(1)
    label_0 = (score + rng.normal(0, 0.3, count) > 0).astype(np.float32)
    label_1 = (item_weight[items[:, 0]] + rng.normal(0, 0.3, count) > 0).astype(np.float32)
    return {"user_ids": users.astype(np.int64), "item_ids": items.astype(np.int64),
            "label_0": label_0, "label_1": label_1}


def make_batch_and_iterator(cfg, feature_spec_list, is_training, batch_number):
    samples = make_samples(batch_number * GLOBAL_BATCH, SEED if is_training else SEED + 1)
    dataset = tf.data.Dataset.from_tensor_slices(samples).shard(cfg.rank_size, cfg.rank_id)
    dataset = dataset.batch(cfg.batch_size, drop_remainder=True)
    if use_timestamp:
        dataset = dataset.map(add_timestamp_func)
    if not MODIFY_GRAPH_FLAG:
        librec = import_host_pipeline_ops(LIBREC_EOS_OPS_SO)
        channel_id = ConfigInitializer.get_instance().train_params_config.get_training_mode_channel_id(is_training)
        dataset = dataset.eos_map(librec, channel_id, TRAIN_STEPS, EVAL_STEPS)
        insert_fn = get_asc_insert_func(tgt_key_specs=feature_spec_list, is_training=is_training, dump_graph=False)
        dataset = dataset.map(insert_fn)
    dataset = dataset.prefetch(10)
    iterator = dataset.make_initializable_iterator()
    return iterator.get_next(), iterator


def add_timestamp_func(batch):
    batch["timestamp"] = import_host_pipeline_ops().return_timestamp(tf.cast(batch["label_0"], dtype=tf.int64))
    return batch


def create_feature_spec_list(cfg):
    access_threshold = cfg.access_threshold if use_timestamp else None
    eviction_threshold = cfg.eviction_threshold if use_timestamp else None
    specs = [FeatureSpec("user_ids", table_name="user_table", access_threshold=access_threshold,
                         eviction_threshold=eviction_threshold, faae_coefficient=1),
             FeatureSpec("item_ids", table_name="item_table", access_threshold=access_threshold,
                         eviction_threshold=eviction_threshold, faae_coefficient=4)]
    if use_multi_lookup:
        specs.append(FeatureSpec("user_ids", table_name="user_table", access_threshold=access_threshold,
                                 eviction_threshold=eviction_threshold, faae_coefficient=1))
    if use_timestamp:
        specs.append(FeatureSpec("timestamp", is_timestamp=True))
    return specs


def two_tower(embedding_list, label_0, label_1):
    with tf.variable_scope("demo", reuse=tf.AUTO_REUSE):
        init_fn = tf.glorot_uniform_initializer(seed=SEED)
        x = tf.concat(embedding_list, axis=1)
        x = tf.layers.dense(x, 32, tf.nn.relu, kernel_initializer=init_fn, name="hidden")
        logits = tf.layers.dense(x, 2, kernel_initializer=init_fn, name="heads")
        labels = tf.stack([label_0, label_1], axis=1)
        loss_list = [tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels[:, t], logits=logits[:, t]))
                     for t in range(2)]
    return {"loss_list": loss_list, "loss": tf.add_n(loss_list), "pred": tf.sigmoid(logits), "labels": labels}


def model_forward(input_list, batch, is_train, config_dict=None):
    embedding_list = []
    for feature, hash_table, send_count, dim in zip(*input_list):
        access_and_evict_config = config_dict.get(hash_table.table_name) if isinstance(config_dict, dict) else None
        embedding = sparse_lookup(hash_table, feature, None if use_dynamic else send_count, is_train=is_train,
                                  access_and_evict_config=access_and_evict_config, is_grad=True,
                                  name=hash_table.table_name + "_lookup", modify_graph=MODIFY_GRAPH_FLAG, batch=batch,
                                  serving_default_value=tf.ones(shape=(dim), dtype=tf.float32) * 2)
        embedding_list.append(tf.reduce_sum(embedding, axis=1, keepdims=False))
    return two_tower(embedding_list, batch["label_0"], batch["label_1"])


def build_graph(cfg, tables, is_train, feature_spec_list, config_dict, batch_number):
    batch, iterator = make_batch_and_iterator(cfg, feature_spec_list, is_train, batch_number)
    user_table, item_table = tables
    features = ([batch["user_ids"], batch["item_ids"]] if MODIFY_GRAPH_FLAG else feature_spec_list[:2])
    input_list = [features, [user_table, item_table], [cfg.user_send_cnt, cfg.item_send_cnt], [DIM, DIM]]
    if use_multi_lookup:
        extra = batch["user_ids"] if MODIFY_GRAPH_FLAG else feature_spec_list[2]
        for column, value in zip(input_list, (extra, user_table, cfg.user_send_cnt, DIM)):
            column.append(value)
    if use_timestamp and is_train:
        tf.add_to_collection(ASCEND_TIMESTAMP, batch["timestamp"])
    return iterator, model_forward(input_list, batch, is_train, config_dict), batch


def make_ssd_dirs():
    if os.getenv("CACHE_MODE", "") != "SSD":
        return
    for part_path in _SSD_SAVE_PATH:
        os.makedirs(os.path.join(os.getcwd(), part_path), exist_ok=True)  # every rank: exist_ok


def evaluate(sess, eval_model, eval_iterator, rows):
    initializer = get_initializer(False) if MODIFY_GRAPH_FLAG else eval_iterator.initializer
    sess.run(initializer)
    clear_channel(is_train_channel=False)
    labels = ConfigInitializer.get_instance().train_params_config.get_target_batch(False) if MODIFY_GRAPH_FLAG \
        else None
    fetch_labels = tf.stack([labels["label_0"], labels["label_1"]], axis=1) if labels else eval_model["labels"]
    for _ in range(EVAL_STEPS):
        try:
            pred, label = sess.run([eval_model["pred"], fetch_labels])
        except tf.errors.OutOfRangeError:
            logger.info("Encounter the end of Sequence for eval.")
            break
        rows.extend(np.concatenate([label, pred], axis=1).astype(np.float64).tolist())


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    use_dynamic = bool(int(os.getenv("USE_DYNAMIC", 0)))
    use_dynamic_expansion = bool(int(os.getenv("USE_DYNAMIC_EXPANSION", 0)))
    use_multi_lookup = bool(int(os.getenv("USE_MULTI_LOOKUP", 1)))
    MODIFY_GRAPH_FLAG = bool(int(os.getenv("USE_MODIFY_GRAPH", 0)))
    use_timestamp = bool(int(os.getenv("USE_FAAE", 0)))
    init(train_steps=TRAIN_STEPS, eval_steps=EVAL_STEPS, use_dynamic=use_dynamic,
         use_dynamic_expansion=use_dynamic_expansion)
    tf.set_random_seed(SEED)
    make_ssd_dirs()
    cfg = Config()

    config_dict = None
    if use_timestamp:
        config_dict = {"user_table": dict(access_threshold=cfg.access_threshold,
                                          eviction_threshold=cfg.eviction_threshold, faae_coefficient=1),
                       "item_table": dict(access_threshold=cfg.access_threshold,
                                          eviction_threshold=cfg.eviction_threshold, faae_coefficient=4)}
    train_specs = None if MODIFY_GRAPH_FLAG else create_feature_spec_list(cfg)
    eval_specs = None if MODIFY_GRAPH_FLAG else create_feature_spec_list(cfg)

    dense_optimizer = tf.train.AdamOptimizer(learning_rate=0.01)
    sparse_optimizer = create_hash_optimizer(learning_rate=0.02)
    rank_size = get_rank_size()
    hbm_cfg = {"device_vocabulary_size": (USER_VOCAB + 1) * 2, "host_vocabulary_size": 0}
    ddr_cfg = {"device_vocabulary_size": int(USER_VOCAB * 0.4), "host_vocabulary_size": USER_VOCAB * 2}
    ssd_cfg = {"device_vocabulary_size": int(USER_VOCAB * 0.4), "host_vocabulary_size": int(USER_VOCAB * 0.4),
               "ssd_vocabulary_size": USER_VOCAB * 4, "ssd_data_path": _SSD_SAVE_PATH}
    cache_mode_dict = {"HBM": hbm_cfg, "DDR": ddr_cfg, "SSD": ssd_cfg}
    cache_mode = os.getenv("CACHE_MODE")
    if cache_mode not in cache_mode_dict:
        raise ValueError(f"cache mode must in {list(cache_mode_dict)}, get:{cache_mode}")

    user_hashtable = create_table(key_dtype=tf.int64, dim=tf.TensorShape([DIM]), name="user_table",
                                  emb_initializer=tf.truncated_normal_initializer(stddev=0.1, seed=SEED),
                                  all2all_gradients_op="sum_gradients_and_div_by_ranksize",
                                  padding_keys=PAD_KEY, padding_keys_mask=True,
                                  padding_keys_len=cfg.batch_size * USER_LEN,
                                  **cache_mode_dict[cache_mode])
    item_hashtable = create_table(key_dtype=tf.int64, dim=tf.TensorShape([DIM]), name="item_table",
                                  emb_initializer=tf.truncated_normal_initializer(stddev=0.1, seed=SEED),
                                  all2all_gradients_op="sum_gradients_and_div_by_ranksize",
                                  **cache_mode_dict[cache_mode])
    tables = [user_hashtable, item_hashtable]
    train_iterator, train_model, _ = build_graph(cfg, tables, True, train_specs, config_dict, TRAIN_STEPS)
    eval_iterator, eval_model, _ = build_graph(cfg, tables, False, eval_specs, config_dict, EVAL_STEPS)

    dense_variables, sparse_variables = get_dense_and_sparse_variable()
    loss = train_model["loss"]
    grads = dense_optimizer.compute_gradients(loss, var_list=dense_variables)
    avg_grads = [(hccl_ops.allreduce(g, "sum") / rank_size if rank_size > 1 else g, v) for g, v in grads
                 if g is not None]
    train_ops = [dense_optimizer.apply_gradients(avg_grads, global_step=tf.train.get_or_create_global_step())]
    sparse_grads = tf.gradients(loss, sparse_variables)
    train_ops.append(sparse_optimizer.apply_gradients(list(zip(sparse_grads, sparse_variables))))

    if MODIFY_GRAPH_FLAG:
        modify_graph_and_start_emb_cache(dump_graph=False)
    else:
        start_asc_pipeline()

    losses, rows, user_sizes = [], [], []
    session = tf.Session()
    session.run(get_initializer(True) if MODIFY_GRAPH_FLAG else train_iterator.initializer)
    session.run(tf.global_variables_initializer())
    for i in range(1, TRAIN_STEPS + 1):
        try:
            _, loss_value = session.run([train_ops, loss])
        except tf.errors.OutOfRangeError:
            logger.info("Encounter the end of Sequence for training.")
            break
        losses.append(float(loss_value))
        user_sizes.append(int(user_hashtable.size()))
        logger.info("step %d loss %.5f user_table size %d capacity %d", i, loss_value, user_hashtable.size(),
                    user_hashtable.capacity())
        if use_timestamp and i == TRAIN_STEPS // 2:
            thres_tensor = tf.constant(1, dtype=tf.int32)
            set_threshold_op = import_host_pipeline_ops(LIBREC_EOS_OPS_SO).set_threshold(
                thres_tensor, emb_name=user_hashtable.table_name, ids_name=user_hashtable.table_name + "_lookup")
            session.run([set_threshold_op])
        if i == TRAIN_STEPS // 2:
            evaluate(session, eval_model, eval_iterator, rows)
    evaluate(session, eval_model, eval_iterator, rows)
    session.close()

    path = os.environ["COMPAT_RESULT"] + (f".rank{get_rank_id()}" if get_rank_id() else "")
    with open(path, "w") as handle:
        json.dump({"losses": losses, "eval_rows": rows, "user_sizes": user_sizes,
                   "item_size": int(item_hashtable.size())}, handle)
    print(f"final loss {losses[-1]:.5f} user_table {user_sizes[-1]}", flush=True)
    terminate_config_initializer()
