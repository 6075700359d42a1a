"""Initial embedding rows as a pure function of (table, key, initializer).

Every value is drawn from a counter-based hash of (table seed, key, column, attempt), so a key
gets the same initial row whatever rank owns it, whatever order keys arrive in, and whichever
tier the row passed through. Supported initializers (tf.compat.v1, tf.initializers and Keras):
constant, zeros, ones, random-uniform, random-normal, truncated-normal, and the variance-scaling
family (VarianceScaling, Glorot/Xavier, He, LeCun, uniform unit scaling), whose spread is computed
from the table's shape ``[vocabulary, dim]`` as TensorFlow computes it for a ``[vocabulary, dim]``
variable (fan_in = vocabulary, fan_out = dim). ``Orthogonal`` is approximated row by row: a random
orthogonal ``[vocabulary, dim]`` matrix has entries of variance ``gain**2 / vocabulary``, so each
value is drawn from that normal (columns are orthonormal only on average, not exactly).
"""
import math
from typing import Optional, Sequence

import numpy as np

from mx_rec.key_process.hashing import stable_name_seed
from mx_rec.storage.initial_rows import (CONSTANT, NORMAL, TRUNCATED_NORMAL, UNIFORM, InitSpec,  # noqa: F401
                                         initial_rows)

_KINDS = {
    "Constant": CONSTANT, "Zeros": CONSTANT, "Ones": CONSTANT,
    "RandomUniform": UNIFORM, "RandomNormal": NORMAL, "TruncatedNormal": TRUNCATED_NORMAL,
}
_TRUNCATED_STD = 0.87962566103423978  # std of a standard normal truncated at +-2, as TF uses
_SCALING = ("VarianceScaling", "GlorotUniform", "GlorotNormal", "HeNormal", "HeUniform", "LecunNormal",
            "LecunUniform")
_SHAPED = _SCALING + ("UniformUnitScaling", "Orthogonal")
SUPPORTED = tuple(sorted(set(_KINDS) | set(_SHAPED)))


def _fans(shape: Sequence[int]):
    """fan_in, fan_out of a [vocabulary, dim] table, as TensorFlow's initializers compute them."""
    fan_in, fan_out = float(shape[0]), float(shape[1])
    return fan_in, fan_out


def _scaling(initializer, cfg: dict, table_name: str, shape: Sequence[int]):
    """(kind, a, b) of a variance-scaling initializer for a table of ``shape``."""
    scale = float(getattr(initializer, "scale", cfg.get("scale", 1.0)))
    mode = str(getattr(initializer, "mode", cfg.get("mode", "fan_in"))).lower()
    distribution = str(getattr(initializer, "distribution", cfg.get("distribution", "truncated_normal"))).lower()
    fan_in, fan_out = _fans(shape)
    fans = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}
    if mode not in fans:
        raise ValueError(f"table '{table_name}': emb_initializer mode {mode!r} is not one of {sorted(fans)}")
    if scale <= 0:
        raise ValueError(f"table '{table_name}': emb_initializer scale must be > 0, got {scale}")
    scale /= max(1.0, fans[mode])
    if distribution in ("normal", "truncated_normal"):
        return TRUNCATED_NORMAL, 0.0, math.sqrt(scale) / _TRUNCATED_STD
    if distribution == "untruncated_normal":
        return NORMAL, 0.0, math.sqrt(scale)
    if distribution == "uniform":
        limit = math.sqrt(3.0 * scale)
        return UNIFORM, -limit, limit
    raise ValueError(f"table '{table_name}': emb_initializer distribution {distribution!r} is not one of "
                     "['normal', 'truncated_normal', 'untruncated_normal', 'uniform']")


def parse_initializer(initializer, table_name: str, init_param: float = 1.0,
                      shape: Optional[Sequence[int]] = None) -> InitSpec:
    """Turn a TensorFlow initializer object into an :class:`InitSpec` for ``table_name``.

    Args:
        initializer: a TF initializer object (see the module docstring for the kinds).
        table_name: the table's name (part of the seed, and of error messages).
        init_param: multiplies every value.
        shape: ``[vocabulary, dim]`` of the whole table (all ranks and tiers); needed by the
            variance-scaling kinds and ``Orthogonal``, whose spread depends on it.

    Raises:
        TypeError: the initializer is not one of the supported kinds, naming the table.
        ValueError: a variance-scaling setting TensorFlow would refuse, or no ``shape`` for a kind needing one.
    """
    kind_name = type(initializer).__name__
    if kind_name not in _KINDS and kind_name not in _SHAPED:
        raise TypeError(
            f"table '{table_name}': emb_initializer {kind_name} is not supported; use one of "
            f"{list(SUPPORTED)} (tf.compat.v1.*_initializer, tf.initializers.* or tf.keras.initializers.*)")
    cfg = initializer.get_config() if hasattr(initializer, "get_config") else {}
    if kind_name in _SHAPED and shape is None:
        raise ValueError(f"table '{table_name}': emb_initializer {kind_name} needs the table's shape")
    if kind_name in _SCALING:
        kind, a, b = _scaling(initializer, cfg, table_name, shape)
    elif kind_name == "UniformUnitScaling":  # limit sqrt(3 / input size) * factor, input size = vocabulary
        limit = math.sqrt(3.0 / max(1.0, float(shape[0]))) * float(getattr(initializer, "factor",
                                                                           cfg.get("factor", 1.0)))
        kind, a, b = UNIFORM, -limit, limit
    elif kind_name == "Orthogonal":
        gain = float(getattr(initializer, "gain", cfg.get("gain", 1.0)))
        kind, a, b = NORMAL, 0.0, gain / math.sqrt(max(1.0, float(max(shape))))
    else:
        kind, a, b = _simple(kind_name, cfg, table_name)
    user_seed = cfg.get("seed", getattr(initializer, "seed", None)) or 0
    seed = stable_name_seed(table_name) ^ (int(user_seed) & 0xFFFFFFFFFFFFFFFF)
    return InitSpec(kind=kind, a=a, b=b, seed=seed, scale=float(init_param))


def _simple(kind_name: str, cfg: dict, table_name: str):
    """(kind, a, b) of the constant, uniform and normal kinds."""
    kind = _KINDS[kind_name]
    if kind_name == "Zeros":
        return kind, 0.0, 0.0
    if kind_name == "Ones":
        return kind, 1.0, 0.0
    if kind == CONSTANT:
        value = np.asarray(cfg.get("value", 0.0))
        if value.size != 1:
            raise TypeError(f"table '{table_name}': a constant emb_initializer must hold one scalar, "
                            f"got shape {value.shape}")
        return kind, float(value.reshape(())), 0.0
    if kind == UNIFORM:
        return kind, float(cfg.get("minval", -0.05)), float(cfg.get("maxval", 0.05))
    return kind, float(cfg.get("mean", 0.0)), float(cfg.get("stddev", 0.05))
