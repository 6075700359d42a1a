"""An Estimator script written the way Rec SDK's Estimator demo is (``NPUEstimator`` -> ``tf.estimator.Estimator``).

``create_table`` runs inside ``model_fn`` (so again for every train / evaluate / predict, each in a
new graph); the tables come back from ``model_dir``'s checkpoints, saved by the Estimator itself.
Hooks as Rec SDK scripts pass them: ``OrphanLookupKeySlicerHook``, ``LookupSubgraphSlicerHook``,
``ACGPushOpsToDatasetHook`` (with ``USE_MODIFY_GRAPH=1``), ``GraphModifierHook``, ``EvictHook``.

    python estimator_demo.py --model_dir DIR --run_mode train|evaluate|predict|train_and_evaluate
                             [--max_steps 40] [--save_checkpoints_steps 10] [--eval_steps 4]
                             [--out results.json]

``--run_mode`` may also list several calls made one after another by the same process, e.g.
``train@10,evaluate,predict,train_and_evaluate@20`` (``@N``: that call's ``max_steps``;
``dir=PATH``: the calls after it use ``model_dir`` PATH).

Switches read as Rec SDK's run.sh sets them: ``USE_MODIFY_GRAPH`` (1: plain ids from the Estimator's
iterator and graph modification; 0: FeatureSpec mode), ``USE_DYNAMIC`` (0: static shapes,
``send_count``), ``CACHE_MODE`` (``DDR``: the user table's device rows cache a quarter of its ids).

Batches are a function of (rank, batch index); a train call starts at the step of ``model_dir``'s
latest checkpoint and skips the batches already trained, so a resumed job sees the batches an
uninterrupted one sees. Item ids arrive as strings (``StringToNumber`` runs before their lookup).
Writes ``--out`` (rank 0; other ranks add ``.rank<r>``), per call: the step it started from,
per-step losses (from a logging hook), evaluation metrics, predictions, the checkpoints in
``model_dir`` and the step it ended at.
"""
import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mx_rec.core.asc.helper import FeatureSpec, get_asc_insert_func  # noqa: E402
from mx_rec.core.embedding import create_table, sparse_lookup  # noqa: E402
from mx_rec.core.feature_process import EvictHook  # noqa: E402
from mx_rec.graph.acg_push_ops import ACGPushOpsToDatasetHook  # noqa: E402
from mx_rec.graph.hooks import LookupSubgraphSlicerHook, OrphanLookupKeySlicerHook  # noqa: E402
from mx_rec.graph.modifier import GraphModifierHook  # noqa: E402
from mx_rec.optimizers.lazy_adam import create_hash_optimizer  # noqa: E402
from mx_rec.util.communication import hccl_ops  # noqa: E402
from mx_rec.util.initialize import init, terminate_config_initializer  # noqa: E402
from mx_rec.util.ops import import_host_pipeline_ops  # noqa: E402
from mx_rec.util.variable import get_dense_and_sparse_variable  # noqa: E402

tf.compat.v1.disable_eager_execution()

BATCH, ITEMS, DIM, USERS, ITEM_POOL = 64, 2, 8, 500, 200
SEED = 11


