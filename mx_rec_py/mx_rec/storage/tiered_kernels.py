"""Numba kernels for the per-key work of :meth:`mx_rec.storage.tiered.TieredStore.locate`.

Each kernel does in one pass over a batch what would otherwise take several numpy calls. Keys are
int64 and distinct; device rows, host rows and positions are int64. A key's ``source`` (int8) says
where it was found: HIT (on the device), HOST, SSD, NEW (absent, to be inserted) or SKIPPED (absent,
not admitted). The hash probes are those of :mod:`mx_rec.key_process.hash_index`.
"""
import numba
import numpy as np

from mx_rec.key_process.hash_index import find_row

HIT, HOST, SSD, NEW, SKIPPED = 0, 1, 2, 3, 4


@numba.njit(cache=True, nogil=True)
def classify(dev_keys, dev_rows, host_keys, host_rows, keys, allowed, rows, host_row, source):
    """Probe the device index, then (for keys not there) the host index, once per key.

    Args:
        dev_keys, dev_rows / host_keys, host_rows: int64 slot arrays of the two hash indexes.
        keys: int64 [U]. allowed: bool [U], keys that may be inserted.
        rows: out int64 [U], device row or -1. host_row: out int64 [U], host row or -1.
        source: out int8 [U], HIT, HOST, NEW or SKIPPED (the SSD is checked afterwards).

    Returns:
        (hits, host hits).
    """
    hits = 0
    on_host = 0
    for i in range(keys.shape[0]):
        k = keys[i]
        r = find_row(dev_keys, dev_rows, k)
        rows[i] = r
        host_row[i] = -1
        if r >= 0:
            source[i] = HIT
            hits += 1
            continue
        h = find_row(host_keys, host_rows, k)
        host_row[i] = h
        if h >= 0:
            source[i] = HOST
            on_host += 1
        elif allowed[i]:
            source[i] = NEW
        else:
            source[i] = SKIPPED
    return hits, on_host


@numba.njit(cache=True, nogil=True)
def mark_ssd(source, in_ssd, positions):
    """Keys at ``positions`` (int64 [M], all NEW or SKIPPED) found on SSD (bool [M]) become SSD;
    returns how many."""
    n = 0
    for j in range(positions.shape[0]):
        if in_ssd[j]:
            source[positions[j]] = SSD
            n += 1
    return n


@numba.njit(cache=True, nogil=True)
def gather_incoming(keys, source, host_row, host_values, host_freq, n_in,
                    incoming_keys, values, freq, in_slot, ssd_pos, fresh_pos):
    """Lay out the keys that come to the device (HOST, SSD, NEW), in key order.

    Args:
        keys: int64 [U]. source: int8 [U]. host_row: int64 [U].
        host_values: [H, width] and host_freq: int64 [H], the host tier's rows and access counts.
        n_in: number of incoming keys.
        incoming_keys: out int64 [n_in]. values: out [parts, n_in, dim], host rows copied in, split
            into the embedding and each slot (width = parts * dim).
        freq: out int64 [n_in], host access counts, 1 for the others.
        in_slot: out int64 [n_in], the host slot of each key from the host, -1 for the others.
        ssd_pos / fresh_pos: out int64 [n_in], the positions (in the incoming order) of keys from SSD
            and of new keys.

    Returns:
        (keys from the host, from SSD, new).
    """
    j = 0
    n_host = 0
    n_ssd = 0
    n_fresh = 0
    parts, dim = values.shape[0], values.shape[2]
    for i in range(keys.shape[0]):
        s = source[i]
        if s == HIT or s == SKIPPED:
            continue
        incoming_keys[j] = keys[i]
        in_slot[j] = -1
        if s == HOST:
            h = host_row[i]
            for p in range(parts):
                for c in range(dim):
                    values[p, j, c] = host_values[h, p * dim + c]
            freq[j] = host_freq[h]
            in_slot[j] = h
            n_host += 1
        else:
            freq[j] = 1
            if s == SSD:
                ssd_pos[n_ssd] = j
                n_ssd += 1
            else:
                fresh_pos[n_fresh] = j
                n_fresh += 1
        j += 1
    return n_host, n_ssd, n_fresh


@numba.njit(cache=True, nogil=True)
def settle(rows, source, new_rows, incoming_keys, in_freq, row_key, freq, last_used, pin_count, clock, pins):
    """Give incoming keys their new device rows and count the batch's use of every placed row.

    Args:
        rows: int64 [U], updated in place with ``new_rows`` (int64 [n_in]) for incoming keys.
        source: int8 [U]. incoming_keys: int64 [n_in]. in_freq: int64 [n_in].
        row_key, freq, last_used: int64 [rows of the cache]. pin_count: int32 [rows of the cache].
        clock: this lookup's number. pins: out int64 [U], the placed rows in key order.

    Returns:
        how many rows are placed (the length of ``pins`` to keep).
    """
    j = 0
    p = 0
    for i in range(rows.shape[0]):
        s = source[i]
        if s == HOST or s == SSD or s == NEW:
            r = new_rows[j]
            rows[i] = r
            row_key[r] = incoming_keys[j]
            freq[r] = in_freq[j]
            j += 1
        r = rows[i]
        if r >= 0:
            freq[r] += 1
            last_used[r] = clock
            pin_count[r] += 1
            pins[p] = r
            p += 1
    return p


