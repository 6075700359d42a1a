"""A fixed-seed model trained on 1 rank (plain python) or N ranks (under horovodrun).

Every step draws the same global batch of GLOBAL_B rows; rank r trains on rows
[r*B/N, (r+1)*B/N). Dense gradients are averaged over ranks, the table uses
``sum_gradients_and_div_by_ranksize``, so N ranks compute the same updates as 1 rank.

    distributed_job.py OUT [--static [--send_count C]] [--steps S] [--first_step F] [--save DIR] [--restore DIR]
                       [--overflow]   (step 2 sends every key to rank 0: 128 distinct keys per rank)

Writes OUT/rank<r>.npz: the global mean loss of each step and this rank's table state
(keys, rows, lazy-Adam slots, admission counts).
"""
import argparse
import os
import signal
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mx_rec.core.embedding import create_table, sparse_lookup  # noqa: E402
from mx_rec.optimizers import lazy_adam  # noqa: E402
from mx_rec.saver import checkpoint  # noqa: E402
from mx_rec.saver.table_state import collect  # noqa: E402
from mx_rec.util.communication import hccl_ops  # noqa: E402
from mx_rec.util.initialize import init  # noqa: E402
from mx_rec.util.variable import get_dense_and_sparse_variable  # noqa: E402

GLOBAL_B, F, D, POOL, SEND_COUNT = 64, 4, 8, 600, 160
DDR_DEVICE_ROWS = 160  # over all ranks: ~80 per rank, for ~150 admitted keys per rank
SSD_HOST_ROWS = 60  # over all ranks: the host holds ~30 keys per rank, the rest goes to RocksDB
tf.compat.v1.disable_eager_execution()


