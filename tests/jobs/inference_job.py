"""A model-zoo job (the SDK calls of ``models/dlrm/main_mxrec.py``) with a small model, for the inference tests.

    inference_job.py OUT --data D train   --save DIR [--steps 8]   train, save DIR/model-<steps> (+ .meta), evaluate
    inference_job.py OUT --data D predict --restore DIR            restore DIR's latest checkpoint, evaluate

Runs on 1 rank (plain python) or N (horovodrun); ``CACHE_MODE`` etc. come from the environment as
in the zoo. Evaluation reads the test split as ``models.common.data.eval_dataset`` does (rank r gets
records r, r + N, ...; the data must hold one sample per record) and writes
``OUT/preds_rank<r>.npz``: ``rows`` int64 [n] (the sample's index in the test split) and
``probs`` float32 [n, 1].
"""
import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mx_rec.config.initializer import ConfigInitializer  # noqa: E402
from mx_rec.core.asc.manager import start_asc_pipeline  # noqa: E402
from mx_rec.core.embedding import create_table, sparse_lookup  # noqa: E402
from mx_rec.data.records import CRITEO_SCHEMA  # noqa: E402
from mx_rec.graph.modifier import modify_graph_and_start_emb_cache  # noqa: E402
from mx_rec.inference.signature import set_prediction  # noqa: E402
from mx_rec.optimizers.lazy_adam import create_hash_optimizer  # noqa: E402
from mx_rec.util.communication import hccl_ops  # noqa: E402
from mx_rec.util.initialize import init, terminate_config_initializer  # noqa: E402
from mx_rec.util.variable import get_dense_and_sparse_variable  # noqa: E402

from models.common import data, table_sizes  # noqa: E402
from models.common.config import TrainConfig  # noqa: E402
from models.common.layers import mlp  # noqa: E402
from models.common.switches import read_switches  # noqa: E402
from models.common.training import TrainLog, task_loss  # noqa: E402

TABLE, DIM, SEED = "sparse_table", 8, 7
tf.compat.v1.disable_eager_execution()


def build(emb: tf.Tensor, batch) -> tf.Tensor:
    """[B, 26, 8] embeddings and [B, 13] dense -> logits [B, 1]."""
    with tf.compat.v1.variable_scope("tiny", reuse=tf.compat.v1.AUTO_REUSE):
        flat = tf.reshape(emb, [-1, int(emb.shape[1]) * DIM])
        bottom = mlp(batch["dense_feature"], (8,), "bottom", SEED)
        return mlp(tf.concat([flat, bottom], axis=1), (16, 1), "top", SEED, last_activation=None)


def lookup(table, ids: tf.Tensor, is_train: bool, switches) -> tf.Tensor:
    """ids int64 [B, F] -> float32 [B, F, dim]: one lookup, or one per field with ``USE_MULTI_LOOKUP=1``."""
    prefix = "train" if is_train else "eval"
    batch, fields = ids.shape.as_list()
    if not switches.use_multi_lookup:
        return sparse_lookup(table, ids, send_count=None if switches.use_dynamic else batch * fields,
                             is_train=is_train, name=f"{prefix}_{TABLE}", modify_graph=switches.use_modify_graph)
    return tf.stack([sparse_lookup(table, ids[:, f], send_count=None if switches.use_dynamic else batch,
                                   is_train=is_train, name=f"{prefix}_{TABLE}_field{f}",
                                   modify_graph=switches.use_modify_graph)
                     for f in range(fields)], axis=1)


