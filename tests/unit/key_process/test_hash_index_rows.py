"""HashIndex keeps int32 rows below 2**31 rows of capacity: the same answers as with int64 rows, less memory."""
import numpy as np
import pytest

from mx_rec.key_process.hash_index import HashIndex, TableFullError, rows_dtype
from mx_rec.storage import tiered_kernels

I64 = np.iinfo(np.int64)


def _pair(capacity=200_000):
    """An int32-row index and an int64-row one (capacity 2**62) with the same keys and rows."""
    small, big = HashIndex(capacity, initial_slots=16), HashIndex(1 << 62, initial_slots=16)
    assert small.slot_arrays[1].dtype == np.int32 and big.slot_arrays[1].dtype == np.int64
    return small, big


def _distinct(rng, n, span=50_000):
    keys = np.unique(rng.integers(-span, span, n)).astype(np.int64)
    keys = keys[keys != -1]
    return rng.permutation(np.concatenate([keys, [I64.min, I64.max]]))


def test_rows_dtype_follows_the_capacity():
    assert rows_dtype(2**31 - 1) == np.int32 and rows_dtype(2**31) == np.int64
    assert HashIndex(2**31).slot_arrays[1].dtype == np.int64
    assert HashIndex(2**31 - 1).slot_arrays[1].dtype == np.int32


def test_int32_rows_answer_as_int64_rows_through_growth_removal_and_clear():
    rng = np.random.default_rng(7)
    small, big = _pair()
    for step in range(30):
        keys = _distinct(rng, 4000)
        rows_s, new_s = small.lookup_or_insert(keys)
        rows_b, new_b = big.lookup_or_insert(keys)
        assert rows_s.dtype == np.int64
        np.testing.assert_array_equal(rows_s, rows_b)
        np.testing.assert_array_equal(new_s, new_b)
        gone = _distinct(rng, 1500)
        np.testing.assert_array_equal(small.remove(gone), big.remove(gone))
        probe = _distinct(rng, 3000, span=60_000)
        np.testing.assert_array_equal(small.lookup(probe), big.lookup(probe))
        absent = np.setdiff1d(_distinct(rng, 500, span=10**9), big.items()[0])
        np.testing.assert_array_equal(small.insert_absent(absent), big.insert_absent(absent))
        if step == 20:
            small.clear(), big.clear()
    assert len(small) == len(big) and small.rows_reserved == big.rows_reserved
    for a, b in zip(small.items(), big.items()):
        assert a.dtype == np.int64 and b.dtype == np.int64
        np.testing.assert_array_equal(a, b)
    assert small.slot_arrays[0].shape == big.slot_arrays[0].shape  # grew the same way
    assert small.nbytes < big.nbytes and small.slot_arrays[1].nbytes * 2 == big.slot_arrays[1].nbytes


def test_int32_rows_reach_the_last_row_and_a_full_index_changes_nothing():
    index = HashIndex(capacity=1000, initial_slots=16)
    rows, _ = index.lookup_or_insert(np.arange(10, 1010, dtype=np.int64))
    assert sorted(rows.tolist()) == list(range(1000))
    with pytest.raises(TableFullError):
        index.lookup_or_insert(np.array([5], np.int64))
    np.testing.assert_array_equal(index.lookup(np.array([1009, 5], np.int64)), [rows[-1], -1])


def test_tiered_classify_probes_int32_and_int64_slot_arrays_alike():
    rng = np.random.default_rng(3)
    for dev, host in (_pair(), _pair()[::-1]):
        dev_keys, host_keys = _distinct(rng, 3000), _distinct(rng, 3000, span=80_000)
        dev.lookup_or_insert(dev_keys)
        host.lookup_or_insert(np.setdiff1d(host_keys, dev_keys))
        keys = _distinct(rng, 5000, span=90_000)
        out = [np.empty(keys.shape[0], np.int64), np.empty(keys.shape[0], np.int64), np.empty(keys.shape[0], np.int8)]
        hits, on_host = tiered_kernels.classify(*dev.slot_arrays, *host.slot_arrays, keys,
                                                np.ones(keys.shape[0], bool), *out)
        np.testing.assert_array_equal(out[0], dev.lookup(keys))
        expected_host = np.where(out[0] >= 0, -1, host.lookup(keys))
        np.testing.assert_array_equal(out[1], expected_host)
        assert hits == np.count_nonzero(out[0] >= 0) and on_host == np.count_nonzero(expected_host >= 0)
