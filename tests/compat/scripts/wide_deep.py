# coding=utf-8
"""A Rec-SDK-style Wide&Deep script on Criteo TFRecords, written for the compat suite from Rec
SDK's documented API: a wide table (dim 1) and a deep table (dim 8) both read the one
``sparse_feature`` column, so two FeatureSpecs carry the same name. Launched by ``run.sh``;
switches from the environment as in Rec SDK scripts:

    USE_DYNAMIC, CACHE_MODE (HBM/DDR/SSD), USE_FAAE (admission by count, timestamps, EvictHook),
    USE_MODIFY_GRAPH, DATA_PATH; the ranks from OMPI_COMM_WORLD_RANK / OMPI_COMM_WORLD_SIZE.

Writes per-step losses and the evaluation predictions to ``COMPAT_RESULT`` (the test's file).
"""
import json
import os
import warnings
from glob import glob

import numpy as np
import tensorflow.compat.v1 as tf

from mx_rec.constants.constants import ASCEND_TIMESTAMP
from mx_rec.core.asc.feature_spec import FeatureSpec
from mx_rec.core.asc.helper import get_asc_insert_func
from mx_rec.core.asc.manager import start_asc_pipeline
from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.core.feature_process import EvictHook
from mx_rec.graph.modifier import GraphModifierHook, modify_graph_and_start_emb_cache
from mx_rec.optimizers.lazy_adam import create_hash_optimizer
from mx_rec.util.communication.hccl_ops import allreduce
from mx_rec.util.initialize import ConfigInitializer, init, terminate_config_initializer
from mx_rec.util.ops import import_host_pipeline_ops
from mx_rec.util.variable import get_dense_and_sparse_variable
from mx_rec.util.log import logger

tf.disable_eager_execution()

GLOBAL_BATCH = 128
EVAL_GLOBAL_BATCH = 64
TRAIN_STEPS = 16
EVAL_STEPS = 4
DEEP_DIM = 8
SEED = 2024


class Config:
    def __init__(self):
        self.data_path = os.getenv("DATA_PATH")
        self.rank_id = int(os.getenv("OMPI_COMM_WORLD_RANK")) if os.getenv("OMPI_COMM_WORLD_RANK") else None
        self.rank_size = int(os.getenv("OMPI_COMM_WORLD_SIZE")) if os.getenv("OMPI_COMM_WORLD_SIZE") else None
        self.batch_size = GLOBAL_BATCH // (self.rank_size or 1)
        self.eval_batch_size = EVAL_GLOBAL_BATCH // (self.rank_size or 1)
        self.cache_mode = os.getenv("CACHE_MODE", "HBM")
        self.send_count = self.batch_size * 26
        self.access_threshold = 2
        self.eviction_threshold = 3600

    def get_emb_table_cfg(self):
        # the excerpt holds about 16,000 distinct keys; one batch at most 128 * 26
        if self.cache_mode == "HBM":
            return dict(device_vocabulary_size=40000)
        if self.cache_mode == "DDR":
            return dict(device_vocabulary_size=8000, host_vocabulary_size=40000)
        return dict(device_vocabulary_size=8000, host_vocabulary_size=8000, ssd_vocabulary_size=80000,
                    ssd_data_path=[os.path.abspath("ssd_data")])


def add_timestamp_func(batch):
    batch["timestamp"] = import_host_pipeline_ops().return_timestamp(tf.cast(batch["label"], dtype=tf.int64))
    return batch


