"""Global AUC and log loss on 2 ranks equal sklearn's over the gathered predictions (the histogram AUC
itself, in one process: ``tests/unit/metrics``).

The rank code lives here too: ``run_job(__name__, ...)`` runs this module under horovodrun, and each
rank runs ``rank_main``; the test below reads what the ranks wrote.

    python -m tests.parallel.test_global_metrics OUT
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.metrics import log_loss, roc_auc_score  # noqa: E402

from mx_rec.metrics.global_auc import GlobalMetrics  # noqa: E402
from mx_rec.util.initialize import init  # noqa: E402
from tests.parallel.harness import run_job  # noqa: E402


def rank_main(out: str) -> None:
    """One rank: score its share of a fixed prediction set; write the global metrics and its share."""
    tf.compat.v1.disable_eager_execution()
    config = init()
    rng = np.random.default_rng(7)
    labels = (rng.random(20_000) < 0.3).astype(np.float32)
    scores = 1 / (1 + np.exp(-(rng.normal(size=labels.shape) + 1.2 * labels)))
    metrics = GlobalMetrics()
    mine = np.arange(labels.shape[0]) % config.rank_size == config.rank_id
    for batch in np.array_split(np.flatnonzero(mine), 7):
        metrics.update(labels[batch], scores[batch])
    with tf.compat.v1.Session() as sess:
        result = metrics.result(sess)
    with open(os.path.join(out, f"metrics_rank{config.rank_id}.json"), "w") as f:
        json.dump(result, f)
    np.savez(os.path.join(out, f"share_rank{config.rank_id}.npz"), labels=labels[mine], scores=scores[mine])


def test_two_ranks_report_the_auc_and_log_loss_of_all_predictions(tmp_path):
    run_job(__name__, [tmp_path], ranks=2)
    results = [json.loads((tmp_path / f"metrics_rank{r}.json").read_text()) for r in range(2)]
    assert results[0] == results[1], "every rank gets the same global figures"
    shares = [np.load(tmp_path / f"share_rank{r}.npz") for r in range(2)]
    labels = np.concatenate([s["labels"] for s in shares])
    scores = np.concatenate([s["scores"] for s in shares])
    assert results[0]["samples"] == labels.shape[0] == 20_000
    assert abs(results[0]["auc"] - roc_auc_score(labels, scores)) < 1e-3
    assert abs(results[0]["log_loss"] - log_loss(labels, scores.astype(np.float64))) < 1e-6


if __name__ == "__main__":
    rank_main(sys.argv[1])