@numba.njit(cache=True, nogil=True)
def unpin(pin_count, rows):
    """pin_count (int32 [R]) -= 1 at distinct rows (int64 [P])."""
    for i in range(rows.shape[0]):
        pin_count[rows[i]] -= 1


@numba.njit(cache=True, nogil=True)
def victim_candidates(row_key, pin_count, freq, last_used, batch_rows, candidates, score):
    """Rows holding a key, unpinned and not among ``batch_rows`` (int64 [U], -1 entries ignored), in
    increasing order, with their LFU/LRU score ``(freq << 32) + last_used``.

    Args:
        row_key, freq, last_used: int64 [R]. pin_count: int32 [R].
        candidates, score: out int64 [R].

    Returns:
        how many candidates.
    """
    in_batch = np.zeros(row_key.shape[0], dtype=np.bool_)
    for i in range(batch_rows.shape[0]):
        r = batch_rows[i]
        if r >= 0:
            in_batch[r] = True
    n = 0
    for r in range(row_key.shape[0]):
        if row_key[r] >= 0 and pin_count[r] == 0 and not in_batch[r]:
            candidates[n] = r
            score[n] = (freq[r] << 32) + last_used[r]
            n += 1
    return n


@numba.njit(cache=True, nogil=True)
def scatter_rows(values, freq, slots, new_values, new_freq):
    """values[slots[i]] = new_values[i] (rows [K, width]) and freq[slots[i]] = new_freq[i]."""
    width = values.shape[1]
    for i in range(slots.shape[0]):
        s = slots[i]
        for c in range(width):
            values[s, c] = new_values[i, c]
        freq[s] = new_freq[i]


@numba.njit(cache=True, nogil=True)
def write_parts(values, slots, parts):
    """Host rows ``values`` [H, width] at ``slots`` (int64 [K]) = the parts (a tuple of [K, dim]
    arrays, width = len(parts) * dim) side by side."""
    for p in range(len(parts)):
        part = parts[p]
        dim = part.shape[1]
        for j in range(slots.shape[0]):
            h = slots[j]
            for c in range(dim):
                values[h, p * dim + c] = part[j, c]


FREQ_BUCKETS = 4096  # frequencies at or above the last bucket share it (such rows are hot, rarely victims)


@numba.njit(cache=True, nogil=True)
def select_lowest(candidates, score, n, out):
    """The ``n`` candidate rows with the smallest ``(score, row)``, in increasing row order.

    Args:
        candidates: int64 [C], rows in increasing order. score: int64 [C], their ``victim_candidates``
            scores ``(freq << 32) + last_used``. n: rows wanted (0 < n < C). out: int64 [n], the selection.

    Returns:
        True, or False when the frequencies or recencies at the cut are spread too widely for
        counting (the caller then sorts).
    """
    c = candidates.shape[0]
    low = np.int64(0xFFFFFFFF)
    counts = np.zeros(FREQ_BUCKETS, dtype=np.int64)
    for i in range(c):
        counts[min(score[i] >> 32, FREQ_BUCKETS - 1)] += 1
    f_cut = 0
    f_below = 0
    while f_below + counts[f_cut] < n:
        f_below += counts[f_cut]
        f_cut += 1
    if f_cut == FREQ_BUCKETS - 1:
        return False
    lo = np.iinfo(np.int64).max
    hi = np.iinfo(np.int64).min
    for i in range(c):
        if score[i] >> 32 == f_cut:
            t = score[i] & low
            lo = min(lo, t)
            hi = max(hi, t)
    if hi - lo >= 1 << 22:
        return False
    t_counts = np.zeros(hi - lo + 1, dtype=np.int64)
    for i in range(c):
        if score[i] >> 32 == f_cut:
            t_counts[(score[i] & low) - lo] += 1
    t_cut = 0
    t_below = 0
    while t_below + t_counts[t_cut] < n - f_below:
        t_below += t_counts[t_cut]
        t_cut += 1
    cut = (f_cut << 32) + lo + t_cut
    at_cut = n - f_below - t_below  # rows scoring exactly ``cut`` to take, lowest rows first
    k = 0
    for i in range(c):
        if score[i] < cut or (score[i] == cut and at_cut > 0):
            if score[i] == cut:
                at_cut -= 1
            out[k] = candidates[i]
            k += 1
    return True