def make_batch_and_iterator(cfg, feature_spec_list, is_training):
    def extract_fn(record):
        features = {"label": tf.FixedLenFeature(shape=(1,), dtype=tf.int64),
                    "sparse_feature": tf.FixedLenFeature(shape=(26,), dtype=tf.int64),
                    "dense_feature": tf.FixedLenFeature(shape=(13,), dtype=tf.float32)}
        return tf.parse_single_example(record, features)

    files = sorted(glob(os.path.join(cfg.data_path, "train" if is_training else "test", "*.tfrecord")))
    dataset = tf.data.TFRecordDataset(files)
    dataset = dataset.shard(cfg.rank_size, cfg.rank_id)
    dataset = dataset.repeat(None if is_training else 1)
    batch_size = cfg.batch_size if is_training else cfg.eval_batch_size
    dataset = dataset.map(extract_fn).batch(batch_size, drop_remainder=True)
    if use_faae:
        dataset = dataset.map(add_timestamp_func)
    if not MODIFY_GRAPH_FLAG:
        insert_fn = get_asc_insert_func(tgt_key_specs=feature_spec_list, is_training=is_training, dump_graph=False)
        dataset = dataset.map(insert_fn)
    dataset = dataset.prefetch(10)
    iterator = dataset.make_initializable_iterator()
    return iterator.get_next(), iterator


def create_feature_spec_list(cfg):
    access_threshold = cfg.access_threshold if use_faae else None
    eviction_threshold = cfg.eviction_threshold if use_faae else None
    specs = [FeatureSpec("sparse_feature", table_name="wide_embeddings", batch_size=cfg.batch_size,
                         access_threshold=access_threshold, eviction_threshold=eviction_threshold),
             FeatureSpec("sparse_feature", table_name="deep_embeddings", batch_size=cfg.batch_size,
                         access_threshold=access_threshold, eviction_threshold=eviction_threshold)]
    if use_faae:
        specs.append(FeatureSpec("timestamp", is_timestamp=True))
    return specs


def wide_and_deep(wide_emb, deep_emb, dense, label):
    with tf.variable_scope("wide_deep", reuse=tf.AUTO_REUSE):
        init_fn = tf.glorot_uniform_initializer(seed=SEED)
        wide_logit = tf.reduce_sum(wide_emb, axis=[1, 2])
        x = tf.concat([tf.reshape(deep_emb, [-1, 26 * DEEP_DIM]), tf.math.log1p(tf.nn.relu(dense))], axis=1)
        for i, units in enumerate((32, 16)):
            x = tf.layers.dense(x, units, tf.nn.relu, kernel_initializer=init_fn, name=f"deep_{i}")
        logit = wide_logit + tf.squeeze(tf.layers.dense(x, 1, kernel_initializer=init_fn, name="deep_out"), -1)
        target = tf.cast(tf.reshape(label, [-1]), tf.float32)
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logit))
    return {"loss": loss, "pred": tf.sigmoid(logit), "label": label}


def model_forward(cfg, feature_list, table_list, batch, is_train):
    embeddings = []
    for feature, table in zip(feature_list, table_list):
        if MODIFY_GRAPH_FLAG:
            feature = batch["sparse_feature"]
        embeddings.append(sparse_lookup(table, feature, None if use_dynamic else cfg.send_count, dim=None,
                                        is_train=is_train, name=table.table_name + "_lookup",
                                        modify_graph=MODIFY_GRAPH_FLAG, batch=batch))
    return wide_and_deep(embeddings[0], embeddings[1], batch["dense_feature"], batch["label"])


