"""The demo's click model: pooled sparse embeddings + dense features -> MLP -> sigmoid."""
from dataclasses import dataclass
from typing import Dict, Sequence

import tensorflow as tf

from dataset import PADDING_KEY

MODEL_SCOPE = "little_demo_mlp"


@dataclass
class ModelOutputs:
    """Tensors of one model tower.

    Attributes:
        logits: float32 [B]. prob: float32 [B], sigmoid(logits).
        loss: float32 scalar, mean sigmoid cross-entropy against ``label``.
    """

    logits: tf.Tensor
    prob: tf.Tensor
    loss: tf.Tensor


def _glorot(seed: int, layer: int):
    return tf.compat.v1.glorot_uniform_initializer(seed=seed * 1000 + layer)


def mean_pool(emb: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    """Mean of a multi-hot feature's embeddings over its valid (non-padding) ids.

    Args:
        emb: float32 [B, T, dim], the lookup of ``ids`` (padding ids already look up zeros).
        ids: int64 [B, T], padded with -1.

    Returns:
        float32 [B, dim]; zeros for a row with no valid id.
    """
    valid = tf.cast(tf.not_equal(ids, PADDING_KEY), emb.dtype)
    count = tf.maximum(tf.reduce_sum(valid, axis=1, keepdims=True), 1.0)
    return tf.reduce_sum(emb * valid[..., None], axis=1) / count


def build_model(embeddings: Dict[str, tf.Tensor], batch: Dict[str, tf.Tensor], hidden_units: Sequence[int],
                seed: int) -> ModelOutputs:
    """One tower of the model; calling it twice (train, eval) shares the MLP weights.

    Args:
        embeddings: ``user_id`` float32 [B, dim], ``item_id`` float32 [B, dim],
            ``item_tags`` float32 [B, T, dim] (the outputs of ``sparse_lookup``).
        batch: the dataset batch; uses ``item_tags`` int64 [B, T], ``dense_feature`` float32 [B, D]
            and ``label`` float32 [B].
        hidden_units: widths of the ReLU layers.
        seed: seeds the Glorot initializers (explicitly: Keras' unseeded default draws from
            Python's ``random``, which ``tf.compat.v1.set_random_seed`` does not fix).
    """
    tags = mean_pool(embeddings["item_tags"], batch["item_tags"])
    net = tf.concat([embeddings["user_id"], embeddings["item_id"], tags, batch["dense_feature"]], axis=1)
    with tf.compat.v1.variable_scope(MODEL_SCOPE, reuse=tf.compat.v1.AUTO_REUSE):
        for i, units in enumerate(hidden_units):
            net = tf.compat.v1.layers.dense(net, units, activation=tf.nn.relu, name=f"hidden_{i}",
                                            kernel_initializer=_glorot(seed, i))
        logits = tf.compat.v1.layers.dense(net, 1, name="logit", kernel_initializer=_glorot(seed, len(hidden_units)))
        logits = tf.squeeze(logits, axis=1)
    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=batch["label"], logits=logits))
    return ModelOutputs(logits=logits, prob=tf.sigmoid(logits), loss=loss)
