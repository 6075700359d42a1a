"""MMoE: shared experts, one softmax gate and one tower per task (income, marital status).

    expert_input "sum" (PaddleRec's census network):
        h = sum_f E[id_f] + dense W + b                   [B, 144] = 8 x 16 expert and 2 x 8 gate pre-activations
        experts = relu(h[:, :128]) as [B, 8, 16];  gate_t = softmax(h[:, 128 + 8t : 136 + 8t])
    expert_input "concat":
        x = [e_1, ..., e_29, dense];  experts_k = relu(x W_k + b_k);  gate_t = softmax(x G_t + c_t)
    dense_buckets K > 0: each continuous value x in [0, 1] also adds the id
        BUCKET_BASE + column * K + min(floor(x K), K - 1) to the sparse ids before the lookup
    both:
        task_t = sum_k gate_t[k] * experts_k               [B, 16]
        logit_t = relu(task_t V_t + d_t) . u_t + a_t       [B]; logits [B, 2]
"""
from typing import Dict

import tensorflow as tf

from models.common.layers import dense

from config import NUM_TASKS, MMoEConfig

TABLE = "census_table"
BUCKET_BASE = 1 << 40  # far above census.py's ids (0 .. vocabulary size - 1)


def prepare_fn(cfg: MMoEConfig):
    """``prepare(batch)`` of ``main_mxrec.py``: appends the dense buckets' ids to ``sparse_feature``
    (int64 [B, 29] -> [B, 29 + 11]), or None when ``dense_buckets`` is 0."""
    if not cfg.dense_buckets:
        return None
    k = cfg.dense_buckets

    def prepare(batch: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        dense_values = batch["dense_feature"]
        bucket = tf.clip_by_value(tf.cast(tf.floor(dense_values * k), tf.int64), 0, k - 1)
        columns = tf.range(int(dense_values.shape[1]), dtype=tf.int64)[None, :]
        ids = BUCKET_BASE + columns * k + bucket
        return {**batch, "sparse_feature": tf.concat([batch["sparse_feature"], ids], axis=1)}

    return prepare


def _experts_and_gates(cfg: MMoEConfig, emb: tf.Tensor, features: tf.Tensor, seed: int):
    """(experts float32 [B, E, U], gates float32 [B, T, E])."""
    e, u = cfg.num_experts, cfg.expert_units
    if cfg.expert_input == "sum":
        h = tf.reduce_sum(emb, axis=1) + dense(features, cfg.sum_width, "dense_input", seed, bias_init=0.1)
        experts = tf.nn.relu(tf.reshape(h[:, :e * u], [-1, e, u]))
        gates = tf.nn.softmax(tf.reshape(h[:, e * u:], [-1, NUM_TASKS, e]), axis=-1)
        return experts, gates
    x = tf.concat([tf.reshape(emb, [-1, int(emb.shape[1]) * int(emb.shape[2])]), features], axis=1)
    experts = tf.stack([dense(x, u, f"expert_{k}", seed, activation="relu", bias_init=0.1) for k in range(e)], axis=1)
    gates = tf.stack([tf.nn.softmax(dense(x, e, f"gate_{t}", seed, bias_init=0.1)) for t in range(NUM_TASKS)],
                     axis=1)
    return experts, gates


def build_fn(cfg: MMoEConfig, seed: int):
    """The ``build(embeddings, batch) -> logits [B, 2]`` of ``main_mxrec.py`` (train and eval share its variables)."""
    def build(embeddings: Dict[str, tf.Tensor], batch: Dict[str, tf.Tensor]) -> tf.Tensor:
        with tf.compat.v1.variable_scope("mmoe", reuse=tf.compat.v1.AUTO_REUSE):
            experts, gates = _experts_and_gates(cfg, embeddings[TABLE], batch["dense_feature"], seed)
            mixed = tf.einsum("bte,beu->btu", gates, experts)
            logits = []
            for t in range(NUM_TASKS):
                tower = dense(mixed[:, t, :], cfg.tower_units, f"tower_{t}", seed, activation="relu", bias_init=0.1)
                logits.append(dense(tower, 1, f"logit_{t}", seed))
            return tf.concat(logits, axis=1)
    return build
