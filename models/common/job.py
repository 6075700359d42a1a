"""One model-zoo job: switches, ``init()``, data, tables, train, evaluate, report.

A model's ``main_mxrec.py`` describes itself with a :class:`ModelSpec` and calls :func:`run_job`:

    spec = ModelSpec(name="dlrm", schema=CRITEO_SCHEMA, tasks=("ctr",),
                     tables=(TableSpec("sparse_table", 16),), build=model.logits)
    run_job(spec, train_cfg)

``build(embeddings, batch)`` maps ``{table name: float32 [B, F, dim]}`` and the batch (see
``data.py``) to logits float32 [B, T], one column per task; it is called twice (training and
evaluation graphs) and must share its variables between the calls (``AUTO_REUSE``). An optional
``prepare(batch) -> batch`` runs first, e.g. to append ids of its own to ``sparse_feature``; the
tables then make room for ``extra_keys`` more keys.
"""
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import tensorflow as tf

from mx_rec.config.initializer import ConfigInitializer
from mx_rec.core.asc.manager import start_asc_pipeline
from mx_rec.graph.modifier import modify_graph_and_start_emb_cache
from mx_rec.inference.signature import set_prediction
from mx_rec.util.initialize import get_rank_id, get_rank_size, init, terminate_config_initializer

from common import data, embedding, evaluation, training
from common.config import TrainConfig
from common.embedding import TableSpec
from common.records import Schema
from common.switches import JobSwitches, read_switches

BuildFn = Callable[[Dict[str, tf.Tensor], Dict[str, tf.Tensor]], tf.Tensor]


@dataclass(frozen=True)
class ModelSpec:
    """What :func:`run_job` needs to know about a model (see the module docstring)."""

    name: str
    schema: Schema
    tasks: Tuple[str, ...]
    tables: Tuple[TableSpec, ...]
    build: BuildFn
    prepare: Optional[Callable[[Dict[str, tf.Tensor]], Dict[str, tf.Tensor]]] = None
    extra_keys: int = 0


def insertable_keys(info: data.DataInfo, cfg: TrainConfig) -> int:
    """Distinct keys training can insert: ``cfg.table_keys``, else ``meta.json``'s distinct training
    keys or vocabulary size, else the bound samples * fields."""
    if cfg.table_keys:
        return cfg.table_keys
    for key in ("train_distinct_keys", "vocab_size"):
        if info.meta.get(key):
            return int(info.meta[key])
    return info.train.samples * info.width("sparse_feature")


