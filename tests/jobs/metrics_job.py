"""Each rank scores its share of a fixed prediction set; writes the global metrics and its share.

    metrics_job.py OUT
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mx_rec.metrics.global_auc import GlobalMetrics  # noqa: E402
from mx_rec.util.initialize import init  # noqa: E402

tf.compat.v1.disable_eager_execution()


def main(out: str) -> None:
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


if __name__ == "__main__":
    main(sys.argv[1])
