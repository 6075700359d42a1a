"""Batch deduplication of int64 keys with a per-call open-addressing table."""
from typing import Tuple

import numba
import numpy as np

from mx_rec.key_process.hashing import mix64

PADDING_KEY = -1


@numba.njit(cache=True, nogil=True)
def _dedup_kernel(keys):
    n = keys.shape[0]
    size = 16
    while size < 2 * n:
        size *= 2
    mask = np.uint64(size - 1)
    slot_pos = np.full(size, -1, dtype=np.int32)  # a slot holds the key's position in unique (4 B, not 12)
    unique = np.empty(n, dtype=np.int64)
    counts = np.zeros(n, dtype=np.int32)
    inverse = np.empty(n, dtype=np.int32)
    u = 0
    n_pad = 0
    for i in range(n):
        k = keys[i]
        if k == PADDING_KEY:
            inverse[i] = -1
            n_pad += 1
            continue
        s = mix64(np.uint64(k)) & mask
        while True:
            p = slot_pos[s]
            if p < 0:
                slot_pos[s] = u
                unique[u] = k
                counts[u] = 1
                inverse[i] = u
                u += 1
                break
            if unique[p] == k:
                inverse[i] = p
                counts[p] += 1
                break
            s = (s + np.uint64(1)) & mask
    if n_pad:
        for i in range(n):
            if inverse[i] < 0:
                inverse[i] = u
    return unique[:u].copy(), inverse, counts[:u].copy()


def dedup(keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deduplicate a flat batch of keys, keeping first-seen order.

    Args:
        keys: int64 [N]; the padding key -1 is dropped.

    Returns:
        unique: int64 [U], distinct non-padding keys in order of first appearance.
        inverse: int32 [N], ``unique[inverse[i]] == keys[i]``; padding positions hold U.
        counts: int32 [U], occurrences of each unique key in the batch.
    """
    return _dedup_kernel(np.ascontiguousarray(keys, dtype=np.int64))
