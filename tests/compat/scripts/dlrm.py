# coding=utf-8
"""A Rec-SDK-style DLRM script on Criteo TFRecords, written for the compat suite from Rec SDK's
documented API. What it exercises:

* its own hash optimizer, a weight-decayed SGD built on ``mx_rec.optimizers.base.CustomizedOptimizer``
  (``row -= lr * (grad + weight_decay * row)``, the gradient summed per key);
* a ``VarianceScaling`` initializer for the table, in every cache mode;
* with ``USE_DYNAMIC_EXPANSION=1``, Rec SDK's by-address flow: gradients with respect to the
  looked-up rows applied at their addresses by ``create_hash_optimizer_by_addr``, inside
  ``NPULossScaleOptimizer`` (``mx_rec.util.tf_version_adapter``); the dense Adam sits inside TF's
  own loss-scale optimizer either way;
* ``USE_MULTI_LOOKUP=1``: two lookups of the one table (two FeatureSpecs named ``sparse_feature``).

Switches from the environment as in Rec SDK scripts (USE_DYNAMIC, CACHE_MODE, USE_DYNAMIC_EXPANSION,
USE_MULTI_LOOKUP, USE_MODIFY_GRAPH, DATA_PATH, OMPI_COMM_WORLD_RANK / _SIZE). Writes per-step
losses and evaluation predictions to ``COMPAT_RESULT`` (the test's file).
"""
import json
import os
import warnings
from collections import defaultdict
from glob import glob

import numpy as np
import tensorflow.compat.v1 as tf
from tensorflow.python.ops import math_ops
from tensorflow.python.training import gradient_descent

import rec_sdk_common
from mx_rec.constants.constants import ASCEND_SPARSE_LOOKUP_ID_OFFSET, ASCEND_SPARSE_LOOKUP_LOCAL_EMB
from mx_rec.core.asc.helper import FeatureSpec, get_asc_insert_func
from mx_rec.core.asc.manager import start_asc_pipeline
from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.graph.modifier import modify_graph_and_start_emb_cache
from mx_rec.optimizers.base import CustomizedOptimizer
from mx_rec.optimizers.gradient_descent_by_addr import create_hash_optimizer_by_addr
from mx_rec.util.initialize import ConfigInitializer, init, terminate_config_initializer
from mx_rec.util.tf_version_adapter import NPULossScaleOptimizer, hccl_ops
from mx_rec.util.variable import get_dense_and_sparse_variable
from mx_rec.util.log import logger

tf.disable_eager_execution()

GLOBAL_BATCH = 128
EVAL_GLOBAL_BATCH = 64
TRAIN_STEPS = 16
EVAL_STEPS = 4
EMB_DIM = 8
SPARSE_LR = 0.05
WEIGHT_DECAY = 0.0001
LOSS_SCALE = 1024.0
SEED = 128


class FixedLossScaleManager:
    """The loss-scale manager this script hands to NPULossScaleOptimizer (a fixed power of two)."""

    def __init__(self, loss_scale):
        self._loss_scale = tf.constant(loss_scale, dtype=tf.float32)

    def get_loss_scale(self):
        return self._loss_scale


class WeightDecaySGD(gradient_descent.GradientDescentOptimizer, CustomizedOptimizer):
    """A user's hash optimizer: SGD with weight decay on the rows a batch touched."""
    name_counter = defaultdict(int)

    def __init__(self, learning_rate, weight_decay, use_locking=False, name="WeightDecaySGD"):
        self.optimizer_type = "weight_decay_sgd"
        self.weight_decay = weight_decay
        super(WeightDecaySGD, self)._get_name(name=name)
        super(WeightDecaySGD, self).__init__(learning_rate=learning_rate, use_locking=use_locking,
                                             name=self.unique_name)

    def initialize_slots(self, var, table_instance):
        return []

    def insert_slot(self, slot, named_slots_key, slot_name):
        return dict()

    def get_slot_init_values(self):
        return []

    def _apply_sparse_duplicate_indices(self, grad, var):
        rows = tf.gather(var, grad.indices)
        lr = math_ops.cast(self._learning_rate_tensor, var.dtype.base_dtype)
        step = (grad.values + math_ops.cast(self.weight_decay, var.dtype.base_dtype) * rows) * lr
        return tf.scatter_nd_add(var, tf.expand_dims(grad.indices, 1), -step, use_locking=self._use_locking)

    def _apply_dense(self, grad, var):
        raise NotImplementedError("a hash optimizer updates table rows only")