def make_graph(cfg: TrainConfig, switches, info: data.DataInfo, steps: int, n_eval: int, ssd_path: str, rank: int,
               ranks: int):
    """Pipelines, the hash optimizer, the table, lookups, train op and evaluation ops, in the zoo's order.

    Returns:
        (eval probabilities float32 [B, 1], the evaluation batch, iterator initializers, train op, loss, table).
    """
    train_iter, train_batch = data.make_iterator(
        data.train_dataset(info, cfg.batch_size, steps, rank, ranks, cfg.seed, cfg.shuffle_buffer))
    eval_iter, eval_batch = data.make_iterator(data.eval_dataset(info, cfg.eval_batch_size, n_eval, rank, ranks))
    read_batch = eval_batch
    sparse_optimizer = create_hash_optimizer(learning_rate=cfg.sparse_lr, name=f"{TABLE}_lazy_adam")
    rows = table_sizes.table_rows(table_sizes.insertable_keys(info, cfg), cfg.vocab_margin)
    batch_keys = max(cfg.batch_size, cfg.eval_batch_size) * int(train_batch["sparse_feature"].shape[1])
    table = create_table(key_dtype=tf.int64, dim=DIM, name=TABLE,
                         emb_initializer=tf.compat.v1.truncated_normal_initializer(stddev=cfg.init_stddev,
                                                                                   seed=cfg.seed),
                         all2all_gradients_op="sum_gradients_and_div_by_ranksize",
                         **table_sizes.vocabulary_kwargs(switches.cache_mode, rows, ssd_path, batch_keys, ranks))
    loss = task_loss(build(lookup(table, train_batch["sparse_feature"], True, switches), train_batch),
                     train_batch["label"])
    global_step = tf.compat.v1.train.get_or_create_global_step()
    dense_vars, _ = get_dense_and_sparse_variable()
    grads = tf.gradients(loss, dense_vars + [table.variable])
    dense_opt = tf.compat.v1.train.AdamOptimizer(learning_rate=cfg.dense_lr)
    train_op = tf.group(
        dense_opt.apply_gradients([(hccl_ops.allreduce(g, "mean"), v) for g, v in zip(grads[:-1], dense_vars)
                                   if g is not None], global_step=global_step),
        sparse_optimizer.apply_gradients([(grads[-1], table.variable)]), name="train_op")
    eval_probs = tf.sigmoid(build(lookup(table, eval_batch["sparse_feature"], False, switches), eval_batch))
    initializers = (train_iter.initializer, eval_iter.initializer)
    rebuilt_batch = {}
    if switches.use_modify_graph:  # the SDK rebuilds both pipelines
        modify_graph_and_start_emb_cache()
        params = ConfigInitializer.get_instance().train_params_config
        initializers = (params.get_initializer(True), params.get_initializer(False))
        eval_batch = rebuilt_batch = params.get_target_batch(False)
    set_prediction(eval_probs, read_batch, aliases=rebuilt_batch)
    return eval_probs, eval_batch, initializers, train_op, loss, table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("mode", choices=("train", "predict"))
    parser.add_argument("--data", required=True)
    parser.add_argument("--save")
    parser.add_argument("--restore")
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    switches = read_switches()
    config = init(**switches.init_kwargs())
    rank, ranks = config.rank_id, config.rank_size
    cfg = TrainConfig(data_path=args.data, batch_size=32, steps=args.steps, eval_batch_size=64, shuffle_buffer=0,
                      dense_lr=0.01, sparse_lr=0.05, init_stddev=0.05, seed=SEED)
    try:
        info = data.load_data_info(Path(args.data), CRITEO_SCHEMA)
        n_eval = data.eval_steps(info, cfg.eval_batch_size, ranks)
        with table_sizes.ssd_folder(switches.cache_mode, "", f"inference_rank{rank}") as ssd_path:
            eval_probs, eval_batch, initializers, train_op, loss, table = make_graph(
                cfg, switches, info, args.steps, n_eval, ssd_path, rank, ranks)
            start_asc_pipeline()
            saver = tf.compat.v1.train.Saver()
            with tf.compat.v1.Session() as sess:
                sess.run([tf.compat.v1.global_variables_initializer(), *initializers])
                if args.mode == "train":
                    log = TrainLog(args.steps, cfg.batch_size, 4)
                    for step in range(1, args.steps + 1):
                        log.step(step, sess.run([train_op, loss])[1])
                    log.finish({TABLE: table})
                    saver.save(sess, os.path.join(args.save, "model"), global_step=args.steps)
                else:
                    saver.restore(sess, tf.compat.v1.train.latest_checkpoint(args.restore))
                probs, valid = [], []
                for _ in range(n_eval):
                    p, v = sess.run([eval_probs, eval_batch["valid"]])
                    probs.append(p)
                    valid.append(v > 0.5)
    finally:
        terminate_config_initializer()
    keep = np.concatenate(valid)
    assert keep.sum() == 0 or not (~keep[:int(keep.sum())]).any(), "padding samples come last"
    rows = rank + ranks * np.arange(int(keep.sum()), dtype=np.int64)
    np.savez(os.path.join(args.out, f"preds_rank{rank}.npz"), rows=rows, probs=np.concatenate(probs)[keep])


if __name__ == "__main__":
    main()
