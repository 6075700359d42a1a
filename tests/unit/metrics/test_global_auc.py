"""The global AUC's histogram arithmetic, in one process (``tests/parallel/test_global_metrics.py``
runs the metrics on 2 ranks)."""
import numpy as np

from mx_rec.metrics.global_auc import auc_from_histograms


def test_histogram_auc_counts_ties_half():
    assert auc_from_histograms(np.array([0, 1]), np.array([1, 0])) == 1.0
    assert auc_from_histograms(np.array([1, 0]), np.array([1, 0])) == 0.5
