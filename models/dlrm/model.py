"""DLRM: bottom MLP on the dense features, pairwise dot products with the embeddings, top MLP.

    x = bottom_mlp(dense)                        [B, d]
    T = [x, e_1, ..., e_26]                      [B, 27, d]
    z = (T T^T)[i > j]                           [B, 351]  (strictly lower triangle)
    logit = top_mlp([x, z])                      [B, 1]
"""
from typing import Dict

import numpy as np
import tensorflow as tf

from models.common.layers import mlp

from models.dlrm.config import DLRMConfig

TABLE = "sparse_table"


def dot_interactions(bottom: tf.Tensor, emb: tf.Tensor) -> tf.Tensor:
    """Pairwise dot products of [bottom, fields], each pair once.

    Args:
        bottom: float32 [B, d]. emb: float32 [B, F, d].

    Returns:
        float32 [B, (F + 1) * F / 2].
    """
    vectors = tf.concat([bottom[:, None, :], emb], axis=1)
    n = int(vectors.shape[1])
    gram = tf.reshape(tf.matmul(vectors, vectors, transpose_b=True), [-1, n * n])
    rows, cols = np.tril_indices(n, k=-1)
    return tf.gather(gram, rows * n + cols, axis=1)


def build_fn(cfg: DLRMConfig, seed: int):
    """The ``build(embeddings, batch) -> logits [B, 1]`` of ``main_mxrec.py`` (train and eval share its variables)."""
    def build(embeddings: Dict[str, tf.Tensor], batch: Dict[str, tf.Tensor]) -> tf.Tensor:
        with tf.compat.v1.variable_scope("dlrm", reuse=tf.compat.v1.AUTO_REUSE):
            bottom = mlp(batch["dense_feature"], cfg.bottom_mlp, "bottom_mlp", seed)
            z = dot_interactions(bottom, embeddings[TABLE])
            return mlp(tf.concat([bottom, z], axis=1), cfg.top_mlp, "top_mlp", seed, last_activation=None)
    return build