class Config:
    def __init__(self):
        self.data_path = os.getenv("DATA_PATH")
        self.rank_id = int(os.getenv("OMPI_COMM_WORLD_RANK")) if os.getenv("OMPI_COMM_WORLD_RANK") else None
        self.rank_size = int(os.getenv("OMPI_COMM_WORLD_SIZE")) if os.getenv("OMPI_COMM_WORLD_SIZE") else None
        self.batch_size = GLOBAL_BATCH // (self.rank_size or 1)
        self.eval_batch_size = EVAL_GLOBAL_BATCH // (self.rank_size or 1)
        self.cache_mode = os.getenv("CACHE_MODE", "HBM")
        self.send_count = self.batch_size * 26

    def get_emb_table_cfg(self):
        if self.cache_mode == "HBM":
            return dict(device_vocabulary_size=40000)
        if self.cache_mode == "DDR":
            return dict(device_vocabulary_size=8000, host_vocabulary_size=40000)
        return dict(device_vocabulary_size=8000, host_vocabulary_size=8000, ssd_vocabulary_size=80000,
                    ssd_data_path=[os.path.abspath("ssd_data")])


def make_batch_and_iterator(cfg, feature_spec_list, is_training):
    def extract_fn(record):
        features = {"label": tf.FixedLenFeature(shape=(1,), dtype=tf.int64),
                    "sparse_feature": tf.FixedLenFeature(shape=(26,), dtype=tf.int64),
                    "dense_feature": tf.FixedLenFeature(shape=(13,), dtype=tf.float32)}
        return tf.parse_single_example(record, features)

    files = sorted(glob(os.path.join(cfg.data_path, "train" if is_training else "test", "*.tfrecord")))
    dataset = tf.data.TFRecordDataset(files).shard(cfg.rank_size, cfg.rank_id)
    dataset = dataset.repeat(None if is_training else 1)
    batch_size = cfg.batch_size if is_training else cfg.eval_batch_size
    dataset = dataset.map(extract_fn).batch(batch_size, drop_remainder=True)
    if not MODIFY_GRAPH_FLAG:
        insert_fn = get_asc_insert_func(tgt_key_specs=feature_spec_list, is_training=is_training, dump_graph=False)
        dataset = dataset.map(insert_fn)
    iterator = dataset.prefetch(10).make_initializable_iterator()
    return iterator.get_next(), iterator


def create_feature_spec_list(cfg):
    specs = [FeatureSpec("sparse_feature", table_name="sparse_embeddings", batch_size=cfg.batch_size)]
    if use_multi_lookup:
        specs.append(FeatureSpec("sparse_feature", table_name="sparse_embeddings", batch_size=cfg.batch_size))
    return specs


def mlp(x, units, name, last_activation=tf.nn.relu):
    init_fn = tf.glorot_uniform_initializer(seed=SEED)
    for i, width in enumerate(units):
        activation = last_activation if i == len(units) - 1 else tf.nn.relu
        x = tf.layers.dense(x, width, activation, kernel_initializer=init_fn, name=f"{name}_{i}")
    return x


def dlrm(emb, dense, label):
    with tf.variable_scope("dlrm", reuse=tf.AUTO_REUSE):
        bottom = mlp(tf.math.log1p(tf.nn.relu(dense)), (16, EMB_DIM), "bottom")
        vectors = tf.concat([tf.expand_dims(bottom, 1), emb], axis=1)                 # [B, 27, dim]
        dots = tf.reshape(tf.matmul(vectors, vectors, transpose_b=True), [-1, 27 * 27])  # [B, 27 * 27]
        upper = [i * 27 + j for i in range(27) for j in range(i + 1, 27)]
        x = tf.concat([bottom, tf.gather(dots, upper, axis=1)], axis=1)                # [B, dim + 351]
        logit = tf.squeeze(mlp(x, (32, 1), "top", last_activation=None), -1)
        target = tf.cast(tf.reshape(label, [-1]), tf.float32)
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logit))
    return {"loss": loss, "pred": tf.sigmoid(logit), "label": label}


def model_forward(cfg, feature_list, hash_table_list, batch, is_train):
    embedding_list = []
    for feature, hash_table in zip(feature_list, hash_table_list):
        if MODIFY_GRAPH_FLAG:
            feature = batch["sparse_feature"]
        embedding_list.append(sparse_lookup(hash_table, feature, None if use_dynamic else cfg.send_count, dim=None,
                                            is_train=is_train, name="user_embedding_lookup",
                                            modify_graph=MODIFY_GRAPH_FLAG, batch=batch,
                                            access_and_evict_config=None))
    emb = embedding_list[0] if len(embedding_list) == 1 else tf.reduce_sum(embedding_list, axis=0)
    return dlrm(emb, batch["dense_feature"], batch["label"])


