"""The model zoo's job graph (``common.job``) with a small model, for the inference tests.

    inference_job.py OUT --data D train   --save DIR [--steps 8]   train, save DIR/model-<steps> (+ .meta), evaluate
    inference_job.py OUT --data D predict --restore DIR            restore DIR's latest checkpoint, evaluate

Runs on 1 rank (plain python) or N (horovodrun); ``CACHE_MODE`` etc. come from the environment as
in the zoo. Evaluation reads the test split as ``common.data.eval_dataset`` does (rank r gets
records r, r + N, ...; the data must hold one sample per record) and writes
``OUT/preds_rank<r>.npz``: ``rows`` int64 [n] (the sample's index in the test split) and
``probs`` float32 [n, 1].
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(1, str(Path(__file__).resolve().parents[2] / "models"))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mx_rec.core.asc.manager import start_asc_pipeline  # noqa: E402
from mx_rec.util.initialize import init, terminate_config_initializer  # noqa: E402

from common import data, embedding, job, training  # noqa: E402
from common.config import TrainConfig  # noqa: E402
from common.embedding import TableSpec  # noqa: E402
from common.layers import mlp  # noqa: E402
from common.records import CRITEO_SCHEMA  # noqa: E402
from common.switches import read_switches  # noqa: E402

TABLE, DIM, SEED = "sparse_table", 8, 7
tf.compat.v1.disable_eager_execution()


def build(embeddings, batch):
    """[B, 26, 8] embeddings and [B, 13] dense -> logits [B, 1]."""
    with tf.compat.v1.variable_scope("tiny", reuse=tf.compat.v1.AUTO_REUSE):
        emb = embeddings[TABLE]
        flat = tf.reshape(emb, [-1, int(emb.shape[1]) * DIM])
        bottom = mlp(batch["dense_feature"], (8,), "bottom", SEED)
        return mlp(tf.concat([flat, bottom], axis=1), (16, 1), "top", SEED, last_activation=None)


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
    spec = job.ModelSpec(name="tiny", schema=CRITEO_SCHEMA, tasks=("ctr",), tables=(TableSpec(TABLE, DIM),),
                         build=build)
    try:
        info = data.load_data_info(Path(args.data), spec.schema)
        n_eval = data.eval_steps(info, cfg.eval_batch_size, ranks)
        with embedding.ssd_folder(switches.cache_mode, "", f"inference_rank{rank}") as ssd_path:
            graph = job._build_graph(spec, cfg, switches, info, args.steps, n_eval, ssd_path)
            start_asc_pipeline()
            saver = tf.compat.v1.train.Saver()
            with tf.compat.v1.Session() as sess:
                sess.run([tf.compat.v1.global_variables_initializer(), *graph.initializers])
                if args.mode == "train":
                    training.train_loop(sess, graph.train_op, graph.loss, args.steps, cfg.batch_size, 4, graph.tables)
                    saver.save(sess, os.path.join(args.save, "model"), global_step=args.steps)
                else:
                    saver.restore(sess, tf.compat.v1.train.latest_checkpoint(args.restore))
                probs, valid = [], []
                for _ in range(n_eval):
                    p, v = sess.run([graph.eval_probs, graph.eval_batch["valid"]])
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
