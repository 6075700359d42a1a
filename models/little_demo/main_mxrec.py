"""Little demo: train a click model on synthetic data with mx_rec, then evaluate it.

The script is written the way a Rec SDK user writes one (graph mode, ``tf.data`` with
FeatureSpec mode, hash optimizers for the tables, a dense optimizer for the MLP):

    python models/little_demo/main_mxrec.py [--steps 300] [--batch_size 512] [--seed 2024]
                                            [--optimizer lazy_adam|adagrad|ftrl|gradient_descent]
                                            [--checkpoint_dir DIR]

It prints ``step N loss L samples/s S`` every ``--log_every`` steps (L is the mean loss since the
previous line), a ``final ...`` summary, then ``eval auc A ...`` on held-out batches.
"""
import importlib
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.metrics import log_loss, roc_auc_score  # noqa: E402

from mx_rec.core.asc.helper import FeatureSpec  # noqa: E402
from mx_rec.core.asc.manager import start_asc_pipeline  # noqa: E402
from mx_rec.core.embedding import create_table, sparse_lookup  # noqa: E402
from mx_rec.util.communication import hccl_ops  # noqa: E402
from mx_rec.util.initialize import init, terminate_config_initializer  # noqa: E402
from mx_rec.util.log import logger  # noqa: E402
from mx_rec.util.variable import get_dense_and_sparse_variable  # noqa: E402

from models.common.config import parse_flags  # noqa: E402

from config import FLAGS, DemoConfig  # noqa: E402
from dataset import SyntheticWorld, make_dataset, make_feature_specs  # noqa: E402
from model import ModelOutputs, build_model  # noqa: E402

tf.compat.v1.disable_eager_execution()


def create_tables(cfg: DemoConfig) -> Dict[str, object]:
    """The user table and the item table (the latter also holds the tag keys)."""
    def initializer():
        return tf.compat.v1.truncated_normal_initializer(stddev=cfg.init_stddev, seed=cfg.seed)

    return {
        "user_table": create_table(key_dtype=tf.int64, dim=cfg.emb_dim, name="user_table",
                                   emb_initializer=initializer(), device_vocabulary_size=cfg.user_vocab),
        "item_table": create_table(key_dtype=tf.int64, dim=cfg.emb_dim, name="item_table",
                                   emb_initializer=initializer(), device_vocabulary_size=cfg.item_vocab),
    }


def lookup_features(tables: Dict[str, object], specs: List[FeatureSpec], is_train: bool) -> Dict[str, tf.Tensor]:
    """``sparse_lookup`` of every spec in its table: feature name -> float32 ids.shape + [dim]."""
    prefix = "train" if is_train else "eval"
    return {spec.name: sparse_lookup(tables[spec.table_name], spec, is_train=is_train,
                                     name=f"{prefix}_{spec.name}_lookup")
            for spec in specs}


def make_hash_optimizer(cfg: DemoConfig):
    """The chosen ``mx_rec.optimizers.<name>.create_hash_optimizer`` at its configured learning rate."""
    module = importlib.import_module(f"mx_rec.optimizers.{cfg.optimizer}")
    return module.create_hash_optimizer(learning_rate=cfg.sparse_lr[cfg.optimizer])


def make_train_op(loss: tf.Tensor, cfg: DemoConfig) -> tf.Operation:
    """Adam on the dense variables (gradients averaged over ranks), the hash optimizer on the tables."""
    global_step = tf.compat.v1.train.get_or_create_global_step()
    dense_vars, sparse_vars = get_dense_and_sparse_variable()
    dense_opt = tf.compat.v1.train.AdamOptimizer(learning_rate=cfg.dense_lr)
    sparse_opt = make_hash_optimizer(cfg)
    dense_grads = [(hccl_ops.allreduce(g, "mean"), v)
                   for g, v in dense_opt.compute_gradients(loss, var_list=dense_vars)]
    sparse_grads = sparse_opt.compute_gradients(loss, var_list=sparse_vars)
    return tf.group(dense_opt.apply_gradients(dense_grads, global_step=global_step),
                    sparse_opt.apply_gradients(sparse_grads), name="train_op")


