"""The small two-table model the inference tests train, export and load (``tests/unit/inference``), shared
so that other rooms' tests (a checkpoint on another filesystem, say) export the same graph."""
import numpy as np
import tensorflow as tf

from mx_rec.core.embedding import create_table, sparse_lookup
from mx_rec.inference import set_prediction
from mx_rec.optimizers import lazy_adam
from mx_rec.util.variable import get_dense_and_sparse_variable

INIT = tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=1)


def two_table_model(register=True):
    """Two tables; ids from two placeholders, one sliced (computed ids); a dense variable read by a gather."""
    users = create_table(tf.int64, 4, "users", INIT, device_vocabulary_size=100)
    items = create_table(tf.int64, 6, "items", INIT, device_vocabulary_size=100)
    batch = {"user": tf.compat.v1.placeholder(tf.int64, [None, 2], name="user"),
             "item": tf.compat.v1.placeholder(tf.int64, [None, 3], name="item"),
             "slot": tf.compat.v1.placeholder(tf.int32, [None], name="slot"),
             "label": tf.compat.v1.placeholder(tf.float32, [None], name="label")}
    bias = tf.compat.v1.get_variable("slot_bias", [3, 1], initializer=tf.constant_initializer(0.0))
    w = tf.compat.v1.get_variable("w", [2 * 4 + 6, 1], initializer=tf.compat.v1.glorot_uniform_initializer(seed=2))

    def logits(is_train, default=None):
        u = sparse_lookup(users, batch["user"], is_train=is_train, name=f"u_{is_train}")
        i = sparse_lookup(items, batch["item"][:, 1], is_train=is_train, serving_default_value=default,
                          name=f"i_{is_train}")
        x = tf.concat([tf.reshape(u, [-1, 8]), i], axis=1)
        return tf.squeeze(tf.matmul(x, w) + tf.nn.embedding_lookup(bias, batch["slot"]), 1)

    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=batch["label"], logits=logits(True)))
    dense, sparse = get_dense_and_sparse_variable()
    sparse_opt = lazy_adam.create_hash_optimizer(0.05)
    train = tf.group(tf.compat.v1.train.AdamOptimizer(0.05).minimize(loss, var_list=dense),
                     sparse_opt.minimize(loss, var_list=sparse))
    probs = tf.sigmoid(logits(False, default=0.25))
    if register:
        set_prediction(probs, batch)
    return batch, train, probs


def random_feed(batch, rng, n):
    """A random batch of ``n`` rows for the placeholders of :func:`two_table_model`: {placeholder: numpy}."""
    return {batch["user"]: rng.integers(0, 30, (n, 2)), batch["item"]: rng.integers(0, 20, (n, 3)),
            batch["slot"]: rng.integers(0, 3, n), batch["label"]: (rng.random(n) < 0.4).astype(np.float32)}
