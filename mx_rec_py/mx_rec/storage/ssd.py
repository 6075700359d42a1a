"""The SSD tier: full-width rows demoted from the host tier, in RocksDB (rocksdict) files.

Writes happen in a background thread (RocksDB releases the GIL), overlapping the training step;
reads wait for them. Large reads are split over the caller and that thread.

Each rank keeps one database per path of ``ssd_data_path``, and paths fill in the order given, each
up to its share of ``ssd_vocabulary_size``. The databases are a cache of the live table: each
process starts with empty ones in fresh folders, removed when it ends (checkpoints are what
persists; ``ssd_folder.py`` has the folders' layout, ``MXREC_KEEP_SSD_DATA`` and the clean-up of
folders that killed processes left).
"""
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List, Sequence, Tuple

import numpy as np
from rocksdict import DBCompressionType, Options, Rdict, WriteBatch, WriteOptions

from mx_rec.key_process.hash_index import HashIndex
from mx_rec.storage import ssd_folder

PARALLEL_READ = 512  # rows of one read worth splitting over two threads


class _WriteFailed(Exception):
    """A background write failed after ``written`` chunks, at database ``db_index``."""

    def __init__(self, written: int, db_index: int, error: Exception) -> None:
        super().__init__(str(error))
        self.written, self.db_index, self.error = written, db_index, error


def _key_bytes(keys: np.ndarray) -> List[bytes]:
    """RocksDB keys of int64 keys [K]: 8 little-endian bytes each."""
    raw = np.ascontiguousarray(keys, dtype="<i8").tobytes()
    return [raw[8 * i:8 * i + 8] for i in range(keys.shape[0])]


