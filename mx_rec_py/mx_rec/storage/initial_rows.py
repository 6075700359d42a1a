"""Initial embedding rows as a pure function of (table seed, key, parsed initializer).

Every value is drawn from a counter-based hash of (table seed, key, column, attempt), so a key
gets the same initial row whatever rank owns it, whatever order keys arrive in, and whichever
tier the row passed through. ``mx_rec.tables.initializers`` turns TensorFlow initializer objects
into the :class:`InitSpec` this module computes rows from.
"""
from dataclasses import dataclass

import numba
import numpy as np

from mx_rec.key_process.hashing import combine, mix64

CONSTANT, UNIFORM, NORMAL, TRUNCATED_NORMAL = 0, 1, 2, 3
_TWO_POW_M53 = 1.0 / 9007199254740992.0


@dataclass(frozen=True)
class InitSpec:
    """A parsed initializer: kind, two parameters and a uint64 seed.

    ``a, b`` are (value, unused) for constants, (minval, maxval) for uniform and
    (mean, stddev) for the normal kinds; ``scale`` multiplies every value (``init_param``).
    """

    kind: int
    a: float
    b: float
    seed: int
    scale: float = 1.0


@numba.njit(inline="always", cache=True)
def _uniform01(h):
    return ((h >> np.uint64(11)) + np.uint64(1)) * _TWO_POW_M53  # (0, 1]


@numba.njit(inline="always", cache=True)
def _std_normal(seed, key, col, attempt):
    h = combine(combine(combine(seed, np.uint64(key)), np.uint64(col)), np.uint64(attempt))
    u1 = _uniform01(h)
    u2 = _uniform01(mix64(h ^ np.uint64(0xD1B54A32D192ED03)))
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


@numba.njit(cache=True, nogil=True)
def _fill(kind, a, b, seed, scale, keys, out):
    n, dim = out.shape
    for i in range(n):
        k = keys[i]
        for c in range(dim):
            if kind == CONSTANT:
                v = a
            elif kind == UNIFORM:
                h = combine(combine(seed, np.uint64(k)), np.uint64(c))
                v = a + (b - a) * (_uniform01(h) - _TWO_POW_M53)
            elif kind == NORMAL:
                v = a + b * _std_normal(seed, k, c, 0)
            else:
                attempt = 0
                z = _std_normal(seed, k, c, attempt)
                while z > 2.0 or z < -2.0:  # TF resamples beyond two standard deviations
                    attempt += 1
                    z = _std_normal(seed, k, c, attempt)
                v = a + b * z
            out[i, c] = v * scale


def initial_rows(spec: InitSpec, keys: np.ndarray, dim: int, dtype=np.float32) -> np.ndarray:
    """Initial rows for ``keys``.

    Args:
        spec: the table's parsed initializer.
        keys: int64 [M].
        dim: embedding width.

    Returns:
        ``dtype`` [M, dim]; row i depends only on (spec, keys[i]).
    """
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    # values are computed in float64 and rounded once on the store, as astype would: no float64 copy
    native = np.dtype(dtype) in (np.float32, np.float64)
    out = np.empty((keys.shape[0], dim), dtype=dtype if native else np.float64)
    _fill(spec.kind, spec.a, spec.b, np.uint64(spec.seed), spec.scale, keys, out)
    return out if native else out.astype(dtype)
