"""The Criteo sample layout shared by the converter and the synthetic generator.

Kaggle text: ``label``, 13 integer features ``I1..I13``, 26 categorical features ``C1..C26``
(32-bit hashes written as 8 hex digits), tab separated; an empty field is missing.

In the TFRecords (``mx_rec.data.records``, ``CRITEO_SCHEMA``):
    label          int64 [1]
    dense_feature  float [13]  log(x + 1) for x >= 0; negative values and missing ones -> 0 (as DLRM)
    sparse_feature int64 [26]  one id space over all fields:
                               exact ids (``hash_buckets`` 0): field * 2**33 + value, missing: field * 2**33 + 2**32
                               hashed (``hash_buckets`` N):    field * (N + 1) + value % N, missing: field * (N + 1) + N
                               (value: the hex string as an unsigned 64-bit integer)
"""
import numpy as np

N_DENSE = 13
N_SPARSE = 26
N_FIELDS = 1 + N_DENSE + N_SPARSE
EXACT_STRIDE = 2**33
EXACT_MISSING = 2**32


def field_stride(hash_buckets: int) -> int:
    """Ids one field spans in the shared id space."""
    return EXACT_STRIDE if hash_buckets == 0 else hash_buckets + 1


def sparse_ids(values: np.ndarray, missing: np.ndarray, hash_buckets: int) -> np.ndarray:
    """Categorical values -> ids in one space.

    Args:
        values: uint64 [n, 26], the fields' values (< 2**32 when ``hash_buckets`` is 0).
        missing: bool [n, 26].
        hash_buckets: 0 for exact ids, else buckets per field.

    Returns:
        int64 [n, 26].
    """
    stride = field_stride(hash_buckets)
    offsets = np.arange(values.shape[1], dtype=np.int64) * stride
    if hash_buckets:
        local = (values % np.uint64(hash_buckets)).astype(np.int64)
        missing_id = hash_buckets
    else:
        local = values.astype(np.int64)
        missing_id = EXACT_MISSING
    return offsets + np.where(missing, missing_id, local)


def dense_transform(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Integer features -> float32 [n, 13]: log(x + 1) for x >= 0, 0 for negative or missing values."""
    x = np.where(missing, 0.0, np.maximum(values.astype(np.float64), 0.0))
    return np.log1p(x).astype(np.float32)
