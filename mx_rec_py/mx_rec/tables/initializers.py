"""Initial embedding rows as a pure function of (table, key, initializer).

Every value is drawn from a counter-based hash of (table seed, key, column, attempt), so a key
gets the same initial row whatever rank owns it, whatever order keys arrive in, and whichever
tier the row passed through. Supported initializers are TensorFlow's constant, zeros, ones,
random-uniform, random-normal and truncated-normal (tf.compat.v1, tf.initializers and Keras).
"""
from dataclasses import dataclass

import numba
import numpy as np

from mx_rec.key_process.hashing import combine, mix64, stable_name_seed

CONSTANT, UNIFORM, NORMAL, TRUNCATED_NORMAL = 0, 1, 2, 3
_KINDS = {
    "Constant": CONSTANT, "Zeros": CONSTANT, "Ones": CONSTANT,
    "RandomUniform": UNIFORM, "RandomNormal": NORMAL, "TruncatedNormal": TRUNCATED_NORMAL,
}
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


def parse_initializer(initializer, table_name: str, init_param: float = 1.0) -> InitSpec:
    """Turn a TensorFlow initializer object into an :class:`InitSpec` for ``table_name``.

    Raises:
        TypeError: the initializer is not one of the supported kinds.
    """
    kind_name = type(initializer).__name__
    if kind_name not in _KINDS:
        raise TypeError(
            f"table '{table_name}': emb_initializer {kind_name} is not supported; use one of "
            f"{sorted(_KINDS)} (tf.compat.v1.*_initializer, tf.initializers.* or tf.keras.initializers.*)")
    cfg = initializer.get_config() if hasattr(initializer, "get_config") else {}
    kind = _KINDS[kind_name]
    if kind_name == "Zeros":
        a, b = 0.0, 0.0
    elif kind_name == "Ones":
        a, b = 1.0, 0.0
    elif kind == CONSTANT:
        value = np.asarray(cfg.get("value", 0.0))
        if value.size != 1:
            raise TypeError(f"table '{table_name}': a constant emb_initializer must hold one scalar, "
                            f"got shape {value.shape}")
        a, b = float(value), 0.0
    elif kind == UNIFORM:
        a, b = float(cfg.get("minval", -0.05)), float(cfg.get("maxval", 0.05))
    else:
        a, b = float(cfg.get("mean", 0.0)), float(cfg.get("stddev", 0.05 if kind == NORMAL else 0.05))
    user_seed = cfg.get("seed") or 0
    seed = stable_name_seed(table_name) ^ (int(user_seed) & 0xFFFFFFFFFFFFFFFF)
    return InitSpec(kind=kind, a=a, b=b, seed=seed, scale=float(init_param))


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
    out = np.empty((keys.shape[0], dim), dtype=np.float64)
    _fill(spec.kind, spec.a, spec.b, np.uint64(spec.seed), spec.scale, keys, out)
    return out.astype(dtype, copy=False)
