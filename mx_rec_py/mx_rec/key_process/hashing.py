"""Stable 64-bit mixing used by the hash index and the deterministic initializers."""
import hashlib

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(inline="always", cache=True)
def mix64(x: np.uint64) -> np.uint64:
    """splitmix64 finaliser: a bijective avalanche mix of one uint64."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@numba.njit(inline="always", cache=True)
def combine(seed: np.uint64, value: np.uint64) -> np.uint64:
    """Order-sensitive combination of a running hash with one more word."""
    return mix64(seed ^ (value + _GOLDEN + (seed << np.uint64(6)) + (seed >> np.uint64(2))))


def stable_name_seed(name: str) -> int:
    """A uint64 seed from a string that is the same in every process and Python run."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little")