def task_loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Sum over tasks of the mean sigmoid cross-entropy: logits, labels float32 [B, T] -> scalar."""
    per_task = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits), axis=0)
    return tf.reduce_sum(per_task, name="loss")


@dataclass
class _Graph:
    """The ops of one job, built by :func:`_build_graph`."""

    initializers: Tuple[tf.Operation, ...]
    train_op: tf.Operation
    loss: tf.Tensor
    eval_probs: tf.Tensor
    eval_batch: Dict[str, tf.Tensor]
    tables: Dict[str, object]
    metrics: evaluation.MetricsCombiner
    keys: int
    note: str


def _build_graph(spec: ModelSpec, cfg: TrainConfig, switches: JobSwitches, info: data.DataInfo, steps: int,
                 n_eval: int, ssd_path: str) -> _Graph:
    """Pipelines, hash optimizers, tables (in that order: DDR tables make optimizer slots when
    created), lookups, model, train op and evaluation ops."""
    rank, ranks = get_rank_id(), get_rank_size()
    train_iter, train_batch = data.make_iterator(
        data.train_dataset(info, cfg.batch_size, steps, rank, ranks, cfg.seed, cfg.shuffle_buffer))
    eval_iter, eval_batch = data.make_iterator(data.eval_dataset(info, cfg.eval_batch_size, n_eval, rank, ranks))
    read_batch = eval_batch  # what the files hold: the inputs of an exported model (tools/export_local.py)
    if spec.prepare is not None:
        train_batch, eval_batch = spec.prepare(train_batch), spec.prepare(eval_batch)
    optimizers = training.make_sparse_optimizers(spec.tables, cfg, switches, steps)
    keys = insertable_keys(info, cfg) + spec.extra_keys
    batch_keys = max(cfg.batch_size, cfg.eval_batch_size) * int(train_batch["sparse_feature"].shape[1])
    tables = embedding.create_tables(spec.tables, cfg, switches, keys, ssd_path, batch_keys, ranks)

    def embeddings(batch, is_train: bool) -> Dict[str, tf.Tensor]:
        prefix = "train" if is_train else "eval"
        return {name: embedding.lookup_fields(table, batch["sparse_feature"], is_train, switches,
                                              cfg.access_threshold, prefix)
                for name, table in tables.items()}

    loss = task_loss(spec.build(embeddings(train_batch, True), train_batch), train_batch["label"])
    train_op = training.make_train_op(loss, tables, optimizers, cfg, steps)
    eval_probs = tf.sigmoid(spec.build(embeddings(eval_batch, False), eval_batch))
    initializers = (train_iter.initializer, eval_iter.initializer)
    rebuilt_batch = {}
    if switches.use_modify_graph:
        # the SDK rebuilds both pipelines; fetches and initializers must come from the rebuilt iterators
        modify_graph_and_start_emb_cache()
        params = ConfigInitializer.get_instance().train_params_config
        initializers = (params.get_initializer(True), params.get_initializer(False))
        eval_batch = rebuilt_batch = params.get_target_batch(False)  # read_batch: what lookups recorded
    set_prediction(eval_probs, read_batch, aliases=rebuilt_batch)
    return _Graph(initializers, train_op, loss, eval_probs, eval_batch, tables,
                  evaluation.MetricsCombiner(2 * len(spec.tasks), ranks), keys, optimizers.note)


def run_job(spec: ModelSpec, cfg: TrainConfig) -> Dict[str, evaluation.TaskMetrics]:
    """Train ``spec`` on ``cfg``'s data, evaluate it, print and (rank 0) write the figures.

    Returns:
        task -> metrics over the whole test split.
    """
    wall_start = time.perf_counter()
    tf.compat.v1.disable_eager_execution()
    switches = read_switches()
    tf.compat.v1.set_random_seed(cfg.seed)
    config = init(**switches.init_kwargs())
    rank, ranks = config.rank_id, config.rank_size
    try:
        info = data.load_data_info(Path(cfg.resolved_data_path()), spec.schema)
        steps = cfg.steps or data.train_steps(info, cfg.batch_size, ranks, cfg.epochs)
        n_eval = data.eval_steps(info, cfg.eval_batch_size, ranks, cfg.eval_steps)
        with embedding.ssd_folder(switches.cache_mode, cfg.ssd_data_path, f"{spec.name}_rank{rank}") as ssd_path:
            graph = _build_graph(spec, cfg, switches, info, steps, n_eval, ssd_path)
            start_asc_pipeline()
            print(f"{spec.name}: rank {rank} of {ranks}; {steps} steps of {cfg.batch_size} samples per rank, "
                  f"{n_eval} eval batches of {cfg.eval_batch_size}; {switches.describe()}", flush=True)
            print(f"data {info.root}: {info.train.samples} train / {info.test.samples} test samples; tables "
                  f"{', '.join(f'{t.name}(dim {t.dim})' for t in spec.tables)} sized for {graph.keys} keys"
                  + (f"; {graph.note}" if graph.note else ""), flush=True)
            saver = tf.compat.v1.train.Saver() if cfg.checkpoint_dir else None
            with tf.compat.v1.Session() as sess:
                sess.run([tf.compat.v1.global_variables_initializer(), *graph.initializers])
                stats = training.train_loop(sess, graph.train_op, graph.loss, steps, cfg.batch_size, cfg.log_every,
                                            graph.tables)
                if saver is not None:  # every rank: each writes its table shards
                    path = saver.save(sess, os.path.join(cfg.checkpoint_dir, "model"), global_step=steps)
                    print(f"checkpoint {path}", flush=True)
                results, eval_rate = evaluation.evaluate(sess, graph.eval_probs, graph.eval_batch, n_eval,
                                                         spec.tasks, graph.metrics, graph.tables)
    finally:
        terminate_config_initializer()
    if rank == 0 and cfg.savedmodel_dir:  # every rank's shards are in the manifest once rank 0's save returned
        from mx_rec.inference.saved_model import export_savedmodel
        if not cfg.checkpoint_dir:
            raise SystemExit("main_mxrec.py: error: --savedmodel_dir needs --checkpoint_dir (it exports it)")
        exported = export_savedmodel(cfg.checkpoint_dir, cfg.savedmodel_dir)
        print(f"savedmodel {exported.output}", flush=True)
    wall = time.perf_counter() - wall_start
    print(f"done in {wall:.1f} s (train {stats.seconds:.1f} s, {stats.samples_per_sec * ranks:.1f} samples/s "
          f"over {ranks} rank(s))", flush=True)
    if rank == 0 and cfg.metrics_file:
        _write_metrics(Path(cfg.metrics_file), spec, cfg, switches.describe(), ranks, stats, results, eval_rate,
                       wall, info)
    return results


def _write_metrics(path: Path, spec: ModelSpec, cfg: TrainConfig, switches: str, ranks: int,
                   stats: training.TrainStats, results: Dict[str, evaluation.TaskMetrics], eval_rate: float,
                   wall: float, info: data.DataInfo) -> None:
    report = {
        "model": spec.name, "switches": switches, "ranks": ranks, "config": asdict(cfg),
        "data": {"path": str(info.root), "train_samples": info.train.samples, "test_samples": info.test.samples},
        "train": {"steps": stats.steps, "final_loss": stats.final_loss, "seconds": stats.seconds,
                  "samples_per_sec_per_rank": stats.samples_per_sec,
                  "samples_per_sec": stats.samples_per_sec * ranks},
        "eval": {task: asdict(m) for task, m in results.items()},
        "eval_samples_per_sec_per_rank": eval_rate,
        "wall_seconds": wall,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8")
    tmp.replace(path)