def train(sess: tf.compat.v1.Session, train_op: tf.Operation, loss: tf.Tensor, cfg: DemoConfig,
          tables: Dict[str, object]) -> None:
    """Run ``cfg.steps`` steps, printing the windowed mean loss and throughput, then a summary.

    The summary's final loss is the last window's mean; its samples/s leaves out step 1 (graph
    warm-up and JIT compilation).
    """
    window_losses: List[float] = []
    last_window_loss = float("nan")
    window_start = time.perf_counter()
    first_step_end = window_start
    for step in range(1, cfg.steps + 1):
        _, loss_value = sess.run([train_op, loss])
        window_losses.append(float(loss_value))
        if step == 1:
            first_step_end = time.perf_counter()
        if step == 1 or step % cfg.log_every == 0 or step == cfg.steps:
            now = time.perf_counter()
            rate = len(window_losses) * cfg.batch_size / (now - window_start)
            last_window_loss = float(np.mean(window_losses))
            print(f"step {step} loss {last_window_loss:.4f} samples/s {rate:.1f}", flush=True)
            window_losses, window_start = [], now
    elapsed = time.perf_counter() - first_step_end
    avg_rate = (cfg.steps - 1) * cfg.batch_size / elapsed if cfg.steps > 1 else float("nan")
    sizes = " ".join(f"{name}_size {table.size()}" for name, table in tables.items())
    print(f"final loss {last_window_loss:.4f} {sizes} "
          f"avg samples/s {avg_rate:.1f} (steps 2..{cfg.steps})", flush=True)


def evaluate(sess: tf.compat.v1.Session, outputs: ModelOutputs, batch: Dict[str, tf.Tensor], cfg: DemoConfig,
             world: SyntheticWorld, tables: Dict[str, object]) -> float:
    """Predict ``cfg.eval_steps`` held-out batches; prints AUC, log loss and the planted (best) AUC."""
    sizes_before = {name: table.size() for name, table in tables.items()}
    probs, labels, oracle = [], [], []
    fetch_keys = ("user_id", "item_id", "item_tags", "dense_feature", "label")
    for _ in range(cfg.eval_steps):
        prob, values = sess.run([outputs.prob, {k: batch[k] for k in fetch_keys}])
        probs.append(prob)
        labels.append(values["label"])
        oracle.append(world.true_prob(values))
    prob, label, oracle_prob = np.concatenate(probs), np.concatenate(labels), np.concatenate(oracle)
    auc = roc_auc_score(label, prob)
    print(f"eval auc {auc:.4f} logloss {log_loss(label, np.clip(prob, 1e-7, 1 - 1e-7)):.4f} "
          f"oracle_auc {roc_auc_score(label, oracle_prob):.4f} samples {label.shape[0]}", flush=True)
    for name, table in tables.items():
        if table.size() != sizes_before[name]:
            logger.warning("%s grew from %d to %d keys during evaluation (is_train=False must not insert)",
                           name, sizes_before[name], table.size())
    return auc


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Build the graph, train, evaluate; returns the process exit code."""
    cfg = parse_flags(argv, __doc__.split("\n")[0], DemoConfig(), FLAGS)
    tf.compat.v1.set_random_seed(cfg.seed)
    config = init(train_steps=cfg.steps, eval_steps=cfg.eval_steps, use_dynamic=True)
    world = SyntheticWorld(cfg, seed=cfg.seed)
    stream = cfg.seed + 1000 * config.rank_id  # under horovodrun each rank reads its own batches

    train_specs, eval_specs = make_feature_specs(cfg), make_feature_specs(cfg)
    train_iter = tf.compat.v1.data.make_initializable_iterator(
        make_dataset(world, cfg, train_specs, seed=stream + 1, num_batches=cfg.steps, is_training=True))
    train_batch = train_iter.get_next()
    eval_iter = tf.compat.v1.data.make_initializable_iterator(
        make_dataset(world, cfg, eval_specs, seed=stream + 2, num_batches=cfg.eval_steps, is_training=False))
    eval_batch = eval_iter.get_next()

    tables = create_tables(cfg)
    train_emb = lookup_features(tables, train_specs, is_train=True)
    train_out = build_model(train_emb, train_batch, cfg.hidden_units, cfg.seed)
    train_op = make_train_op(train_out.loss, cfg)
    eval_emb = lookup_features(tables, eval_specs, is_train=False)
    eval_out = build_model(eval_emb, eval_batch, cfg.hidden_units, cfg.seed)
    start_asc_pipeline()
    logger.info("little demo: %d steps of %d, optimizer %s", cfg.steps, cfg.batch_size, cfg.optimizer)

    saver = tf.compat.v1.train.Saver() if cfg.checkpoint_dir else None  # dense variables and table shards
    with tf.compat.v1.Session() as sess:
        sess.run([tf.compat.v1.global_variables_initializer(), train_iter.initializer])
        train(sess, train_op, train_out.loss, cfg, tables)
        if saver is not None:  # every rank writes its own table shards
            print(f"checkpoint {saver.save(sess, os.path.join(cfg.checkpoint_dir, 'model'), global_step=cfg.steps)}",
                  flush=True)
        sess.run(eval_iter.initializer)
        evaluate(sess, eval_out, eval_batch, cfg, world, tables)
    terminate_config_initializer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
