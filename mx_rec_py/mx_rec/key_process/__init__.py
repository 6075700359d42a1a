"""Key processing: hashing, deduplication and the key -> row index (host side, numba kernels)."""
