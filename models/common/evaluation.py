"""Evaluation: AUC and log loss of every task over the whole test split, combined over ranks.

Each rank predicts its shard (padding samples are dropped by their ``valid`` flag). On one rank
the metrics are exact (sklearn); with several, each task's predictions go into
``mx_rec.metrics.global_auc.GlobalMetrics``, whose all-reduced histograms give every rank the same
global AUC (to about 1e-4) and exact log loss without any rank holding all predictions.
"""
import math
import time
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from sklearn.metrics import log_loss, roc_auc_score

from mx_rec.metrics.global_auc import GlobalMetrics
from mx_rec.util.log import logger

EPS = 1e-7


@dataclass
class TaskMetrics:
    """Metrics of one task: AUC (nan when the labels hold one class), mean log loss, positives, samples."""

    auc: float
    logloss: float
    positives: int
    samples: int


class MetricsCombiner:
    """Combines per-rank predictions into global metrics; build before the session runs.

    Args:
        width: 2 * tasks (the columns of the [n, 2T] arrays: T probabilities, then T labels).
        rank_size: ranks of the job.
    """

    def __init__(self, width: int, rank_size: int) -> None:
        self.tasks = width // 2
        self.per_task = [GlobalMetrics() for _ in range(self.tasks)] if rank_size > 1 else None

    def __call__(self, sess: tf.compat.v1.Session, values: np.ndarray) -> List[TaskMetrics]:
        """values: float [n, 2T] of this rank -> each task's metrics over all ranks."""
        n = self.tasks
        if self.per_task is None:
            return [task_metrics(values[:, n + i].astype(np.float64), values[:, i].astype(np.float64))
                    for i in range(n)]
        out = []
        for i, metrics in enumerate(self.per_task):
            metrics.reset()
            metrics.update(values[:, n + i], values[:, i])
            r = metrics.result(sess)
            out.append(TaskMetrics(r["auc"], r["log_loss"], r["positives"], r["samples"]))
        return out


def task_metrics(labels: np.ndarray, probs: np.ndarray) -> TaskMetrics:
    """labels, probs: float [n] -> metrics."""
    positives = int(labels.sum())
    if labels.size == 0:
        return TaskMetrics(float("nan"), float("nan"), 0, 0)
    auc = roc_auc_score(labels, probs) if 0 < positives < labels.size else float("nan")
    loss = log_loss(labels, np.clip(probs, EPS, 1 - EPS), labels=[0, 1])
    return TaskMetrics(float(auc), float(loss), positives, int(labels.size))


def evaluate(sess: tf.compat.v1.Session, probs: tf.Tensor, batch: Mapping[str, tf.Tensor], steps: int,
             tasks: Sequence[str], combiner: MetricsCombiner, tables: Optional[Mapping[str, object]] = None
             ) -> Tuple[Dict[str, TaskMetrics], float]:
    """Predict ``steps`` batches, then print ``eval <task> auc A logloss L positives P samples N``.

    Args:
        probs: float32 [B, T], the model's probabilities of the evaluation batch.
        batch: the evaluation batch (``label`` [B, T], ``valid`` [B]).
        tasks: names of the T tasks, in label-column order.
        tables: when given, a warning is logged if evaluation inserted keys (it must not).

    Returns:
        (task -> metrics over all ranks, samples/s of this rank's prediction).
    """
    sizes = {name: t.size() for name, t in (tables or {}).items()}
    rows = []
    start = time.perf_counter()
    for _ in range(steps):
        p, label, valid = sess.run([probs, batch["label"], batch["valid"]])
        keep = valid > 0.5
        rows.append(np.concatenate([p[keep], label[keep]], axis=1))
    seconds = time.perf_counter() - start
    local = np.concatenate(rows) if rows else np.zeros([0, 2 * len(tasks)], np.float32)
    rate = steps * int(batch["valid"].shape[0]) / seconds if seconds > 0 else math.nan
    results = {}
    for task, m in zip(tasks, combiner(sess, local)):
        results[task] = m
        print(f"eval {task} auc {m.auc:.4f} logloss {m.logloss:.4f} positives {m.positives} samples {m.samples}",
              flush=True)
    for name, table in (tables or {}).items():
        if table.size() != sizes[name]:
            logger.warning("%s grew from %d to %d keys during evaluation (is_train=False must not insert)",
                           name, sizes[name], table.size())
    return results, rate