def check_paths(table_name: str, paths: Sequence[str]) -> None:
    """Raises ValueError naming the table and the path when one does not exist or is not writable."""
    for path in paths:
        if not os.path.isdir(path):
            raise ValueError(f"table '{table_name}': ssd_data_path {path!r} does not exist or is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"table '{table_name}': ssd_data_path {path!r} is not writable")


def _options() -> Options:
    """Point lookups of fixed-size rows: hash-indexed blocks with a small block cache, no compression
    (rows of floats barely compress), reads through mmap. About 4x faster gets than the defaults."""
    options = Options(raw_mode=True)
    options.optimize_for_point_lookup(32)
    options.set_compression_type(DBCompressionType.none())
    options.set_allow_mmap_reads(True)
    return options


def _write_options() -> WriteOptions:
    # no write-ahead log: the tier is a cache of the live table, rebuilt empty at start; checkpoints hold the rows
    options = WriteOptions()
    options.disable_wal = True
    return options


def _closer(dbs: List[Rdict]):
    """Closes ``dbs`` (flushing them first when their files are kept); holds no reference to the store."""
    def close(keep: bool) -> None:
        for db in dbs:
            if keep:
                db.flush()
            db.close()
    return close


class SsdStore:
    """Keys -> full-width rows on SSD, up to ``capacity`` keys over ``paths``.

    Args:
        table_name: for messages and file names. paths: directories, filled in order.
        capacity: most keys held. width: values per row. dtype: numpy dtype. rank: this process's rank.
    """

    def __init__(self, table_name: str, paths: Sequence[str], capacity: int, width: int, dtype, rank: int) -> None:
        check_paths(table_name, paths)
        self.table_name = table_name
        self.capacity = int(capacity)
        self.share = math.ceil(self.capacity / len(paths))
        self.width = width
        self.dtype = np.dtype(dtype)
        self.folders = ssd_folder.create_folders(table_name, paths, rank)
        self.paths = [os.path.join(folder, ssd_folder.DB) for folder in self.folders]
        self.dbs = []
        for path in self.paths:
            db = Rdict(path, _options())
            db.set_write_options(_write_options())
            self.dbs.append(db)
        ssd_folder.release_on_exit(self, self.folders, _closer(self.dbs))
        self.where = HashIndex(self.capacity, initial_slots=1024)
        self.db_of_slot = np.zeros(min(self.capacity, 4096), dtype=np.int8)
        self.held = np.zeros(len(paths), dtype=np.int64)
        self.reads = 0
        self.writes = 0
        # background writes, and the second half of large reads
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"mxrec_ssd_{table_name}")
        self._writing = None  # the background write in flight (a Future)
        self._unwritten = []  # its (db index, keys, rows) chunks, kept until written

    def __len__(self) -> int:
        return len(self.where)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        return self.where.lookup(keys) >= 0

    def put(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Store distinct absent keys' rows [K, width], filling the paths in order. RocksDB writes them
        in the background (write-behind); every read waits for the write in flight first.

        Raises:
            RuntimeError: the tier is full (naming ``ssd_vocabulary_size``; nothing changes), or the
                previous background write failed (naming the path, see :meth:`settle`).
        """
        if len(self.where) + keys.shape[0] > self.capacity:
            raise RuntimeError(f"table '{self.table_name}' is full: the SSD tier holds {self.capacity} keys; "
                               "raise ssd_vocabulary_size")
        self.settle()
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        slots, _ = self.where.lookup_or_insert(keys)
        self._grow(self.where.rows_reserved)
        values = np.ascontiguousarray(values, dtype=self.dtype)
        start = 0
        chunks = []
        for db_index in range(len(self.dbs)):
            room = self.share - int(self.held[db_index])
            if room <= 0 or start == keys.shape[0]:
                continue
            end = min(keys.shape[0], start + room)
            chunks.append((db_index, keys[start:end], values[start:end]))
            self.db_of_slot[slots[start:end]] = db_index
            self.held[db_index] += end - start
            start = end
        self._unwritten = chunks
        self._writing = self._worker.submit(self._write, chunks)
        self.writes += keys.shape[0]

    def _write(self, chunks) -> int:
        """Write (db index, keys, rows) chunks in order; returns how many were written, raising
        ``_WriteFailed`` (with that count) at the first that fails."""
        row_size = self.width * self.dtype.itemsize
        for done, (db_index, keys, values) in enumerate(chunks):
            batch = WriteBatch(raw_mode=True)
            row_bytes = values.tobytes()
            for i, key in enumerate(_key_bytes(keys)):
                batch.put(key, row_bytes[row_size * i:row_size * (i + 1)])
            try:
                self.dbs[db_index].write(batch)
            except Exception as err:  # RocksDB reports I/O errors (a full disk) as generic exceptions
                raise _WriteFailed(done, db_index, err) from None
        return len(chunks)

    def settle(self) -> None:
        """Wait for the background write. When it failed, the rows stay queued in memory (nothing is
        lost: the next call writes them again) and RuntimeError names the table and the path."""
        if self._writing is None and not self._unwritten:
            return
        try:
            if self._writing is not None:
                self._writing.result()
            else:
                self._write(self._unwritten)
        except _WriteFailed as failed:
            self._writing = None
            self._unwritten = self._unwritten[failed.written:]
            raise RuntimeError(f"table '{self.table_name}': writing the SSD tier at {self.paths[failed.db_index]} "
                               f"failed ({failed.error}); its rows are kept in memory and written again on the "
                               "next access of the tier") from None
        self._writing = None
        self._unwritten = []

    def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until the tier's own write and RocksDB's flushes and compactions are done (at most
        ``timeout_s`` seconds): benchmarks charge that background work to the SSD mode's rounds."""
        self.settle()
        busy = ("rocksdb.num-running-compactions", "rocksdb.num-running-flushes", "rocksdb.compaction-pending",
                "rocksdb.mem-table-flush-pending")
        deadline = time.monotonic() + timeout_s
        while any(db.property_int_value(p) for db in self.dbs for p in busy) and time.monotonic() < deadline:
            time.sleep(0.001)

    def take(self, keys: np.ndarray) -> np.ndarray:
        """Read and drop held keys; returns their rows [K, width]. Only the in-memory index forgets them
        (the stale RocksDB entries are overwritten when the keys come back); eviction deletes for real."""
        slots = self.where.lookup(keys)
        values = self._read(keys, slots)
        np.subtract.at(self.held, self.db_of_slot[slots], 1)
        self.where.remove(keys)
        return values

    def read_into(self, keys: np.ndarray, wanted: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Copy the rows of ``keys`` int64 [K] held here where ``wanted`` bool [K] into ``out`` [K, width],
        keeping them held; returns bool [K], which were copied."""
        where = self.where.lookup(keys)
        found = wanted & (where >= 0)
        if found.any():
            out[found] = self._read(keys[found], where[found])
        return found

    def _read(self, keys: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Rows [K, width] of held keys int64 [K] at their ``where`` slots int64 [K]."""
        self.settle()
        out = np.empty((keys.shape[0], self.width), dtype=self.dtype)
        for db_index, db in enumerate(self.dbs):
            mine = np.flatnonzero(self.db_of_slot[slots] == db_index)
            if mine.size >= PARALLEL_READ:  # RocksDB reads release the GIL: read the two halves at once
                half = mine.size // 2
                other = self._worker.submit(self._get, db, keys, mine[half:], out)
                self._get(db, keys, mine[:half], out)
                other.result()
            elif mine.size:
                self._get(db, keys, mine, out)
        self.reads += keys.shape[0]
        return out

    def _get(self, db: Rdict, keys: np.ndarray, positions: np.ndarray, out: np.ndarray) -> None:
        """out[positions] = the rows of keys[positions], all held in ``db``."""
        raw = db.get(_key_bytes(keys[positions]))
        out[positions] = np.frombuffer(b"".join(raw), dtype=self.dtype).reshape(positions.size, self.width)

    def remove(self, keys: np.ndarray) -> None:
        """Drop keys if held."""
        self.settle()
        slots = self.where.lookup(keys)
        held = slots >= 0
        for db_index, db in enumerate(self.dbs):
            mine = held & (self.db_of_slot[np.maximum(slots, 0)] == db_index)
            for key in _key_bytes(keys[mine]):
                db.delete(key)
            self.held[db_index] -= int(mine.sum())
        self.where.remove(keys[held])

    def items(self) -> Tuple[np.ndarray, np.ndarray]:
        keys, slots = self.where.items()
        return keys, self._read(keys, slots)

    def clear(self) -> None:
        keys, _ = self.where.items()
        self.remove(keys)

    def _grow(self, needed: int) -> None:
        size = self.db_of_slot.shape[0]
        if needed > size:
            while size < needed:
                size *= 2
            self.db_of_slot = np.concatenate([self.db_of_slot, np.zeros(size - self.db_of_slot.shape[0], np.int8)])
