"""Merge one table's rank shards into sorted ``keys.npy`` / ``rows.npy`` without holding the table.

The shards (``<table>/shard-RRRRR-of-NNNNN.npz``, written with ``np.savez``: stored, not
compressed) are memory-mapped member by member, so a shard is read only where it is used. The
key space is cut into ranges ("buckets") from a sample of the keys so that one range's rows fit
``budget_bytes``; each range is gathered from every shard in chunks, sorted and written at its
place in the output files (``np.lib.format.open_memmap``). Optimizer slots and admission counts are
not read. Peak memory is about ``budget_bytes`` whatever the table's size.
"""
import math
import os
import struct
import zipfile
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

from mx_rec.saver.layout import CheckpointError
from mx_rec.system import files as fs

MAX_SAMPLE = 100_000
MIN_BUDGET = 1024


class ShardError(CheckpointError):
    """A shard file is missing or unreadable; the message names it."""


@dataclass
class MergeStats:
    """What :func:`merge_shards` wrote: keys (int), row width (int), buckets (passes over the shards' keys)."""

    keys: int
    dim: int
    buckets: int


def npz_member(path: str, name: str) -> np.ndarray:
    """Array ``name`` of the ``.npz`` file ``path``, memory-mapped (read-only) when it is stored
    uncompressed, else loaded.

    Raises:
        ShardError: the file or the member is missing or unreadable, naming the file.
    """
    if not fs.isfile(path):
        raise ShardError(f"checkpoint shard {path} is missing")
    if not fs.is_local(path):  # no memory map: the member is read into memory
        try:
            with fs.open_read(path) as f, zipfile.ZipFile(f) as archive, archive.open(name + ".npy") as member:
                return np.lib.format.read_array(member, allow_pickle=False)
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, struct.error) as err:
            raise ShardError(f"checkpoint shard {path} is truncated or unreadable ({type(err).__name__}: "
                             f"{err})") from None
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(name + ".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                with archive.open(info) as f:
                    return np.lib.format.read_array(f)
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            f.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(f)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = reader(f)
            offset = f.tell()
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, struct.error) as err:
        raise ShardError(f"checkpoint shard {path} is truncated or unreadable ({type(err).__name__}: {err})") from None
    if dtype.hasobject:
        raise ShardError(f"checkpoint shard {path}: member {name} holds Python objects")
    if int(np.prod(shape)) == 0:
        return np.empty(shape, dtype)
    if offset + int(np.prod(shape)) * dtype.itemsize > os.path.getsize(path):
        raise ShardError(f"checkpoint shard {path} is truncated (member {name})")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def _boundaries(keys: Sequence[np.ndarray], buckets: int) -> np.ndarray:
    """int64 [buckets - 1] split keys: quantiles of an evenly strided sample of every shard's keys."""
    total = sum(k.shape[0] for k in keys)
    if buckets <= 1 or total == 0:
        return np.empty(0, np.int64)
    stride = max(1, total // MAX_SAMPLE)
    sample = np.sort(np.concatenate([np.asarray(k[::stride]) for k in keys]))
    cuts = sample[np.linspace(0, sample.shape[0], buckets + 1)[1:-1].astype(np.int64)]
    return np.unique(cuts)


def _gather(keys: Sequence[np.ndarray], rows: Sequence[np.ndarray], lo, hi, chunk: int, dim: int
            ) -> Tuple[np.ndarray, np.ndarray]:
    """Keys in [lo, hi) (None: unbounded) of every shard with their rows, sorted by key."""
    found_keys: List[np.ndarray] = []
    found_rows: List[np.ndarray] = []
    for shard_keys, shard_rows in zip(keys, rows):
        for start in range(0, shard_keys.shape[0], chunk):
            part = np.asarray(shard_keys[start:start + chunk])
            mask = np.ones(part.shape[0], bool)
            if lo is not None:
                mask &= part >= lo
            if hi is not None:
                mask &= part < hi
            picked = np.flatnonzero(mask)
            found_keys.append(part[picked])
            found_rows.append(np.asarray(shard_rows[start + picked, :dim]))
    merged_keys = np.concatenate(found_keys) if found_keys else np.empty(0, np.int64)
    merged_rows = np.concatenate(found_rows) if found_rows else np.empty((0, dim), np.float32)
    order = np.argsort(merged_keys, kind="stable")
    return merged_keys[order], merged_rows[order]


def merge_shards(shard_paths: Sequence[str], table: str, dim: int, out_dir: str, budget_bytes: int) -> MergeStats:
    """Write ``out_dir/keys.npy`` (int64 [K], sorted, distinct) and ``out_dir/rows.npy`` (value dtype [K, dim]).

    Args:
        shard_paths: the table's shard files (keys disjoint between them).
        table: its name, for messages. dim: row width. budget_bytes: memory the merge may use.

    Raises:
        ShardError: a shard is missing or unreadable, or a key sits in two shards.
    """
    keys = [npz_member(p, "keys") for p in shard_paths]
    rows = [npz_member(p, "embeddings") for p in shard_paths]
    for path, k, r in zip(shard_paths, keys, rows):
        if r.ndim != 2 or r.shape != (k.shape[0], dim):
            raise ShardError(f"table '{table}': shard {path} holds rows {r.shape} for {k.shape[0]} keys of dim {dim}")
    total = sum(k.shape[0] for k in keys)
    dtype = rows[0].dtype if rows else np.dtype(np.float32)
    row_bytes = 8 + dim * dtype.itemsize
    share = max(MIN_BUDGET, budget_bytes) // 3  # the gathered range, its sorted copy and the key chunks
    buckets = max(1, math.ceil(total * row_bytes / share))
    cuts = _boundaries(keys, buckets)
    bounds = list(zip([None, *cuts], [*cuts, None]))
    chunk = max(64, share // 8)
    os.makedirs(out_dir, exist_ok=True)
    if total == 0:
        np.save(os.path.join(out_dir, "keys.npy"), np.empty(0, np.int64))
        np.save(os.path.join(out_dir, "rows.npy"), np.empty((0, dim), dtype))
        return MergeStats(0, dim, 1)
    keys_out = np.lib.format.open_memmap(os.path.join(out_dir, "keys.npy"), "w+", np.int64, (total,))
    rows_out = np.lib.format.open_memmap(os.path.join(out_dir, "rows.npy"), "w+", dtype, (total, dim))
    pos = 0
    for lo, hi in bounds:
        part_keys, part_rows = _gather(keys, rows, lo, hi, chunk, dim)
        if part_keys.shape[0] > 1 and np.any(part_keys[1:] == part_keys[:-1]):
            dup = part_keys[1:][part_keys[1:] == part_keys[:-1]][0]
            raise ShardError(f"table '{table}': key {dup} is in more than one shard of "
                             f"{os.path.dirname(shard_paths[0])}")
        keys_out[pos:pos + part_keys.shape[0]] = part_keys
        rows_out[pos:pos + part_keys.shape[0]] = part_rows
        pos += part_keys.shape[0]
    keys_out.flush()
    rows_out.flush()
    del keys_out, rows_out
    return MergeStats(total, dim, len(bounds))
