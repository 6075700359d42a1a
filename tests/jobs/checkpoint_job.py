"""A small two-table model for checkpoint tests, run as its own process.

    checkpoint_job.py DIR straight   train 30 steps, save DIR/model-30, train 30 more; dump state
    checkpoint_job.py DIR resume     restore the latest checkpoint in DIR, train steps 30..59; dump state
    checkpoint_job.py DIR kill       train 30, save, train 5, then SIGKILL itself in the middle of a save

Dumps (``DIR/<mode>.npz``): the losses of steps 30..59 and every table's keys, embeddings, lazy-Adam
slots and admission counts, sorted by key.
"""
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mx_rec.core.embedding import create_table, sparse_lookup  # noqa: E402
from mx_rec.optimizers import lazy_adam  # noqa: E402
from mx_rec.saver import checkpoint  # noqa: E402
from mx_rec.saver.table_state import collect  # noqa: E402
from mx_rec.util.initialize import init  # noqa: E402
from mx_rec.util.variable import get_dense_and_sparse_variable  # noqa: E402

B, F, D, POOL = 64, 3, 8, 400
tf.compat.v1.disable_eager_execution()


def batch(step: int):
    rng = np.random.default_rng(1000 + step)
    ranks = np.minimum(rng.zipf(1.3, (B, F)), POOL)
    users = (ranks * 7919 - 3 * POOL).astype(np.int64)
    items = rng.integers(-50, 50, (B, 2)).astype(np.int64)
    return users, items, rng.random(B).astype(np.float32)


def build():
    init()
    init_fn = tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=3)
    tables = [create_table(tf.int64, D, "users", init_fn, device_vocabulary_size=POOL + 10),
              create_table(tf.int64, D, "items", init_fn, device_vocabulary_size=200)]
    users = tf.compat.v1.placeholder(tf.int64, [B, F])
    items = tf.compat.v1.placeholder(tf.int64, [B, 2])
    labels = tf.compat.v1.placeholder(tf.float32, [B])
    u = sparse_lookup(tables[0], users, access_and_evict_config={"access_threshold": 2})
    i = sparse_lookup(tables[1], items)
    x = tf.concat([tf.reshape(u, [B, F * D]), tf.reshape(i, [B, 2 * D])], axis=1)
    w = tf.compat.v1.get_variable("w", [(F + 2) * D, 1], initializer=tf.constant_initializer(0.05))
    logits = tf.squeeze(tf.matmul(x, w), 1)
    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
    step = tf.compat.v1.train.get_or_create_global_step()
    dense, sparse = get_dense_and_sparse_variable()
    sparse_opt = lazy_adam.create_hash_optimizer(0.01)
    train = tf.group(tf.compat.v1.train.AdamOptimizer(0.01).minimize(loss, var_list=dense, global_step=step),
                     sparse_opt.minimize(loss, var_list=sparse))
    return tables, (users, items, labels), loss, train


def run(sess, feeds, loss, train, steps):
    losses = []
    for s in steps:
        values = batch(s)
        losses.append(sess.run([loss, train], dict(zip(feeds, values)))[0])
    return losses


def dump(path, sess, tables, losses):
    out = {"losses": np.array(losses, np.float64)}
    for table in tables:
        state = collect(table, sess)
        order = np.argsort(state.keys)
        out[f"{table.table_name}/keys"] = state.keys[order]
        out[f"{table.table_name}/embeddings"] = state.embeddings[order]
        for name, value in state.slots.items():
            out[f"{table.table_name}/slot/{name}"] = value[order]
        stat_order = np.argsort(state.stat_keys)
        out[f"{table.table_name}/stat_keys"] = state.stat_keys[stat_order]
        out[f"{table.table_name}/counts"] = state.counts[stat_order]
    np.savez(path, **out)


def main(directory: str, mode: str) -> None:
    tables, feeds, loss, train = build()
    saver = tf.compat.v1.train.Saver(max_to_keep=10)
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        if mode == "resume":
            saver.restore(sess, tf.compat.v1.train.latest_checkpoint(directory))
        else:
            run(sess, feeds, loss, train, range(30))
            saver.save(sess, os.path.join(directory, "model"), global_step=30)
        if mode == "kill":
            run(sess, feeds, loss, train, range(30, 35))
            real_write = checkpoint._write_shard

            def write_then_die(path, state):
                real_write(path, state)
                os.kill(os.getpid(), signal.SIGKILL)  # after the first table's shard: mid-save

            checkpoint._write_shard = write_then_die
            saver.save(sess, os.path.join(directory, "model"), global_step=35)
            raise AssertionError("the save should have been killed")
        losses = run(sess, feeds, loss, train, range(30, 60))
        dump(os.path.join(directory, f"{mode}.npz"), sess, tables, losses)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
