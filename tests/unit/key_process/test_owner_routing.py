"""The owner routing of a sharded lookup (``key_process.partition``), played for 1 to 4 ranks in one
process: every rank routes its batch, a numpy all-to-all stands in for Horovod's, and the owners answer.

This is the arithmetic ``lookup.exchange.sharded_rows`` runs between its collectives; the same routing
on real ranks is tested under horovodrun in ``tests/parallel/test_sharded_training.py``.
"""
from typing import List, Sequence, Tuple

import numpy as np
import pytest

from mx_rec.key_process.partition import Route, add_trailers, route, strip_trailers

DIM = 3


def _batches(ranks: int, seed: int, n: int = 200, pool: int = 60) -> List[np.ndarray]:
    """One batch of ids int64 [n] a rank: repeated keys, negative keys and ~10% padding (-1)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(ranks):
        ids = rng.integers(-pool, pool, n).astype(np.int64)
        ids[rng.random(n) < 0.1] = -1
        out.append(ids)
    return out


def _all_to_all(sends: Sequence[np.ndarray], counts: Sequence[np.ndarray]) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """What Horovod's all-to-all with variable splits does: rank s sends ``sends[s]`` in buckets of
    ``counts[s]`` [ranks]; rank d receives the d-th bucket of every sender, in sender order, and the
    counts [ranks] it received from each."""
    ranks = len(sends)
    pieces = [np.split(values, np.cumsum(c)[:-1]) for values, c in zip(sends, counts)]
    received = [np.concatenate([pieces[s][d] for s in range(ranks)]) for d in range(ranks)]
    received_counts = [np.array([counts[s][d] for s in range(ranks)], np.int32) for d in range(ranks)]
    return received, received_counts


def _row(keys: np.ndarray) -> np.ndarray:
    """The owner's answer for each key: float32 [K, DIM], different for every key."""
    return np.stack([keys * 1.0, keys * 2.0 + 1, -keys * 0.5], axis=1).astype(np.float32)


def _exchange(batches: Sequence[np.ndarray]) -> Tuple[List[Route], List[np.ndarray], List[np.ndarray]]:
    """Route every rank's batch, send the keys to their owners, answer, send the rows back:
    (routes, keys each owner received, rows [N, DIM] each requester reads for its ids)."""
    ranks = len(batches)
    routes = [route(ids, ranks) for ids in batches]
    received, received_counts = _all_to_all([r.send_keys for r in routes], [r.send_counts for r in routes])
    answers = [_row(keys) for keys in received]
    back, _ = _all_to_all(answers, received_counts)
    out = [np.concatenate([b, np.zeros((1, DIM), np.float32)])[r.positions] for b, r in zip(back, routes)]
    return routes, received, out


@pytest.mark.parametrize("ranks", [1, 2, 3, 4])
def test_each_owner_receives_only_its_keys_and_every_id_reads_its_own_row(ranks):
    batches = _batches(ranks, seed=ranks)
    routes, received, out = _exchange(batches)
    for owner, keys in enumerate(received):
        assert keys.size and np.all(keys % ranks == owner), f"rank {owner} received keys it does not own"
    for ids, r, rows in zip(batches, routes, out):
        assert np.array_equal(np.sort(r.send_keys), np.unique(ids[ids != -1])), "each distinct key sent once"
        assert r.send_counts.sum() == r.send_keys.size and r.largest_bucket == r.send_counts.max()
        np.testing.assert_array_equal(rows[ids != -1], _row(ids[ids != -1]))
        np.testing.assert_array_equal(rows[ids == -1], 0.0)


@pytest.mark.parametrize("ranks", [2, 3])
def test_occurrences_reach_the_owner_summing_to_the_sightings_of_every_rank(ranks):
    """Admission counts a key's sightings on its owner: the occurrences travel beside the keys."""
    batches = _batches(ranks, seed=10 + ranks)
    routes = [route(ids, ranks) for ids in batches]
    keys, _ = _all_to_all([r.send_keys for r in routes], [r.send_counts for r in routes])
    counts, _ = _all_to_all([r.occurrences for r in routes], [r.send_counts for r in routes])
    everything = np.concatenate(batches)
    expected = dict(zip(*np.unique(everything[everything != -1], return_counts=True)))
    seen = {}
    for owner_keys, owner_counts in zip(keys, counts):
        for k, c in zip(owner_keys.tolist(), owner_counts.tolist()):
            seen[k] = seen.get(k, 0) + c
    assert seen == {int(k): int(c) for k, c in expected.items()}


@pytest.mark.parametrize("ranks", [2, 4])
def test_trailers_tell_every_rank_the_largest_bucket_of_all_and_strip_to_the_same_keys(ranks):
    """Static shapes: every bucket carries its sender's largest bucket, so every receiver sees each
    sender's and can fail the step on an overflow together with the others."""
    batches = _batches(ranks, seed=20 + ranks)
    batches[1] = np.concatenate([batches[1], np.arange(1000, 1000 + 40 * ranks, ranks, dtype=np.int64)])
    routes = [route(ids, ranks) for ids in batches]
    plain, _ = _all_to_all([r.send_keys for r in routes], [r.send_counts for r in routes])
    sent = [add_trailers(r.send_keys, r.send_counts, r.largest_bucket) for r in routes]
    assert all(s.size == r.send_keys.size + ranks for s, r in zip(sent, routes))
    received, received_counts = _all_to_all(sent, [r.send_counts + 1 for r in routes])
    largest = [r.largest_bucket for r in routes]
    assert max(largest) == routes[1].largest_bucket  # rank 1 sent 40 extra keys to rank 0
    for owner in range(ranks):
        keys, trailers = strip_trailers(received[owner], received_counts[owner])
        np.testing.assert_array_equal(keys, plain[owner])
        assert trailers.tolist() == largest, f"rank {owner} sees every sender's largest bucket"


def test_a_rank_with_only_padding_sends_empty_buckets_and_still_answers():
    batches = [np.full(8, -1, np.int64), np.array([3, 4, 4, -1], np.int64)]
    routes, received, out = _exchange(batches)
    assert routes[0].send_keys.size == 0 and routes[0].send_counts.tolist() == [0, 0]
    assert routes[0].largest_bucket == 0 and routes[0].positions.tolist() == [0] * 8
    assert received[0].tolist() == [4] and received[1].tolist() == [3]
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_array_equal(out[1][:3], _row(np.array([3, 4, 4])))
    sent = add_trailers(routes[0].send_keys, routes[0].send_counts, routes[0].largest_bucket)
    assert sent.tolist() == [0, 0]  # each empty bucket still carries its trailer
