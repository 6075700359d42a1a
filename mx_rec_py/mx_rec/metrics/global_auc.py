"""AUC and log loss over every rank's predictions, combined with collectives.

Each rank accumulates, over its evaluation batches, a histogram of predicted probabilities in
``num_buckets`` equal buckets, separately for positive and negative labels, plus the sum of log
losses and the sample count. ``result()`` all-reduces these (one op built up front, so it also
works on a finalized graph) and computes AUC from the merged histograms: pairs in the same
bucket count half, so the error against an exact AUC is bounded by the bucket width's share of
tied pairs (about 1e-4 with the default 2**16 buckets). Log loss is exact.
"""
from typing import Dict

import numpy as np
import tensorflow as tf

from mx_rec.communication import collectives

EPSILON = 1e-7


def auc_from_histograms(positives: np.ndarray, negatives: np.ndarray) -> float:
    """AUC from counts of positives and negatives per prediction bucket (ascending), ties counted half;
    NaN when every label is of one class."""
    negatives_below = np.cumsum(negatives) - negatives
    wins = float(np.sum(positives * (negatives_below + 0.5 * negatives)))
    pairs = float(positives.sum()) * float(negatives.sum())
    return wins / pairs if pairs else float("nan")  # one class only: AUC is undefined


class GlobalMetrics:
    """Accumulates this rank's predictions; ``result`` gives the job's AUC and log loss.

    Build it (in graph mode) before the graph is finalized; call ``update`` with numpy arrays per
    batch, then ``result(session)`` on every rank.

    Args:
        num_buckets: histogram resolution for AUC.
    """

    def __init__(self, num_buckets: int = 1 << 16) -> None:
        self.num_buckets = num_buckets
        self._hist = np.zeros((2, num_buckets), dtype=np.float64)
        self._loss_sum = 0.0
        self._count = 0.0
        self._local = tf.compat.v1.placeholder(tf.float64, [2 * num_buckets + 2], name="mxrec_metrics_local")
        self._combined = collectives.allreduce(self._local, "sum", name="mxrec_metrics_allreduce")

    def reset(self) -> None:
        """Forget the batches added so far (for the next evaluation)."""
        self._hist[:] = 0.0
        self._loss_sum = self._count = 0.0

    def update(self, labels: np.ndarray, predictions: np.ndarray) -> None:
        """Add a batch: labels 0/1 and predicted probabilities, any matching shapes."""
        labels = np.asarray(labels, dtype=np.float64).ravel()
        p = np.clip(np.asarray(predictions, dtype=np.float64).ravel(), 0.0, 1.0)
        buckets = np.minimum((p * self.num_buckets).astype(np.int64), self.num_buckets - 1)
        positive = labels > 0.5
        self._hist[1] += np.bincount(buckets[positive], minlength=self.num_buckets)
        self._hist[0] += np.bincount(buckets[~positive], minlength=self.num_buckets)
        q = np.clip(p, EPSILON, 1 - EPSILON)
        self._loss_sum += float(-np.sum(labels * np.log(q) + (1 - labels) * np.log(1 - q)))
        self._count += labels.shape[0]

    def result(self, session) -> Dict[str, float]:
        """{"auc", "log_loss", "positives", "samples"} over all ranks (every rank must call it)."""
        local = np.concatenate([self._hist[0], self._hist[1], [self._loss_sum, self._count]])
        combined = session.run(self._combined, {self._local: local})
        n = self.num_buckets
        return {"auc": auc_from_histograms(combined[n:2 * n], combined[:n]),
                "log_loss": combined[2 * n] / combined[2 * n + 1], "positives": int(combined[n:2 * n].sum()),
                "samples": int(combined[2 * n + 1])}