def write_result(cfg, losses, eval_rows, size):
    path = os.environ["COMPAT_RESULT"]
    if cfg.rank_id:
        path = f"{path}.rank{cfg.rank_id}"
    with open(path, "w") as handle:
        json.dump({"losses": losses, "eval_rows": eval_rows, "table_size": size}, handle)


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

    train_specs = create_feature_spec_list(cfg)
    eval_specs = create_feature_spec_list(cfg)
    train_batch, train_iterator = make_batch_and_iterator(cfg, train_specs, is_training=True)
    eval_batch, eval_iterator = make_batch_and_iterator(cfg, eval_specs, is_training=False)

    dense_optimizer = tf.mixed_precision.MixedPrecisionLossScaleOptimizer(tf.train.AdamOptimizer(0.005), LOSS_SCALE)
    if use_dynamic_expansion:
        sparse_optimizer = NPULossScaleOptimizer(
            create_hash_optimizer_by_addr(SPARSE_LR, weight_decay=WEIGHT_DECAY),
            FixedLossScaleManager(LOSS_SCALE))
    else:
        sparse_optimizer = WeightDecaySGD(SPARSE_LR, WEIGHT_DECAY)

    emb_initializer = tf.variance_scaling_initializer(mode="fan_avg", distribution="normal", seed=SEED)
    sparse_hashtable = create_table(key_dtype=tf.int64, dim=tf.TensorShape([EMB_DIM]), name="sparse_embeddings",
                                    emb_initializer=emb_initializer,
                                    all2all_gradients_op="sum_gradients_and_div_by_ranksize",
                                    **cfg.get_emb_table_cfg())
    tables = [sparse_hashtable, sparse_hashtable] if use_multi_lookup else [sparse_hashtable]
    train_model = model_forward(cfg, train_specs, tables, train_batch, is_train=True)
    eval_model = model_forward(cfg, eval_specs, tables, eval_batch, is_train=False)

    dense_variables, sparse_variables = get_dense_and_sparse_variable()
    rank_size = rec_sdk_common.communication.hccl.hccl_info.get_rank_size()
    loss = train_model["loss"]
    dense_grads = []
    for grad, var in dense_optimizer.compute_gradients(loss, var_list=dense_variables):
        if grad is not None:
            dense_grads.append((hccl_ops.allreduce(grad, "sum") / rank_size if rank_size > 1 else grad, var))
    train_ops = [dense_optimizer.apply_gradients(dense_grads, global_step=tf.train.get_or_create_global_step())]
    if use_dynamic_expansion:
        local_embs = tf.get_collection(ASCEND_SPARSE_LOOKUP_LOCAL_EMB)
        addresses = tf.get_collection(ASCEND_SPARSE_LOOKUP_ID_OFFSET)
        scaled = sparse_optimizer.compute_gradients(loss, var_list=local_embs)
        train_ops.append(sparse_optimizer.apply_gradients([(g, a) for (g, _), a in zip(scaled, addresses)]))
    else:
        sparse_grads = tf.gradients(loss, sparse_variables)
        train_ops.append(sparse_optimizer.apply_gradients(list(zip(sparse_grads, sparse_variables))))
    with tf.control_dependencies(train_ops):
        train_op = tf.no_op()

    if MODIFY_GRAPH_FLAG:
        modify_graph_and_start_emb_cache(dump_graph=False)
    else:
        start_asc_pipeline()

    params = ConfigInitializer.get_instance().train_params_config
    losses, rows = [], []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(params.get_initializer(True) if MODIFY_GRAPH_FLAG else train_iterator.initializer)
        for step in range(1, TRAIN_STEPS + 1):
            _, loss_value = sess.run([train_op, loss])
            losses.append(float(loss_value))
            logger.info("step %d loss %.5f table size %d capacity %d", step, loss_value, sparse_hashtable.size(),
                        sparse_hashtable.capacity())
        sess.run(params.get_initializer(False) if MODIFY_GRAPH_FLAG else eval_iterator.initializer)
        eval_label = params.get_target_batch(False)["label"] if MODIFY_GRAPH_FLAG else eval_model["label"]
        for _ in range(EVAL_STEPS):
            pred, label = sess.run([eval_model["pred"], eval_label])
            rows.extend(np.stack([label.reshape(-1).astype(np.float64), pred.astype(np.float64)], axis=1).tolist())
    print(f"final loss {losses[-1]:.5f} table size {sparse_hashtable.size()}", flush=True)
    write_result(cfg, losses, rows, sparse_hashtable.size())
    terminate_config_initializer()
