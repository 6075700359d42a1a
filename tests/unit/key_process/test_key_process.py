"""Host key processing: dedup, the key -> row index, and the per-lookup plan."""
import numpy as np
import pytest

from mx_rec.storage.plan import SendCountOverflow, plan_batch
from mx_rec.key_process.dedup import dedup
from mx_rec.key_process.hash_index import HashIndex, TableFullError
from mx_rec.key_process.partition import add_trailers, route, strip_trailers
from mx_rec.storage.device import DeviceStore
from mx_rec.tables.initializers import parse_initializer

import tensorflow as tf

I64 = np.iinfo(np.int64)
EXTREMES = np.array([I64.min, I64.min + 1, I64.max, I64.max - 1, -2, 0, 1, -(2**40)], dtype=np.int64)


def _keys(rng, n, pool=500):
    pool_keys = np.concatenate([EXTREMES, np.random.default_rng(99).integers(I64.min, I64.max, pool, dtype=np.int64)])
    keys = rng.choice(pool_keys, n)
    keys[rng.random(n) < 0.1] = -1
    return keys


def test_dedup_matches_first_appearance_order_and_drops_padding():
    rng = np.random.default_rng(0)
    keys = _keys(rng, 5000)
    unique, inverse, counts = dedup(keys)
    valid = keys != -1
    _, first = np.unique(keys[valid], return_index=True)
    expected = keys[valid][np.sort(first)]
    np.testing.assert_array_equal(unique, expected)
    np.testing.assert_array_equal(unique[inverse[valid]], keys[valid])
    assert np.all(inverse[~valid] == len(unique))
    np.testing.assert_array_equal(counts, [(keys == k).sum() for k in unique])


def test_dedup_of_empty_and_all_padding():
    unique, inverse, _ = dedup(np.empty(0, np.int64))
    assert unique.shape == (0,) and inverse.shape == (0,)
    unique, inverse, _ = dedup(np.full(7, -1, np.int64))
    assert unique.shape == (0,) and np.all(inverse == 0)


def test_hash_index_agrees_with_a_dict_through_growth():
    rng = np.random.default_rng(1)
    index = HashIndex(capacity=50_000, initial_slots=16)
    reference = {}
    for _ in range(20):
        unique, _, _ = dedup(_keys(rng, 3000, pool=40_000))
        rows, new_pos = index.lookup_or_insert(unique)
        for pos, (k, r) in enumerate(zip(unique.tolist(), rows.tolist())):
            if k in reference:
                assert reference[k] == r and pos not in set(new_pos.tolist())
            else:
                reference[k] = r
        assert len(index) == len(reference)
    rows = np.array(list(reference.values()))
    assert len(set(rows.tolist())) == len(rows) and rows.min() == 0 and rows.max() == len(rows) - 1
    keys, got_rows = index.items()
    assert dict(zip(keys.tolist(), got_rows.tolist())) == reference


def test_full_index_raises_and_changes_nothing():
    index = HashIndex(capacity=10)
    index.lookup_or_insert(np.arange(8, dtype=np.int64))
    with pytest.raises(TableFullError, match="at least 11 rows"):
        index.lookup_or_insert(np.arange(5, 11, dtype=np.int64))  # 3 new keys, 2 free rows
    assert len(index) == 8
    assert np.all(index.lookup(np.arange(8, 11, dtype=np.int64)) == -1)


def _store(capacity=100):
    spec = parse_initializer(tf.constant_initializer(0.5), "plan_table")
    return DeviceStore("plan_table", capacity, 4, spec)


def test_plan_maps_every_id_to_its_row_and_padding_to_zeros():
    store = _store()
    keys = np.array([7, -1, 9, 7, I64.min, -1], dtype=np.int64)
    plan = plan_batch(store, keys, insert=True)
    assert plan.gather_rows.tolist() == [0, 1, 2]
    assert plan.inverse.tolist() == [0, 3, 1, 0, 2, 3]
    assert plan.write_rows.tolist() == [0, 1, 2] and plan.write_values.shape == (3, 4)
    unconfirmed = plan_batch(store, keys, insert=True)  # not yet written: written again, same values
    assert unconfirmed.write_rows.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(unconfirmed.write_values, plan.write_values)
    store.confirm_written(plan.write_rows)
    again = plan_batch(store, keys, insert=True)
    assert again.write_rows.size == 0 and again.gather_rows.tolist() == [0, 1, 2]


def test_plan_at_evaluation_sends_unknown_keys_to_the_default_row():
    store = _store()
    plan_batch(store, np.array([5], np.int64), insert=True)
    plan = plan_batch(store, np.array([6, 5, -1, 6], np.int64), insert=False)
    assert plan.gather_rows.tolist() == [0]
    assert plan.inverse.tolist() == [2, 0, 1, 2]  # 1 gathered row, then zeros (1), then default (2)
    assert store.size() == 1


def test_send_count_checks_the_count_without_padding_and_overflow_changes_nothing():
    store = _store()
    plan = plan_batch(store, np.array([1, 2, 2, -1], np.int64), insert=True, send_count=5)
    assert plan.gather_rows.tolist() == [0, 1]
    assert plan.inverse.tolist() == [0, 1, 1, 2]
    with pytest.raises(SendCountOverflow, match=r"set send_count >= 6"):
        plan_batch(store, np.arange(10, 16, dtype=np.int64), insert=True, send_count=5)
    assert store.size() == 2


def test_route_groups_distinct_keys_by_owner_and_trailers_carry_the_largest_bucket():
    r = route(np.array([4, 1, -1, 4, 3, 2, 6], np.int64), 2)
    assert r.send_keys.tolist() == [4, 2, 6, 1, 3] and r.send_counts.tolist() == [3, 2]
    assert r.occurrences.tolist() == [2, 1, 1, 1, 1] and r.largest_bucket == 3
    assert r.positions.tolist() == [0, 3, 5, 0, 4, 1, 2]  # padding -> 5, past the answers
    sent = add_trailers(r.send_keys, r.send_counts, r.largest_bucket)
    assert sent.tolist() == [4, 2, 6, 3, 1, 3, 3]
    empty = np.array([0, 2, 0], np.int32)  # empty buckets still carry their trailer
    keys, trailers = strip_trailers(add_trailers(np.array([5, 7], np.int64), empty, 2), empty + 1)
    assert keys.tolist() == [5, 7] and trailers.tolist() == [2, 2, 2]


def test_remove_frees_rows_for_reuse_and_keeps_every_other_key():
    rng = np.random.default_rng(5)
    index = HashIndex(capacity=100_000, initial_slots=16)
    reference = {}
    for _ in range(100):
        keys, _, _ = dedup(rng.integers(-3000, 3000, 500).astype(np.int64))
        rows, _ = index.lookup_or_insert(keys)
        for k, r in zip(keys.tolist(), rows.tolist()):
            assert reference.setdefault(k, r) == r
        gone = np.unique(rng.integers(-3000, 3000, 300)).astype(np.int64)  # may include -1 and absent keys
        freed = index.remove(gone)
        assert sorted(freed.tolist()) == sorted(reference.pop(k) for k in gone.tolist() if k in reference)
        keys_now, rows_now = index.items()
        assert dict(zip(keys_now.tolist(), rows_now.tolist())) == reference
    assert index.rows_reserved < 1.2 * len(reference)  # freed rows were handed out again