def write_result(cfg, losses, eval_rows, sizes):
    path = os.environ["COMPAT_RESULT"]
    if cfg.rank_id:
        path = f"{path}.rank{cfg.rank_id}"
    with open(path, "w") as handle:
        json.dump({"losses": losses, "eval_rows": eval_rows, "table_sizes": sizes}, handle)


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    use_dynamic = bool(int(os.getenv("USE_DYNAMIC", 0)))
    use_faae = bool(int(os.getenv("USE_FAAE", 0)))
    MODIFY_GRAPH_FLAG = bool(int(os.getenv("USE_MODIFY_GRAPH", 0)))
    init(train_steps=TRAIN_STEPS, eval_steps=EVAL_STEPS, use_dynamic=use_dynamic)
    tf.set_random_seed(SEED)
    cfg = Config()

    train_specs = create_feature_spec_list(cfg)
    eval_specs = create_feature_spec_list(cfg)
    train_batch, train_iterator = make_batch_and_iterator(cfg, train_specs, is_training=True)
    eval_batch, eval_iterator = make_batch_and_iterator(cfg, eval_specs, is_training=False)

    dense_optimizer = tf.train.AdamOptimizer(learning_rate=0.005)
    sparse_optimizer = create_hash_optimizer(learning_rate=0.01)
    table_cfg = cfg.get_emb_table_cfg()
    wide_table = create_table(key_dtype=tf.int64, dim=tf.TensorShape([1]), name="wide_embeddings",
                              emb_initializer=tf.zeros_initializer(),
                              all2all_gradients_op="sum_gradients_and_div_by_ranksize", **table_cfg)
    deep_table = create_table(key_dtype=tf.int64, dim=tf.TensorShape([DEEP_DIM]), name="deep_embeddings",
                              emb_initializer=tf.truncated_normal_initializer(stddev=0.05, seed=SEED),
                              all2all_gradients_op="sum_gradients_and_div_by_ranksize", **table_cfg)
    if use_faae:
        tf.add_to_collection(ASCEND_TIMESTAMP, train_batch["timestamp"])
    tables = [wide_table, deep_table]
    train_model = model_forward(cfg, train_specs, tables, train_batch, is_train=True)
    eval_model = model_forward(cfg, eval_specs, tables, eval_batch, is_train=False)

    dense_variables, sparse_variables = get_dense_and_sparse_variable()
    loss = train_model["loss"]
    grads = tf.gradients(loss, dense_variables + sparse_variables)
    dense_grads = [(allreduce(g, "sum") / (cfg.rank_size or 1) if (cfg.rank_size or 1) > 1 else g, v)
                   for g, v in zip(grads[:len(dense_variables)], dense_variables) if g is not None]
    sparse_grads = list(zip(grads[len(dense_variables):], sparse_variables))
    train_op = tf.group(dense_optimizer.apply_gradients(dense_grads,
                                                        global_step=tf.train.get_or_create_global_step()),
                        sparse_optimizer.apply_gradients(sparse_grads))

    hooks = []
    if use_faae:
        hooks.append(EvictHook(evict_enable=True, evict_step_interval=TRAIN_STEPS // 2))
    if MODIFY_GRAPH_FLAG:
        modify_graph_and_start_emb_cache(dump_graph=False)
        hooks.append(GraphModifierHook(modify_graph=False))
    else:
        start_asc_pipeline()

    params = ConfigInitializer.get_instance().train_params_config
    losses, rows = [], []
    with tf.train.MonitoredTrainingSession(hooks=hooks, save_checkpoint_secs=None,
                                           save_summaries_steps=None) as sess:
        sess.graph._unsafe_unfinalize()
        sess.run(params.get_initializer(True) if MODIFY_GRAPH_FLAG else train_iterator.initializer)
        for step in range(1, TRAIN_STEPS + 1):
            _, loss_value = sess.run([train_op, loss])
            losses.append(float(loss_value))
            logger.info("step %d loss %.5f wide %d deep %d", step, loss_value, wide_table.size(), deep_table.size())
        sess.run(params.get_initializer(False) if MODIFY_GRAPH_FLAG else eval_iterator.initializer)
        eval_label = params.get_target_batch(False)["label"] if MODIFY_GRAPH_FLAG else eval_model["label"]
        for _ in range(EVAL_STEPS):
            pred, label = sess.run([eval_model["pred"], eval_label])
            rows.extend(np.stack([label.reshape(-1).astype(np.float64), pred.astype(np.float64)], axis=1).tolist())
    print(f"final loss {losses[-1]:.5f} wide {wide_table.size()} deep {deep_table.size()}", flush=True)
    write_result(cfg, losses, rows, {"wide": wide_table.size(), "deep": deep_table.size()})
    terminate_config_initializer()