def _batch(rank: int, index: int, evaluation: bool) -> dict:
    rng = np.random.default_rng([SEED, rank, index, int(evaluation)])
    users = np.minimum(rng.zipf(1.2, BATCH), USERS).astype(np.int64) * 17
    items = np.minimum(rng.zipf(1.3, (BATCH, ITEMS)), ITEM_POOL).astype(np.int64)
    # a planted rule the tables can learn: a user's id class and the first item's parity decide the click
    logit = np.where(users % 3 == 0, 2.0, -1.5) + np.where(items[:, 0] % 2 == 0, 1.0, -1.0)
    label = (rng.random(BATCH) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    stamp = np.full(BATCH, 1_700_000_000 + 60 * index, np.int64)  # one batch a minute
    return {"user_id": users, "item_id": np.char.encode(items.astype(str)), "label": label, "timestamp": stamp}


def _latest_step(model_dir: str) -> int:
    latest = tf.train.latest_checkpoint(model_dir)
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def make_input_fn(params, rank: int, mode: str, specs):
    def input_fn():
        if mode == "train":
            first, count = _latest_step(params.model_dir), params.max_steps
        else:
            first, count = 0, params.eval_steps
        indices = list(range(first, count))
        signature = {"user_id": tf.TensorSpec([BATCH], tf.int64), "item_id": tf.TensorSpec([BATCH, ITEMS], tf.string),
                     "label": tf.TensorSpec([BATCH], tf.float32), "timestamp": tf.TensorSpec([BATCH], tf.int64)}
        dataset = tf.data.Dataset.from_generator(lambda: (_batch(rank, i, mode != "train") for i in indices),
                                                 output_signature=signature)
        if not params.modify_graph:  # FeatureSpec mode: ids are numbers before the insert function
            dataset = dataset.map(lambda b: {**b, "item_id": tf.strings.to_number(b["item_id"], tf.int64)})
            dataset = dataset.map(get_asc_insert_func(tgt_key_specs=specs[mode == "train"], is_training=mode == "train"))
        return dataset.prefetch(2)
    return input_fn


EVICT = dict(access_threshold=2, eviction_threshold=10 ** 8)  # admitted at the 2nd sight; never evicted in a test run


def make_feature_specs(training: bool):
    if not training:
        return [FeatureSpec("user_id", table_name="user_table"), FeatureSpec("item_id", table_name="item_table")]
    return [FeatureSpec("user_id", table_name="user_table", **EVICT), FeatureSpec("item_id", table_name="item_table"),
            FeatureSpec("timestamp", is_timestamp=True)]


def make_model_fn(opts):
    def model_fn(features, labels, mode):
        training = mode == tf.estimator.ModeKeys.TRAIN
        init_fn = tf.compat.v1.truncated_normal_initializer(stddev=0.05, seed=SEED)
        # the hash optimizer before the tables, in every mode: DDR tables make their slots when created
        sparse_opt = create_hash_optimizer(learning_rate=0.05)
        ddr = os.environ.get("CACHE_MODE", "HBM") == "DDR"  # device rows: a cache of a quarter of the ids
        user_table = create_table(key_dtype=tf.int64, dim=DIM, name="user_table", emb_initializer=init_fn,
                                  device_vocabulary_size=USERS * 17 // (4 if ddr else 1) + 1,
                                  host_vocabulary_size=USERS * 17 + 1 if ddr else 0)
        item_table = create_table(key_dtype=tf.int64, dim=DIM, name="item_table", emb_initializer=init_fn,
                                  device_vocabulary_size=ITEM_POOL + 1, host_vocabulary_size=0)
        if opts.modify_graph:
            item_ids = tf.strings.to_number(features["item_id"], out_type=tf.int64)
            if training:
                import_host_pipeline_ops().return_timestamp(features["timestamp"])
            user_emb = sparse_lookup(user_table, features["user_id"], is_train=training, modify_graph=True,
                                     name="user_lookup", send_count=BATCH * ITEMS,
                                     access_and_evict_config=EVICT if training else None)
            item_emb = sparse_lookup(item_table, item_ids, is_train=training, modify_graph=True, name="item_lookup",
                                     send_count=BATCH * ITEMS)
        else:
            specs = opts.specs[training]
            user_emb = sparse_lookup(user_table, specs[0], is_train=training, name="user_lookup",
                                     send_count=BATCH * ITEMS)
            item_emb = sparse_lookup(item_table, specs[1], is_train=training, name="item_lookup",
                                     send_count=BATCH * ITEMS)
        x = tf.concat([user_emb, tf.reshape(item_emb, [BATCH, ITEMS * DIM])], axis=1)
        hidden = tf.compat.v1.layers.dense(x, 16, tf.nn.relu, name="hidden",
                                           kernel_initializer=tf.compat.v1.glorot_uniform_initializer(seed=SEED))
        logits = tf.squeeze(tf.compat.v1.layers.dense(hidden, 1, name="logit", kernel_initializer=tf.compat.v1
                                                      .glorot_uniform_initializer(seed=SEED + 1)), 1)
        prob = tf.sigmoid(logits)
        if mode == tf.estimator.ModeKeys.PREDICT:
            return tf.estimator.EstimatorSpec(mode, predictions={"prob": prob, "label": features["label"]})
        label = features["label"]
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=label, logits=logits))
        if mode == tf.estimator.ModeKeys.EVAL:
            metrics = {"auc": tf.compat.v1.metrics.auc(label, prob),
                       "accuracy": tf.compat.v1.metrics.accuracy(label, tf.round(prob))}
            return tf.estimator.EstimatorSpec(mode, loss=loss, eval_metric_ops=metrics)
        step = tf.compat.v1.train.get_global_step()
        dense_vars, sparse_vars = get_dense_and_sparse_variable()
        dense_opt = tf.compat.v1.train.AdamOptimizer(0.01)
        dense_grads = [(hccl_ops.allreduce(g, "mean"), v) for g, v in dense_opt.compute_gradients(loss, dense_vars)]
        train_op = tf.group(dense_opt.apply_gradients(dense_grads, global_step=step),
                            sparse_opt.apply_gradients(sparse_opt.compute_gradients(loss, sparse_vars)))
        # every step's loss, in order (the first is that of step start_step + 1)
        log = tf.estimator.LoggingTensorHook({"loss": loss}, every_n_iter=1,
                                             formatter=lambda v: opts.losses.append(float(v["loss"])) or "")
        return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op, training_hooks=[log])
    return model_fn


