"""TieredStore.locate (numba kernels) against the straightforward numpy version it replaced: same
placements, victims, swap-outs, counters, tier contents and errors, on small caches with random keys."""
import dataclasses

import numpy as np
import pytest

from mx_rec.storage.base import Placement, SwapOut
from mx_rec.storage.ssd import SsdStore
from mx_rec.storage.tiered import TieredStore

WIDTH = 6


class ReferenceStore(TieredStore):
    """The numpy implementation of locate and victim choice, kept as the reference."""

    def _unpin(self, lookup_id, keep):
        held = self.pins.get(lookup_id, [])
        while len(held) > keep:
            self.pin_count[held.pop(0)] -= 1

    def _choose_victims(self, needed, batch_rows):
        usable = (self.row_key >= 0) & (self.pin_count == 0)
        usable[batch_rows] = False
        candidates = np.flatnonzero(usable)
        if needed > candidates.shape[0]:
            return None
        n = min(candidates.shape[0], max(needed, self.rows // 10))
        if n < candidates.shape[0]:  # the n smallest (frequency, recency, row), in row order
            candidates = np.sort(candidates[np.lexsort((candidates, self.last_used[candidates],
                                                        self.freq[candidates]))[:n]])
        return candidates

    def locate(self, keys, insert, lookup_id=0, ahead=False):
        self.clock += 1
        rows = self.device.lookup(keys)
        absent = rows < 0
        in_host = np.zeros(keys.shape[0], dtype=bool)
        in_host[absent] = self.host.contains(keys[absent])
        in_ssd = np.zeros(keys.shape[0], dtype=bool)
        if self.ssd is not None:
            in_ssd[absent & ~in_host] = self.ssd.contains(keys[absent & ~in_host])
        allowed = insert if isinstance(insert, np.ndarray) else np.full(keys.shape[0], bool(insert))
        new = absent & ~in_host & ~in_ssd & allowed
        incoming = in_host | in_ssd | new
        n_in = int(incoming.sum())
        training = ahead or isinstance(insert, np.ndarray) or bool(insert)
        self._unpin(lookup_id, 1 if ahead else 0)
        free = self.rows - len(self.device)
        victims = np.empty(0, np.int64)
        if n_in > free:
            victims = self._choose_victims(n_in - free, rows[~absent])
            if victims is None and self._release_other_kind(training):  # the other kind's steps are done
                victims = self._choose_victims(n_in - free, rows[~absent])
            if victims is None:
                batch = int((~absent).sum()) + n_in
                pinned = self.pin_count > 0
                pinned[rows[~absent]] = False
                kind = "training" if training else "evaluation"
                raise RuntimeError(
                    f"table '{self.table_name}': the device cache ({self.rows} rows) cannot hold this {kind} batch's "
                    f"{batch} distinct keys beside the {int(pinned.sum())} other rows that {kind} lookups of the "
                    f"table still use (each keeps its latest batch until its next step; one that places its next "
                    f"batch ahead keeps two); that needs {batch + int(pinned.sum())} rows: set "
                    f"device_vocabulary_size to at least {batch + int(pinned.sum())} per rank")
        victim_keys = self.row_key[victims]
        host_after = len(self.host) - int(in_host.sum()) + victims.shape[0]
        overflow = max(0, host_after - self.host.capacity)
        ssd_room = (self.ssd.capacity - len(self.ssd) + int(in_ssd.sum())) if self.ssd is not None else 0
        if overflow > ssd_room:
            advice = ("; raise host_vocabulary_size (or add an SSD tier)" if self.ssd is None else
                      f" and the SSD tier {self.ssd.capacity}; raise ssd_vocabulary_size")
            raise RuntimeError(f"table '{self.table_name}' is full: the host tier holds {self.host.capacity} keys"
                               + advice)
        incoming_keys = keys[incoming]
        values = np.empty((n_in, self.width), dtype=self.value_dtype)
        freq = np.ones(n_in, dtype=np.int64)
        from_host, from_ssd = in_host[incoming], in_ssd[incoming]
        values[from_host], freq[from_host] = self.host.take(incoming_keys[from_host])
        if from_ssd.any():
            values[from_ssd] = self.ssd.take(incoming_keys[from_ssd])
        fresh = ~from_host & ~from_ssd
        values[fresh] = self.full_initial_rows(incoming_keys[fresh])
        if overflow:
            bulk = min(max(overflow, self.host.capacity // 20), ssd_room, len(self.host))
            demoted = self.host.least_used(max(bulk, overflow))
            demoted_values, _ = self.host.take(demoted)
            self.ssd.put(demoted, demoted_values)
        self.device.remove(victim_keys)
        self.row_key[victims] = -1
        outgoing_freq = self.freq[victims]
        new_rows, _ = self.device.lookup_or_insert(incoming_keys)
        rows[incoming] = new_rows
        self.row_key[new_rows] = incoming_keys
        self.freq[new_rows] = freq
        placed = rows >= 0
        self.freq[rows[placed]] += 1
        self.last_used[rows[placed]] = self.clock
        self.pins.setdefault(lookup_id, []).append(rows[placed])
        self.pin_count[rows[placed]] += 1
        self.training[lookup_id] = training
        outgoing_slot = np.full(victim_keys.shape[0], -1, np.int64)  # the reference never lends host slots
        c = self.counters
        c.lookups += 1
        c.keys += keys.shape[0]
        c.device_hits += int((~absent).sum())
        c.host_hits += int(in_host.sum())
        c.ssd_hits += int(in_ssd.sum())
        c.new_keys += int(new.sum())
        c.swapped_in += int(in_host.sum() + in_ssd.sum())
        c.swapped_out += int(victims.shape[0])
        return Placement(rows, new_rows, self._split(values), SwapOut(victims, victim_keys, outgoing_freq, outgoing_slot))


def _initial(keys):
    return (keys[:, None] * 10 + np.arange(WIDTH)).astype(np.float32)


def _pair(tmp_path, device_rows, host_rows, ssd_rows):
    stores = []
    for name, cls in [("new", TieredStore), ("ref", ReferenceStore)]:
        ssd = None
        if ssd_rows:
            path = tmp_path / name
            path.mkdir()
            ssd = SsdStore("t", [str(path)], ssd_rows, WIDTH, np.float32, 0)
        stores.append(cls("t", device_rows, host_rows, 2, _initial, WIDTH, np.float32, ssd))
    return stores


def _state(store):
    host_keys, host_rows = store.host.items()
    order = np.argsort(host_keys)  # the same keys and rows; slots differ (the new store lends them)
    out = [store.row_key, store.freq, store.last_used, store.pin_count, *store.device.items(),
           host_keys[order], host_rows[order], len(store.host)]
    if store.ssd is not None:
        out += list(store.ssd.items())
    return out, dataclasses.asdict(store.counters), {k: [v.tolist() for v in held] for k, held in store.pins.items()}


def _step(store, keys, insert, lookup_id, ahead=False):
    try:
        p = store.locate(keys, insert, lookup_id, ahead)
    except RuntimeError as err:
        return ("error", str(err))
    leaving = _initial(p.swap_out.keys) + 0.5  # the graph's read-back of the victims: embedding, then slots
    store.accept_swapped_out(p.swap_out, np.split(leaving, store.parts, axis=1))
    return (p.rows, p.write_rows, p.write_values, p.swap_out.rows, p.swap_out.keys, p.swap_out.freq)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("device_rows,host_rows,ssd_rows", [(40, 400, 0), (30, 60, 0), (40, 50, 200), (24, 30, 80)])
def test_locate_matches_the_reference(tmp_path, seed, device_rows, host_rows, ssd_rows):
    rng = np.random.default_rng(seed)
    new, ref = _pair(tmp_path, device_rows, host_rows, ssd_rows)
    errors = 0
    for step in range(60):
        n = int(rng.integers(0, 18))
        keys = np.unique(np.minimum(rng.zipf(1.3, n), 500).astype(np.int64) * 3 + int(rng.integers(0, 2)))
        keys = rng.permutation(keys)
        insert = (rng.random(keys.shape[0]) < 0.8) if rng.random() < 0.3 else bool(rng.random() < 0.95)
        lookup_id = int(rng.integers(0, 2))  # two lookups pin their latest batches
        if insert is False:
            lookup_id = 2  # an evaluation lookup: it may take the rows training pins, and training its
        ahead = bool(rng.random() < 0.3)  # lookahead: the lookup's current batch stays pinned too
        a, b = _step(new, keys, insert, lookup_id, ahead), _step(ref, keys, insert, lookup_id, ahead)
        assert len(a) == len(b)
        errors += isinstance(a[0], str)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y, err_msg=f"step {step}")
            assert np.asarray(x).dtype == np.asarray(y).dtype
        (sa, ca, pa), (sb, cb, pb) = _state(new), _state(ref)
        assert ca == cb and pa == pb
        for x, y in zip(sa, sb):
            np.testing.assert_array_equal(x, y, err_msg=f"step {step}")
    assert new.counters.swapped_out > 0 and new.counters.host_hits > 0
    assert new.counters.ssd_hits > 0 or not ssd_rows
    if host_rows < 100 and not ssd_rows:
        assert errors > 0  # the host-full error was exercised


def test_device_full_error_matches(tmp_path):
    new, ref = _pair(tmp_path, 8, 100, 0)
    for store in (new, ref):
        store.locate(np.arange(6, dtype=np.int64), True, 0)
    keys = np.arange(100, 106, dtype=np.int64)
    a, b = _step(new, keys, True, 1), _step(ref, keys, True, 1)
    assert a == b and a[0] == "error" and "device_vocabulary_size" in a[1]


@pytest.mark.parametrize("seed", range(4))
def test_victim_selection_by_counting_matches_sorting(seed):
    from mx_rec.storage import tiered_kernels as kernels
    rng = np.random.default_rng(seed)
    rows = 5000
    freq = rng.integers(1, 40, rows)
    last_used = rng.integers(1000, 1300, rows)
    candidates = np.sort(rng.choice(rows, 3000, replace=False)).astype(np.int64)
    score = (freq[candidates] << 32) + last_used[candidates]
    for n in (1, 17, 500, 2999):
        out = np.empty(n, np.int64)
        assert kernels.select_lowest(candidates, score, n, out)
        expected = np.sort(candidates[np.lexsort((candidates, last_used[candidates], freq[candidates]))[:n]])
        np.testing.assert_array_equal(out, expected)
    hot = (np.int64(10_000) << 32) + last_used[candidates]  # beyond the counted frequencies: the caller sorts
    assert not kernels.select_lowest(candidates, hot, 10, np.empty(10, np.int64))
    spread = (np.int64(1) << 32) + last_used[candidates] + (np.arange(candidates.shape[0]) % 2 << 23)
    assert not kernels.select_lowest(candidates, spread, 10, np.empty(10, np.int64))  # recencies too far apart
