# coding=utf-8
"""A Rec-SDK-style MMoE script on census TFRecords (income and marital-status tasks), written for
the compat suite from Rec SDK's documented API. Launched by ``run.sh``; it reads its switches
from the environment as Rec SDK scripts do:

    USE_DYNAMIC, CACHE_MODE (HBM/DDR/SSD), USE_DYNAMIC_EXPANSION, USE_MULTI_LOOKUP (two lookups of
    the table, two FeatureSpecs of the same name), USE_MODIFY_GRAPH (plain batch tensors and the
    graph modifier instead of FeatureSpecs), TRAIN_RANK_SIZE, DATA_PATH.

Writes per-step losses and the evaluation predictions to ``COMPAT_RESULT`` (the test's file).
The only edits a Rec SDK user would make to run it here are the NPU-only ones (none are left).
"""
import json
import os
import warnings
from glob import glob

import numpy as np
import tensorflow.compat.v1 as tf
from sklearn.metrics import roc_auc_score

from mx_rec.core.asc.helper import FeatureSpec, get_asc_insert_func
from mx_rec.core.asc.manager import start_asc_pipeline
from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.graph.modifier import modify_graph_and_start_emb_cache
from mx_rec.optimizers.lazy_adam import create_hash_optimizer
from mx_rec.util.initialize import ConfigInitializer, init, terminate_config_initializer
import mx_rec.util as mxrec_util
from mx_rec.util.variable import get_dense_and_sparse_variable
from mx_rec.util.log import logger

tf.disable_eager_execution()

GLOBAL_BATCH = 32
EVAL_GLOBAL_BATCH = 16
TRAIN_STEPS = 24
EVAL_STEPS = 5
EMB_DIM = 8
SEED = 128


class Config:
    def __init__(self):
        self.data_path = os.getenv("DATA_PATH")
        self.rank_size = int(os.getenv("TRAIN_RANK_SIZE", "1"))
        self.rank_id = mxrec_util.communication.hccl_ops.get_rank_id()
        self.batch_size = GLOBAL_BATCH // self.rank_size
        self.eval_batch_size = EVAL_GLOBAL_BATCH // self.rank_size
        self.cache_mode = os.getenv("CACHE_MODE", "HBM")
        with open(os.path.join(self.data_path, "meta.json")) as handle:
            self.vocab_size = json.load(handle)["vocab_size"]
        # static shapes: every bucket sent to a rank holds at most one batch's keys
        self.send_count = self.batch_size * 29

    def get_emb_table_cfg(self):
        if self.cache_mode == "HBM":
            return dict(device_vocabulary_size=self.vocab_size * 2)
        if self.cache_mode == "DDR":
            return dict(device_vocabulary_size=self.vocab_size, host_vocabulary_size=self.vocab_size * 2)
        return dict(device_vocabulary_size=self.vocab_size, host_vocabulary_size=self.vocab_size // 2,
                    ssd_vocabulary_size=self.vocab_size * 4, ssd_data_path=[os.path.abspath("ssd_data")])


def make_batch_and_iterator(cfg, feature_spec_list, is_training):
    def extract_fn(record):
        features = {"label": tf.FixedLenFeature(shape=(2,), dtype=tf.int64),
                    "sparse_feature": tf.FixedLenFeature(shape=(29,), dtype=tf.int64),
                    "dense_feature": tf.FixedLenFeature(shape=(11,), dtype=tf.float32)}
        return tf.parse_single_example(record, features)

    folder = "train" if is_training else "test"
    files = sorted(glob(os.path.join(cfg.data_path, folder, "*.tfrecord")))
    dataset = tf.data.TFRecordDataset(files)
    dataset = dataset.shard(cfg.rank_size, cfg.rank_id)
    dataset = dataset.repeat(None if is_training else 1)
    batch_size = cfg.batch_size if is_training else cfg.eval_batch_size
    dataset = dataset.map(extract_fn).batch(batch_size, drop_remainder=True)
    if not MODIFY_GRAPH_FLAG:
        insert_fn = get_asc_insert_func(tgt_key_specs=feature_spec_list, is_training=is_training, dump_graph=False)
        dataset = dataset.map(insert_fn)
    dataset = dataset.prefetch(10)
    iterator = dataset.make_initializable_iterator()
    return iterator.get_next(), iterator


def create_feature_spec_list(cfg):
    specs = [FeatureSpec("sparse_feature", table_name="sparse_embeddings", batch_size=cfg.batch_size)]
    if use_multi_lookup:
        specs.append(FeatureSpec("sparse_feature", table_name="sparse_embeddings", batch_size=cfg.batch_size))
    return specs


def mmoe(emb, dense, label, is_training):
    with tf.variable_scope("mmoe", reuse=tf.AUTO_REUSE):
        init_fn = tf.glorot_uniform_initializer(seed=SEED)
        x = tf.concat([tf.reshape(emb, [-1, 29 * EMB_DIM]), dense], axis=1)
        experts = tf.stack([tf.layers.dense(x, 16, tf.nn.relu, kernel_initializer=init_fn, name=f"expert_{i}")
                            for i in range(3)], axis=1)                       # [B, 3, 16]
        preds, losses = [], []
        for task in range(2):
            gate = tf.nn.softmax(tf.layers.dense(x, 3, kernel_initializer=init_fn, name=f"gate_{task}"))
            mixed = tf.reduce_sum(experts * tf.expand_dims(gate, -1), axis=1)
            tower = tf.layers.dense(mixed, 8, tf.nn.relu, kernel_initializer=init_fn, name=f"tower_{task}")
            logit = tf.squeeze(tf.layers.dense(tower, 1, kernel_initializer=init_fn, name=f"out_{task}"), -1)
            target = tf.cast(label[:, task], tf.float32)
            losses.append(tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logit)))
            preds.append(tf.sigmoid(logit))
    return {"loss": tf.add_n(losses), "pred": tf.stack(preds, axis=1), "label": label}