def _hooks(params, training: bool):
    hooks = [OrphanLookupKeySlicerHook(), LookupSubgraphSlicerHook(op_types=["StringToNumber"])]
    if params.modify_graph:
        hooks.append(ACGPushOpsToDatasetHook(dump_graph=False))
    hooks.append(GraphModifierHook(modify_graph=params.modify_graph))
    if training:
        hooks.append(EvictHook(evict_enable=True, evict_time_interval=10 ** 6, evict_step_interval=5))
    return hooks


def run_phase(est, params, rank: int, mode: str) -> dict:
    """One Estimator call (``mode``) over ``params.model_dir``; what it gave."""
    params.losses = []
    result = {"mode": mode, "start_step": _latest_step(params.model_dir)}
    train_input = make_input_fn(params, rank, "train", params.specs)
    eval_input = make_input_fn(params, rank, "eval", params.specs)
    if mode == "train":
        est.train(train_input, max_steps=params.max_steps, hooks=_hooks(params, True))
    elif mode == "evaluate":
        metrics = est.evaluate(eval_input, steps=params.eval_steps, hooks=_hooks(params, False))
        result["metrics"] = {k: float(v) for k, v in metrics.items()}
    elif mode == "predict":
        preds = list(est.predict(eval_input, hooks=_hooks(params, False), yield_single_examples=False))
        result["predictions"] = [p["prob"].tolist() for p in preds]
    else:
        train_spec = tf.estimator.TrainSpec(train_input, max_steps=params.max_steps, hooks=_hooks(params, True))
        eval_spec = tf.estimator.EvalSpec(eval_input, steps=params.eval_steps, hooks=_hooks(params, False),
                                          throttle_secs=0)
        metrics, _ = tf.estimator.train_and_evaluate(est, train_spec, eval_spec)
        result["metrics"] = {k: float(v) for k, v in metrics.items()}
    result["losses"] = params.losses
    state = tf.compat.v1.train.get_checkpoint_state(params.model_dir)
    result["checkpoints"] = [int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths] if state else []
    result["end_step"] = _latest_step(params.model_dir)
    return result


MODES = ("train", "evaluate", "predict", "train_and_evaluate")


def _phases(text: str):
    """``--run_mode`` as Rec SDK scripts take it (one mode), or several: ``train@10,evaluate,predict``
    (``@N``: that call's max_steps; ``dir=PATH``: the calls after it use model_dir PATH)."""
    out = []
    for item in text.split(","):
        if item.startswith("dir="):
            out.append(("dir", item[4:]))
            continue
        mode, _, steps = item.partition("@")
        if mode not in MODES:
            raise SystemExit(f"--run_mode: unknown mode {mode!r} in {text!r}; modes: {', '.join(MODES)}")
        out.append((mode, int(steps) if steps else None))
    return out


def make_estimator(params) -> tf.estimator.Estimator:
    run_config = tf.estimator.RunConfig(model_dir=params.model_dir, tf_random_seed=SEED,
                                        save_checkpoints_steps=params.save_checkpoints_steps,
                                        keep_checkpoint_max=5, save_summary_steps=None, log_step_count_steps=None)
    return tf.estimator.Estimator(model_fn=make_model_fn(params), model_dir=params.model_dir, config=run_config)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--run_mode", default="train_and_evaluate",
                        help=f"one of {', '.join(MODES)}, or several, comma-separated, each optionally @max_steps")
    parser.add_argument("--max_steps", type=int, default=40)
    parser.add_argument("--save_checkpoints_steps", type=int, default=10)
    parser.add_argument("--eval_steps", type=int, default=4)
    parser.add_argument("--out", default="")
    params = parser.parse_args()
    phases = _phases(params.run_mode)
    params.modify_graph = os.environ.get("USE_MODIFY_GRAPH", "0") == "1"
    params.specs = {True: make_feature_specs(True), False: make_feature_specs(False)}
    config = init(train_steps=params.max_steps, eval_steps=params.eval_steps,
                  use_dynamic=os.environ.get("USE_DYNAMIC", "1") == "1")
    rank = config.rank_id
    est = make_estimator(params)
    results = {"rank": rank, "ranks": config.rank_size, "modify_graph": params.modify_graph, "phases": []}
    default_steps = params.max_steps
    for mode, steps in phases:
        if mode == "dir":
            params.model_dir = steps
            est = make_estimator(params)
            continue
        params.max_steps = steps or default_steps
        phase = run_phase(est, params, rank, mode)
        phase["model_dir"] = params.model_dir
        results["phases"].append(phase)
        summary = {k: v for k, v in phase.items() if k not in ("predictions", "losses")}
        print(f"estimator_demo rank {rank} {mode} done: {json.dumps(summary)}", flush=True)
    if params.out:
        with open(params.out if rank == 0 else f"{params.out}.rank{rank}", "w", encoding="utf-8") as f:
            json.dump(results, f)
    terminate_config_initializer()


if __name__ == "__main__":
    main()
