"""Wide&Deep: a linear model over every id and dense feature, plus an MLP over embeddings.

    wide  = sum_f w[id_f] + dense . v + b          w: the 1-wide ``wide_table``
    deep  = mlp([e_1, ..., e_26, dense]) . u       e: the ``deep_table``
    logit = wide + deep                            [B, 1]
"""
from typing import Dict

import tensorflow as tf

from models.common.layers import dense, mlp

from config import WideDeepConfig

WIDE_TABLE = "wide_table"
DEEP_TABLE = "deep_table"


def build_fn(cfg: WideDeepConfig, seed: int):
    """The ``build(embeddings, batch) -> logits [B, 1]`` of ``main_mxrec.py`` (train and eval share its variables)."""
    def build(embeddings: Dict[str, tf.Tensor], batch: Dict[str, tf.Tensor]) -> tf.Tensor:
        features = batch["dense_feature"]
        with tf.compat.v1.variable_scope("wide_deep", reuse=tf.compat.v1.AUTO_REUSE):
            wide = tf.reduce_sum(embeddings[WIDE_TABLE], axis=[1, 2])[:, None] + dense(features, 1, "wide_dense",
                                                                                          seed)
            deep_emb = embeddings[DEEP_TABLE]
            flat = tf.reshape(deep_emb, [-1, int(deep_emb.shape[1]) * int(deep_emb.shape[2])])
            hidden = mlp(tf.concat([flat, features], axis=1), cfg.deep_mlp, "deep_mlp", seed)
            deep = dense(hidden, 1, "deep_logit", seed, use_bias=False)
        return wide + deep
    return build
