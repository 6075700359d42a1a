"""The SSD tier's RocksDB writes run in the background: reads wait for them, and a failed write
(a full disk) keeps its rows in memory, names the path, and succeeds once the disk has room."""
import numpy as np
import pytest

from mx_rec.storage.ssd import SsdStore

WIDTH = 4


class FlakyDb:
    """A RocksDB handle whose next ``fail`` writes raise, as RocksDB does on a full disk."""

    def __init__(self, db) -> None:
        self.db, self.fail = db, 0

    def write(self, batch) -> None:
        if self.fail:
            self.fail -= 1
            raise Exception("IO error: No space left on device")
        self.db.write(batch)

    def __getattr__(self, name):
        return getattr(self.db, name)


def _rows(keys):
    return (keys[:, None] * 10 + np.arange(WIDTH)).astype(np.float32)


def test_background_writes_are_read_back_and_split_over_paths(tmp_path):
    paths = [tmp_path / "a", tmp_path / "b"]
    for p in paths:
        p.mkdir()
    store = SsdStore("t", [str(p) for p in paths], 3000, WIDTH, np.float32, 0)
    keys = np.arange(1, 2001, dtype=np.int64) * 7
    store.put(keys[:1200], _rows(keys[:1200]))
    store.put(keys[1200:], _rows(keys[1200:]))  # waits for the first write, then queues its own
    assert store.held.tolist() == [1500, 500]
    picked = keys[::3]
    np.testing.assert_array_equal(store.take(picked), _rows(picked))  # > PARALLEL_READ rows: two threads
    rest, rows = store.items()
    assert np.array_equal(np.sort(rest), np.setdiff1d(keys, picked))
    np.testing.assert_array_equal(rows, _rows(rest))


def test_a_failed_write_names_the_path_and_loses_nothing(tmp_path):
    store = SsdStore("t", [str(tmp_path)], 100, WIDTH, np.float32, 0)
    flaky = store.dbs[0] = FlakyDb(store.dbs[0])
    store.put(np.array([1, 2], np.int64), _rows(np.array([1, 2])))
    flaky.fail = 2  # the background write and the retry on the next access both fail
    store.put(np.array([3, 4, 5], np.int64), _rows(np.array([3, 4, 5])))
    with pytest.raises(RuntimeError, match=f"table 't': writing the SSD tier at {tmp_path}/mxrec_t_rank0 failed"):
        store.take(np.array([3], np.int64))
    with pytest.raises(RuntimeError, match="No space left on device"):
        store.items()
    assert len(store) == 5  # the rows are still the tier's, kept in memory
    keys, rows = store.items()  # the disk has room again: the queued rows are written, then read
    order = np.argsort(keys)
    assert keys[order].tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(rows[order], _rows(np.arange(1, 6)))