def global_batch(step: int, overflow: bool = False):
    rng = np.random.default_rng(500 + step)
    ranks = np.minimum(rng.zipf(1.2, (GLOBAL_B, F)), POOL)
    ids = (ranks * 104729 - 7 * POOL).astype(np.int64)
    ids[rng.random(ids.shape) < 0.05] = -1
    if overflow and step == 2:
        ids[:] = np.arange(GLOBAL_B * F).reshape(GLOBAL_B, F) * 2  # every key owned by rank 0 on 2 ranks
    dense = rng.normal(size=(GLOBAL_B, 3)).astype(np.float32)
    labels = (rng.random(GLOBAL_B) < 0.3).astype(np.float32)
    return ids, dense, labels


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--static", action="store_true")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--first_step", type=int, default=0)
    parser.add_argument("--save")
    parser.add_argument("--restore")
    parser.add_argument("--overflow", action="store_true")
    parser.add_argument("--send_count", type=int, default=SEND_COUNT)
    parser.add_argument("--dp", action="store_true", help="a replicated (is_dp=True) table")
    parser.add_argument("--ddr", action="store_true", help="DDR mode: a small device cache over host memory")
    parser.add_argument("--ssd", help="SSD mode with RocksDB under this folder (device and host caches both small)")
    parser.add_argument("--die_rank", type=int, default=-1, help="this rank SIGKILLs itself at --die_at")
    parser.add_argument("--die_at", type=int, default=5)
    args = parser.parse_args()

    config = init(use_dynamic=not args.static)
    rank, ranks = config.rank_id, config.rank_size
    local_b = GLOBAL_B // ranks
    sparse_opt = lazy_adam.create_hash_optimizer(0.02)  # before the table: DDR mode makes its slots at creation
    table = create_table(tf.int64, D, "emb", tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=2),
                         device_vocabulary_size=DDR_DEVICE_ROWS if (args.ddr or args.ssd) else 2 * POOL,
                         host_vocabulary_size=SSD_HOST_ROWS if args.ssd else (2 * POOL if args.ddr else 0),
                         ssd_vocabulary_size=2 * POOL if args.ssd else 0, ssd_data_path=args.ssd,
                         all2all_gradients_op="sum_gradients_and_div_by_ranksize", is_dp=args.dp)
    ids = tf.compat.v1.placeholder(tf.int64, [local_b, F])
    dense_x = tf.compat.v1.placeholder(tf.float32, [local_b, 3])
    labels = tf.compat.v1.placeholder(tf.float32, [local_b])
    emb = sparse_lookup(table, ids, send_count=args.send_count if args.static else None,
                        access_and_evict_config={"access_threshold": 2})
    x = tf.concat([tf.reshape(emb, [local_b, F * D]), dense_x], axis=1)
    hidden = tf.compat.v1.layers.dense(x, 8, activation=tf.nn.relu,
                                       kernel_initializer=tf.compat.v1.glorot_uniform_initializer(seed=4))
    logits = tf.squeeze(tf.compat.v1.layers.dense(
        hidden, 1, kernel_initializer=tf.compat.v1.glorot_uniform_initializer(seed=5)), 1)
    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
    global_loss = hccl_ops.allreduce(loss, "mean")
    dense_vars, sparse_vars = get_dense_and_sparse_variable()
    dense_opt = tf.compat.v1.train.AdamOptimizer(0.01)
    dense_grads = [(hccl_ops.allreduce(g, "mean"), v) for g, v in dense_opt.compute_gradients(loss, dense_vars)]
    step = tf.compat.v1.train.get_or_create_global_step()
    train = tf.group(dense_opt.apply_gradients(dense_grads, global_step=step),
                     sparse_opt.apply_gradients(sparse_opt.compute_gradients(loss, sparse_vars)))
    # unseeded, so each process draws different values: the initializer must broadcast rank 0's
    probe = tf.compat.v1.get_variable("probe", [4], initializer=tf.compat.v1.random_normal_initializer())
    saver = tf.compat.v1.train.Saver()
    if args.save and rank == 1:
        # rank 1 writes its shard late, so a save barrier that does not wait shows up as a missing shard
        real_write = checkpoint._write_shard
        checkpoint._write_shard = lambda path, state: (time.sleep(1.0), real_write(path, state))[1]
    losses = []
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        np.save(os.path.join(args.out, f"probe_rank{rank}.npy"), sess.run(probe))
        if args.restore:
            saver.restore(sess, tf.compat.v1.train.latest_checkpoint(args.restore))
            dump(os.path.join(args.out, f"restored_rank{rank}.npz"), collect(table, sess), [], ranks)
        for s in range(args.first_step, args.first_step + args.steps):
            if rank == args.die_rank and s == args.die_at:
                os.kill(os.getpid(), signal.SIGKILL)
            all_ids, all_dense, all_labels = global_batch(s, args.overflow)
            part = slice(rank * local_b, (rank + 1) * local_b)
            value, _ = sess.run([global_loss, train], {ids: all_ids[part], dense_x: all_dense[part],
                                                       labels: all_labels[part]})
            losses.append(value)
            if args.save and s + 1 == args.first_step + args.steps // 2:
                saver.save(sess, os.path.join(args.save, "model"), global_step=s + 1)
                dump(os.path.join(args.out, f"saved_rank{rank}.npz"), collect(table, sess), [], ranks)
        dump(os.path.join(args.out, f"rank{rank}.npz"), collect(table, sess), losses, ranks)
        print(f"rank {rank} telemetry {table.telemetry()}", flush=True)
    print(f"rank {rank} of {ranks} done: final loss {losses[-1]:.6f}", flush=True)


def dump(path: str, state, losses, ranks: int) -> None:
    np.savez(path, losses=np.array(losses), keys=state.keys, embeddings=state.embeddings,
             m=state.slots["LazyAdam/m"], v=state.slots["LazyAdam/v"], stat_keys=state.stat_keys,
             counts=state.counts, ranks=np.int64(ranks))


if __name__ == "__main__":
    sys.exit(main())
