"""One fixed-seed model fed in FeatureSpec mode or in modify-graph mode, with one lookup of all
fields or two lookups of one table (merged or not by multi-lookup), in HBM or DDR mode.

    feed_mode_job.py OUT --feed featurespec|modify [--lookups 1|2] [--multi_lookup] [--ddr] [--hook]
                     [--steps S]

Every step reads the same global batch of GLOBAL_B rows from a tf.data pipeline; rank r takes rows
[r*B/N, (r+1)*B/N). Writes OUT/rank<r>.npz: the global mean loss of each step, this rank's table
state, and the graph's counts of all-to-all ops and built lookups. ``train`` is importable for
single-process tests (call ``init`` first).
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mx_rec.config.initializer import ConfigInitializer  # noqa: E402
from mx_rec.core.asc.helper import FeatureSpec, get_asc_insert_func  # noqa: E402
from mx_rec.core.embedding import create_table, sparse_lookup  # noqa: E402
from mx_rec.graph.modifier import GraphModifierHook, modify_graph_and_start_emb_cache  # noqa: E402
from mx_rec.optimizers import lazy_adam  # noqa: E402
from mx_rec.saver.table_state import collect  # noqa: E402
from mx_rec.util.communication import hccl_ops  # noqa: E402
from mx_rec.util.initialize import init  # noqa: E402
from mx_rec.util.variable import get_dense_and_sparse_variable  # noqa: E402

GLOBAL_B, F, D, POOL = 64, 4, 8, 600
DDR_DEVICE_ROWS = 400  # over all ranks
FEATURES = {1: ("ids",), 2: ("ids_a", "ids_b")}


def global_data(steps: int):
    """ids int64 [steps*B, F] (Zipf, 5% padding -1), dense float32 [steps*B, 3], label float32 [steps*B]."""
    rng = np.random.default_rng(77)
    ranks = np.minimum(rng.zipf(1.2, (steps * GLOBAL_B, F)), POOL)
    ids = (ranks * 104729 - 7 * POOL).astype(np.int64)
    ids[rng.random(ids.shape) < 0.05] = -1
    return ids, rng.normal(size=(steps * GLOBAL_B, 3)).astype(np.float32), \
        (rng.random(steps * GLOBAL_B) < 0.3).astype(np.float32)


def rank_dataset(steps: int, rank: int, ranks: int) -> tf.data.Dataset:
    ids, dense, label = global_data(steps)
    local_b = GLOBAL_B // ranks
    mine = (np.arange(steps * GLOBAL_B) % GLOBAL_B) // local_b == rank
    ids, dense, label = ids[mine], dense[mine], label[mine]
    columns = {"ids": ids, "ids_a": ids[:, :2], "ids_b": ids[:, 2:], "dense": dense, "label": label}
    return tf.data.Dataset.from_tensor_slices(columns).batch(local_b, drop_remainder=True)


def train(feed: str, lookups: int, ddr: bool, steps: int, hook: bool = False) -> dict:
    """Build and train the model in the default graph (``init`` already called); returns the numbers."""
    config = ConfigInitializer.get_instance()
    rank, ranks = config.rank_id, config.rank_size
    sparse_opt = lazy_adam.create_hash_optimizer(0.02)
    table = create_table(tf.int64, D, "emb", tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=2),
                         device_vocabulary_size=DDR_DEVICE_ROWS if ddr else 2 * POOL,
                         host_vocabulary_size=2 * POOL if ddr else 0,
                         all2all_gradients_op="sum_gradients_and_div_by_ranksize")
    dataset = rank_dataset(steps, rank, ranks)
    names = FEATURES[lookups]
    if feed == "featurespec":
        specs = [FeatureSpec(name, table_name="emb") for name in names]
        dataset = dataset.map(get_asc_insert_func(tgt_key_specs=specs, is_training=True))
        iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
        batch = iterator.get_next()
        embs = [sparse_lookup(table, spec, batch=batch) for spec in specs]
    else:
        iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
        batch = iterator.get_next()
        embs = [sparse_lookup(table, batch[name], modify_graph=True) for name in names]
    local_b = GLOBAL_B // ranks
    x = tf.concat([tf.reshape(e, [local_b, -1]) for e in embs] + [batch["dense"]], axis=1)
    hidden = tf.compat.v1.layers.dense(x, 8, activation=tf.nn.relu,
                                       kernel_initializer=tf.compat.v1.glorot_uniform_initializer(seed=4))
    logits = tf.squeeze(tf.compat.v1.layers.dense(
        hidden, 1, kernel_initializer=tf.compat.v1.glorot_uniform_initializer(seed=5)), 1)
    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=batch["label"], logits=logits))
    global_loss = hccl_ops.allreduce(loss, "mean")
    dense_vars, sparse_vars = get_dense_and_sparse_variable()
    dense_opt = tf.compat.v1.train.AdamOptimizer(0.01)
    dense_grads = [(hccl_ops.allreduce(g, "mean"), v) for g, v in dense_opt.compute_gradients(loss, dense_vars)]
    train_op = tf.group(dense_opt.apply_gradients(dense_grads),
                        sparse_opt.apply_gradients(sparse_opt.compute_gradients(loss, sparse_vars)))
    losses = []
    if feed == "modify" and hook:
        with tf.compat.v1.train.MonitoredSession(hooks=[GraphModifierHook()]) as sess:
            for _ in range(steps):
                losses.append(sess.run([global_loss, train_op])[0])
            state = collect(table, sess._tf_sess())  # pylint: disable=protected-access
    else:
        if feed == "modify":
            modify_graph_and_start_emb_cache()
            init_op = config.train_params_config.get_initializer(True)
        else:
            init_op = iterator.initializer
        with tf.compat.v1.Session() as sess:
            sess.run([tf.compat.v1.global_variables_initializer(), init_op])
            for _ in range(steps):
                losses.append(sess.run([global_loss, train_op])[0])
            state = collect(table, sess)
    graph = tf.compat.v1.get_default_graph()
    return {"losses": np.array(losses), "keys": state.keys, "embeddings": state.embeddings,
            "m": state.slots["LazyAdam/m"], "v": state.slots["LazyAdam/v"],
            "alltoall_ops": np.int64(sum(op.type == "HorovodAlltoall" for op in graph.get_operations())),
            "built_lookups": np.int64(table.built_lookups), "ranks": np.int64(ranks)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--feed", choices=("featurespec", "modify"), required=True)
    parser.add_argument("--lookups", type=int, choices=(1, 2), default=1)
    parser.add_argument("--multi_lookup", action="store_true")
    parser.add_argument("--ddr", action="store_true")
    parser.add_argument("--hook", action="store_true")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    tf.compat.v1.disable_eager_execution()
    config = init(use_multi_lookup=args.multi_lookup)
    result = train(args.feed, args.lookups, args.ddr, args.steps, args.hook)
    np.savez(os.path.join(args.out, f"rank{config.rank_id}.npz"), **result)
    print(f"rank {config.rank_id}: final loss {result['losses'][-1]:.6f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
