"""Global AUC and log loss on 2 ranks equal sklearn's over the gathered predictions (the histogram AUC
itself, in one process: ``tests/unit/metrics``)."""
import json

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

from tests.parallel.harness import run_job
from tests.paths import REPO

JOB = REPO / "tests" / "jobs" / "metrics_job.py"


def test_two_ranks_report_the_auc_and_log_loss_of_all_predictions(tmp_path):
    run_job(JOB, [tmp_path], ranks=2)
    results = [json.loads((tmp_path / f"metrics_rank{r}.json").read_text()) for r in range(2)]
    assert results[0] == results[1], "every rank gets the same global figures"
    shares = [np.load(tmp_path / f"share_rank{r}.npz") for r in range(2)]
    labels = np.concatenate([s["labels"] for s in shares])
    scores = np.concatenate([s["scores"] for s in shares])
    assert results[0]["samples"] == labels.shape[0] == 20_000
    assert abs(results[0]["auc"] - roc_auc_score(labels, scores)) < 1e-3
    assert abs(results[0]["log_loss"] - log_loss(labels, scores.astype(np.float64))) < 1e-6
