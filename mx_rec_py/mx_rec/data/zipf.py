"""Zipf popularity for synthetic data (the little demo and the Criteo-shaped generator)."""
import numpy as np


def zipf_cdf(n: int, exponent: float) -> np.ndarray:
    """float64 [n]: cumulative distribution over popularity ranks 0..n-1, P(rank r) ~ (r + 1) ** -exponent.

    Draw ranks with ``np.searchsorted(cdf, u, side="right")`` for uniform ``u`` in [0, 1).
    """
    weights = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    cdf[-1] = np.nextafter(1.0, 2.0)  # searchsorted(side="right") of any u < 1 stays in range
    return cdf
