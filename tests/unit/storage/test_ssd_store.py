"""The SSD tier's RocksDB writes run in the background: reads wait for them, and a failed write
(a full disk) keeps its rows in memory, names the path, and succeeds once the disk has room. Each
process's databases live in a fresh folder that goes when the process ends (or stays, when asked),
and a killed process's folder is removed by the next store under that path."""
import gc
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rocksdict import Options, Rdict

from mx_rec.storage import ssd_folder
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
    with pytest.raises(RuntimeError, match=f"table 't': writing the SSD tier at {store.paths[0]} failed"):
        store.take(np.array([3], np.int64))
    with pytest.raises(RuntimeError, match="No space left on device"):
        store.items()
    assert len(store) == 5  # the rows are still the tier's, kept in memory
    keys, rows = store.items()  # the disk has room again: the queued rows are written, then read
    order = np.argsort(keys)
    assert keys[order].tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(rows[order], _rows(np.arange(1, 6)))


# A process that opens an SSD store under argv[1], writes rows 1..100, prints its folder, then exits
# (argv[2] == "exit") or waits to be killed.
OWNER = """
import sys
import numpy as np
from mx_rec.storage.ssd import SsdStore
store = SsdStore("t", [sys.argv[1]], 1000, 4, np.float32, 0)
keys = np.arange(1, 101, dtype=np.int64)
store.put(keys, (keys[:, None] * 10 + np.arange(4)).astype(np.float32))
store.settle()
print(store.folders[0], flush=True)
if sys.argv[2] != "exit":
    sys.stdin.read()
"""


def _owner(path, how, keep=False):
    env = {k: v for k, v in os.environ.items() if k != ssd_folder.KEEP_ENV}
    if keep:
        env[ssd_folder.KEEP_ENV] = "1"
    proc = subprocess.Popen([sys.executable, "-c", OWNER, str(path), how], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    folder = Path(proc.stdout.readline().strip())
    assert folder.parent == path and folder.name.startswith(f"mxrec_ssd_t_rank0_{proc.pid}_"), folder
    if how == "kill":
        proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == (-signal.SIGKILL if how == "kill" else 0)
    return folder


def _marker(folder):
    return json.loads((folder / ssd_folder.MARKER).read_text())


def test_the_folder_goes_with_the_process_and_a_killed_ones_is_cleaned_by_the_next(tmp_path):
    assert _owner(tmp_path, "exit") and list(tmp_path.iterdir()) == []
    killed = _owner(tmp_path, "kill")
    assert _marker(killed)["state"] == "in use" and (killed / "db").is_dir()  # what a kill leaves
    store = SsdStore("t", [str(tmp_path)], 100, WIDTH, np.float32, 0)
    assert not killed.exists() and [p.name for p in tmp_path.iterdir()] == [Path(store.folders[0]).name]
    assert len(store) == 0 and store.items()[0].size == 0  # starts empty, whatever was on disk
    folder = Path(store.folders[0])
    del store
    gc.collect()
    assert not folder.exists()


def test_keep_leaves_a_flushed_database_that_later_runs_leave_alone(tmp_path):
    kept = _owner(tmp_path, "exit", keep=True)
    assert _marker(kept)["state"] == "kept"
    db = Rdict(str(kept / "db"), Options(raw_mode=True))
    try:
        row = np.frombuffer(db[np.int64(7).astype("<i8").tobytes()], np.float32)
    finally:
        db.close()
    np.testing.assert_array_equal(row, [70, 71, 72, 73])
    store = SsdStore("t", [str(tmp_path)], 100, WIDTH, np.float32, 0)
    assert kept.exists() and len(store) == 0 and Path(store.folders[0]) != kept
