"""The batches and initializer the tier tests train on (``tests/unit/storage/test_tiers.py`` and
``test_lookahead.py``): one data set so that DDR, SSD and lookahead runs compare against the same HBM run."""
import numpy as np
import tensorflow as tf

B, F, D, STEPS = 64, 4, 8, 50
INIT = tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=21)


def zipf_batches():
    """Half the ids from a hot Zipf set, half fresh: ~6,000 distinct keys over 50 steps.

    Returns (ids int64 [STEPS, B, F] with about 5% padding -1, labels float32 [STEPS, B], weights float32 [F, D]).
    """
    rng = np.random.default_rng(8)
    hot = np.minimum(rng.zipf(1.2, (STEPS, B, F // 2)), 300) * 7 + 1
    cold = rng.integers(10_000, 10_000_000, (STEPS, B, F // 2))
    ids = np.concatenate([hot, cold], axis=2).astype(np.int64)
    ids[rng.random(ids.shape) < 0.05] = -1
    return ids, rng.normal(size=(STEPS, B)).astype(np.float32), rng.normal(size=(F, D)).astype(np.float32)
