"""The batch pool every system trains on: generated once by the parent, read by each worker.

Arrays (saved as .npy in a scratch folder):
    ids     int64   [pool_batches, batch_size, fields]  Zipf(zipf_a) ranks over num_keys, scattered to
                                                        positive int64 keys (``lookup_update.make_pool``)
    dense   float32 [pool_batches, batch_size, dense]   log1p of exponential draws (Criteo's counts, tamed)
    labels  float32 [pool_batches, batch_size, 1]       Bernoulli(0.25) clicks
"""
from pathlib import Path
from typing import Dict

import numpy as np

from benchmarks.lookup_update import make_pool
from benchmarks.peers.settings import Settings

NAMES = ("ids", "dense", "labels")


def generate(settings: Settings, folder: Path) -> Dict[str, float]:
    """Write the pool to ``folder``; returns facts about it (distinct keys, distinct keys per batch)."""
    key_batches, _, _ = make_pool(settings)
    rng = np.random.default_rng(settings.seed + 2)
    shape = (settings.pool_batches, settings.batch_size)
    arrays = {
        "ids": np.stack(key_batches),
        "dense": np.log1p(rng.exponential(10.0, shape + (settings.dense,))).astype(np.float32),
        "labels": (rng.random(shape + (1,)) < 0.25).astype(np.float32),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    per_batch = [np.unique(b).shape[0] for b in key_batches]
    return {"distinct_keys_in_pool": int(np.unique(arrays["ids"]).shape[0]),
            "distinct_keys_per_batch_mean": float(np.mean(per_batch)),
            "distinct_keys_per_batch_max": int(np.max(per_batch))}


def load(folder: Path) -> Dict[str, np.ndarray]:
    """The pool written by :func:`generate`, keyed by ``NAMES``."""
    return {name: np.load(folder / f"{name}.npy") for name in NAMES}