def model_forward(cfg, feature_list, hash_table_list, batch, is_train):
    embedding_list = []
    for feature, hash_table in zip(feature_list, hash_table_list):
        if MODIFY_GRAPH_FLAG:
            feature = batch["sparse_feature"]
        send_count = None if use_dynamic else cfg.send_count
        embedding = sparse_lookup(hash_table, feature, send_count, dim=None, is_train=is_train,
                                  name="sparse_embeddings_lookup", modify_graph=MODIFY_GRAPH_FLAG, batch=batch,
                                  access_and_evict_config=None)
        embedding_list.append(embedding)
    emb = embedding_list[0] if len(embedding_list) == 1 else tf.reduce_sum(embedding_list, axis=0)
    return mmoe(emb, batch["dense_feature"], batch["label"], is_train)


def write_result(cfg, losses, eval_rows, auc):
    path = os.environ["COMPAT_RESULT"]
    if cfg.rank_id:
        path = f"{path}.rank{cfg.rank_id}"
    with open(path, "w") as handle:
        json.dump({"losses": losses, "eval_rows": eval_rows, "local_auc": auc}, handle)


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    use_dynamic = bool(int(os.getenv("USE_DYNAMIC", 0)))
    use_dynamic_expansion = bool(int(os.getenv("USE_DYNAMIC_EXPANSION", 0)))
    use_multi_lookup = bool(int(os.getenv("USE_MULTI_LOOKUP", 0)))
    MODIFY_GRAPH_FLAG = bool(int(os.getenv("USE_MODIFY_GRAPH", 0)))
    init(train_steps=TRAIN_STEPS, eval_steps=EVAL_STEPS, use_dynamic=use_dynamic,
         use_dynamic_expansion=use_dynamic_expansion)
    tf.set_random_seed(SEED)
    cfg = Config()

    train_specs = None if MODIFY_GRAPH_FLAG else create_feature_spec_list(cfg)
    eval_specs = None if MODIFY_GRAPH_FLAG else create_feature_spec_list(cfg)
    train_batch, train_iterator = make_batch_and_iterator(cfg, train_specs, is_training=True)
    eval_batch, eval_iterator = make_batch_and_iterator(cfg, eval_specs, is_training=False)

    dense_optimizer = tf.train.AdamOptimizer(learning_rate=0.01)
    sparse_optimizer = create_hash_optimizer(learning_rate=0.01)
    sparse_hashtable = create_table(key_dtype=tf.int64, dim=tf.TensorShape([EMB_DIM]), name="sparse_embeddings",
                                    emb_initializer=tf.truncated_normal_initializer(stddev=0.05, seed=SEED),
                                    all2all_gradients_op="sum_gradients_and_div_by_ranksize",
                                    **cfg.get_emb_table_cfg())
    tables = [sparse_hashtable, sparse_hashtable] if use_multi_lookup else [sparse_hashtable]
    lookups = [None] * len(tables)
    train_model = model_forward(cfg, train_specs or lookups, tables, train_batch, is_train=True)
    eval_model = model_forward(cfg, eval_specs or lookups, tables, eval_batch, is_train=False)

    dense_variables, sparse_variables = get_dense_and_sparse_variable()
    rank_size = mxrec_util.communication.hccl_ops.get_rank_size()
    loss = train_model["loss"]
    grads = dense_optimizer.compute_gradients(loss, var_list=dense_variables)
    avg_grads = []
    for grad, var in grads:
        if rank_size > 1 and grad is not None:
            grad = mxrec_util.communication.hccl_ops.allreduce(grad, "sum") / rank_size
        if grad is not None:
            avg_grads.append((grad, var))
    train_ops = [dense_optimizer.apply_gradients(avg_grads, global_step=tf.train.get_or_create_global_step())]
    sparse_grads = tf.gradients(loss, sparse_variables)
    train_ops.append(sparse_optimizer.apply_gradients(list(zip(sparse_grads, sparse_variables))))
    train_op = tf.group(*train_ops)

    if MODIFY_GRAPH_FLAG:
        modify_graph_and_start_emb_cache(dump_graph=False)
    else:
        start_asc_pipeline()

    params = ConfigInitializer.get_instance().train_params_config
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(params.get_initializer(True) if MODIFY_GRAPH_FLAG else train_iterator.initializer)
        losses = []
        for step in range(1, TRAIN_STEPS + 1):
            _, loss_value = sess.run([train_op, loss])
            losses.append(float(loss_value))
            logger.info("step %d loss %.5f table size %d", step, loss_value, sparse_hashtable.size())

        if MODIFY_GRAPH_FLAG:
            sess.run(params.get_initializer(False))
            eval_label = params.get_target_batch(False)["label"]
        else:
            sess.run(eval_iterator.initializer)
            eval_label = eval_model["label"]
        rows = []
        for _ in range(EVAL_STEPS):
            pred, label = sess.run([eval_model["pred"], eval_label])
            rows.extend(np.concatenate([label.astype(np.float64), pred.astype(np.float64)], axis=1).tolist())
    eval_rows = np.asarray(rows)
    auc = [float(roc_auc_score(eval_rows[:, t], eval_rows[:, 2 + t])) if 0 < eval_rows[:, t].sum() < len(rows)
           else None for t in range(2)]
    print(f"final loss {losses[-1]:.5f} eval auc {auc}", flush=True)
    write_result(cfg, losses, rows, auc)
    terminate_config_initializer()
