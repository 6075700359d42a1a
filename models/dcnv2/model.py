"""DCN-V2: explicit feature crosses beside (or under) an MLP.

    x0 = [e_1, ..., e_26, dense]                                   [B, n], n = 26 * d + 13
    x_{l+1} = x0 * (W_l x_l + b_l) + x_l                           cross layer l (W_l = U_l V_l^T if low-rank)
    parallel: logit = w . [x_L, mlp(x0)]      stacked: logit = w . mlp(x_L)
"""
from typing import Dict

import tensorflow as tf

from models.common.layers import dense, mlp

from models.dcnv2.config import DCNv2Config

TABLE = "sparse_table"


def cross_network(x0: tf.Tensor, layers: int, rank: int, seed: int) -> tf.Tensor:
    """``layers`` cross layers over x0 float32 [B, n] -> [B, n]."""
    n = int(x0.shape[1])
    x = x0
    with tf.compat.v1.variable_scope("cross", reuse=tf.compat.v1.AUTO_REUSE):
        for i in range(layers):
            if rank:
                projected = dense(dense(x, rank, f"cross_{i}_v", seed, use_bias=False), n, f"cross_{i}_u", seed)
            else:
                projected = dense(x, n, f"cross_{i}", seed)
            x = x0 * projected + x
    return x


def build_fn(cfg: DCNv2Config, seed: int):
    """The ``build(embeddings, batch) -> logits [B, 1]`` of ``main_mxrec.py`` (train and eval share its variables)."""
    def build(embeddings: Dict[str, tf.Tensor], batch: Dict[str, tf.Tensor]) -> tf.Tensor:
        emb = embeddings[TABLE]
        x0 = tf.concat([tf.reshape(emb, [-1, int(emb.shape[1]) * int(emb.shape[2])]), batch["dense_feature"]],
                       axis=1)
        with tf.compat.v1.variable_scope("dcnv2", reuse=tf.compat.v1.AUTO_REUSE):
            crossed = cross_network(x0, cfg.cross_layers, cfg.cross_rank, seed)
            if cfg.structure == "stacked":
                top = mlp(crossed, cfg.deep_mlp, "deep_mlp", seed)
            else:
                top = tf.concat([crossed, mlp(x0, cfg.deep_mlp, "deep_mlp", seed)], axis=1)
            return dense(top, 1, "logit", seed)
    return build
