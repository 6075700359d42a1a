"""The peers benchmark's memory breakdown: exact part sizes, parts and remainder adding up, the README rows."""
import dataclasses

import numpy as np

from benchmarks.lookup_update import _scatter_keys
from benchmarks.peers import memory, memory_parts, report
from benchmarks.peers.settings import PRESETS, tier_sizes

SMALL = dataclasses.replace(PRESETS["small"], batch_size=64, fields=5, num_keys=1000, memory_keys=1000)


def test_batches_hold_every_key_once_and_top_up_the_last_row_as_before():
    keys, fields, batch = 1003, 7, 50
    all_keys = _scatter_keys(np.arange(1, keys + 1, dtype=np.int64))
    rows = -(-keys // fields)
    padded = np.concatenate([all_keys, all_keys[: rows * fields - keys]]).reshape(rows, fields)
    got = list(memory.batches(keys, fields, batch))
    assert [b.shape[0] for b in got] == [50, 50, 44]
    np.testing.assert_array_equal(np.concatenate(got), padded)


def test_mx_rec_parts_are_the_variables_and_the_store_arrays(graph):
    from benchmarks.peers import systems

    built = systems.build("mx_rec_hbm", "micro", SMALL, tier_sizes("hbm", SMALL.num_keys, 0))
    for batch in memory.batches(SMALL.num_keys, SMALL.fields, SMALL.batch_size):
        built.session.run(built.train_op, feed_dict={built.feeds["ids"]: batch})
    parts = memory_parts.mx_rec_parts(built.session)
    from mx_rec.util.initialize import export_table_instances

    (table,) = export_table_instances().values()
    store = table.backend.store
    rows = (int(1.1 * SMALL.num_keys) + 1) * SMALL.dim * 4
    assert parts["rows"] == rows and parts["optimizer slots"] == 2 * rows  # lazy Adam's m and v
    assert parts["key index"] == store.index.nbytes == sum(a.nbytes for a in store.index.slot_arrays)
    assert store.index.slot_arrays[1].dtype == np.int32 and len(store.index) == SMALL.num_keys
    assert parts["pending flags"] == store._pending.nbytes == int(1.1 * SMALL.num_keys)
    assert parts["admission counters"] == 0 and parts["host structures"] == 0


def _line(system, peak, rss, file_, free, parts=None):
    process = {"rss": rss, "peak_rss": peak, "rss_anon": rss - file_, "rss_file": file_,
               "malloc": {"in_use": 1, "free_held": free, "mmapped": 0, "arena": 1}, "tf_allocator": None}
    return {"system": system, "keys": 1000, "keys_held": 1000 if parts else 0, "rss_after_init_bytes": rss,
            "maxrss_bytes": peak, "rss_bytes": rss, "process": process,
            "parts": parts or dict.fromkeys(memory_parts.PART_NAMES, 0)}


def test_section_splits_the_peak_into_parts_and_remainder_exactly():
    parts = dict(dict.fromkeys(memory_parts.PART_NAMES, 0), rows=64_000, **{"optimizer slots": 128_000,
                                                                             "key index": 24_000})
    runs = {"baseline": [_line("baseline", 5_000_000, 4_900_000, 2_000_000, 10_000)] * 3,
            "mx_rec_hbm": [_line("mx_rec_hbm", p, 5_300_000, 2_020_000, 60_000, parts)
                           for p in (5_400_000, 5_450_000, 5_420_000)]}
    section = memory.section(SMALL, runs)
    entry = section["systems"]["mx_rec_hbm"]
    assert entry["peak_rss_over_baseline_bytes"] == 420_000 and entry["bytes_per_key"] == 420.0
    split = entry["breakdown"]
    assert split["state_bytes"] == 216_000 and split["state_bytes_per_key"] == 216.0
    remainder = {r["part"]: r["bytes"] for r in split["remainder"]}
    assert remainder["peak temporaries"] == 420_000 - 400_000 and remainder["code and files mapped in"] == 20_000
    assert remainder["freed memory malloc keeps"] == 50_000
    assert sum(r["bytes"] for r in split["parts"]) + sum(remainder.values()) == 420_000
    lines = report._memory_parts_lines(section)
    assert "| **table state** | 216.0 |" in lines and "| **peak RSS over baseline** | 420.0 |" in lines
    assert "| key index | 24.0 |" in lines and not any(line.startswith("| change log") for line in lines)
    text = memory_parts.format_table({"mx_rec_hbm": dict(split, keys=1000)})
    assert "peak RSS over baseline" in text and "216.0 B/key" in text


def test_a_probe_started_by_a_large_parent_reports_its_own_peak():
    import subprocess
    import sys

    from tests.paths import REPO

    ballast = bytearray(300 << 20)  # touched: the parent's RSS is >= 300 MB
    code = ("import resource; from benchmarks.peers.memory_parts import _status; "
            "print(_status()['VmHWM'], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    own_peak, _inherited = map(int, out.stdout.split())
    assert own_peak < 200 << 20 and len(ballast) == 300 << 20  # what memory.probe reports as maxrss_bytes
