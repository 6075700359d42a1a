"""Delta vs full checkpoint: bytes and seconds of a save when 1% of a 10^6-key table changed, in one invocation.

The table: 10^6 keys (``--keys``), dim 16, lazy Adam (two slots), admission counts (``access_threshold``
1), in HBM. It is filled through the restore path (every key a row, slots and a count), then a base is
saved. Each round trains one step on ``--changed`` (1%) distinct keys that the previous rounds did not
touch, then saves, in alternating order, a delta (``save_delta=True``, the chain's next link) and a plain
full checkpoint of the same state (its own directory). Bytes: every file of the unit (sparse shards,
manifest, TF's files). Seconds: the ``Saver.save`` call (wall clock, the median over the rounds). The
ratios are delta / full; the goal is at most 3%. The last round also restores the chain (base + every
delta) and the full checkpoint into fresh tables, checks they are equal, and times both. Last, what
tracking changes costs a training batch: logging the distinct keys its plan found in 8192 x 26 Zipf
ids, against the dedup the lookup already runs on them. Results: benchmarks/results/checkpoint_delta.json.

    .venv/bin/python benchmarks/checkpoint_delta.py [--keys N] [--changed N] [--dim D] [--rounds R]
                                                    [--output F]
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.lookup_update import REPO, _mx_rec_source, machine_info  # noqa: E402
from mx_rec.core.embedding import create_table, sparse_lookup  # noqa: E402
from mx_rec.key_process import changes  # noqa: E402
from mx_rec.key_process.dedup import dedup  # noqa: E402
from mx_rec.optimizers import lazy_adam  # noqa: E402
from mx_rec.saver import layout  # noqa: E402
from mx_rec.saver.table_state import TableState, apply, collect, slot_key  # noqa: E402
from mx_rec.util.initialize import init, terminate_config_initializer  # noqa: E402

DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "checkpoint_delta.json"
GOAL = 0.03
tf.compat.v1.disable_eager_execution()


def _unit_bytes(prefix: str) -> int:
    """Bytes of every file of the checkpoint ``prefix``: its sparse unit and TF's files (``.meta`` excluded:
    the graph, written only for the first save by Rec SDK's scripts and equal for both kinds)."""
    total = 0
    for root, _, files in os.walk(layout.sparse_dir(prefix)):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files if not f.endswith(".meta"))
    directory, name = os.path.split(prefix)
    total += sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory)
                 if f.startswith(name + ".") and not f.endswith(".meta"))
    return total


def _build(keys: int, dim: int, changed: int):
    opt = lazy_adam.create_hash_optimizer(0.01)
    table = create_table(tf.int64, dim, "big", tf.compat.v1.truncated_normal_initializer(stddev=0.1, seed=1),
                         device_vocabulary_size=keys + keys // 10)
    ids = tf.compat.v1.placeholder(tf.int64, [changed])
    emb = sparse_lookup(table, ids, access_and_evict_config={"access_threshold": 1})
    w = tf.compat.v1.get_variable("w", [dim, 1], initializer=tf.constant_initializer(0.1))
    loss = tf.reduce_mean(tf.matmul(emb, w))
    step = tf.compat.v1.train.get_or_create_global_step()
    train = opt.minimize(loss, var_list=[table.variable], global_step=step)
    return table, ids, train


def _fill(table, keys: int, dim: int, session) -> None:
    rng = np.random.default_rng(0)
    all_keys = np.arange(keys, dtype=np.int64) * 7 + 3
    state = TableState(keys=all_keys, embeddings=rng.standard_normal((keys, dim), np.float32),
                       slots={slot_key(*n): rng.random((keys, dim), np.float32) for n in table.slot_order()},
                       stat_keys=all_keys, counts=np.full(keys, 5, np.int64),
                       last_seen=np.full(keys, -1, np.int64), newest=0)
    apply(table, state, session)
    changes.reset([table])


def _timed_save(saver, session, path, step, **kwargs):
    start = time.perf_counter()
    prefix = saver.save(session, path, global_step=step, write_meta_graph=False, **kwargs)
    return time.perf_counter() - start, _unit_bytes(prefix), prefix


def _restore_time(directory: str, prefix: str, keys: int, dim: int, changed: int) -> tuple:
    terminate_config_initializer()
    with tf.Graph().as_default():
        init(is_incremental_checkpoint=True, save_checkpoint_due_time=3600, save_delta_checkpoints_secs=600)
        table, _, _ = _build(keys, dim, changed)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as session:
            start = time.perf_counter()
            saver.restore(session, prefix)
            seconds = time.perf_counter() - start
            state = collect(table, session)
    terminate_config_initializer()
    order = np.argsort(state.keys)
    return seconds, (state.keys[order], state.embeddings[order], {n: v[order] for n, v in state.slots.items()})


def tracking_cost(batches: int = 20, batch: int = 8192 * 26) -> dict:
    """What logging a training batch's keys costs: ``ChangeLog.planned_distinct`` of the distinct keys and
    sightings the lookup's plan found, on Zipf(1.1) batches over 10^6 keys (8192 x 26 ids), against the
    dedup every lookup already runs on the same batch (ms, medians)."""
    rng = np.random.default_rng(1)
    data = [np.minimum(rng.zipf(1.1, batch), 10 ** 6).astype(np.int64) for _ in range(batches)]
    log = changes.ChangeLog()
    log.planned(data[0][:8])  # compile both
    logged, deduped = [], []
    for ids in data:
        start = time.perf_counter()
        unique, _, occurrences = dedup(ids)
        deduped.append(time.perf_counter() - start)
        start = time.perf_counter()
        log.planned_distinct(unique, occurrences)
        logged.append(time.perf_counter() - start)
    start = time.perf_counter()
    distinct = log.take()[0].shape[0]
    take = time.perf_counter() - start
    return {"ids_per_batch": batch, "batches": batches, "distinct_keys_logged": int(distinct),
            "log_ms_per_batch": round(1e3 * statistics.median(logged), 3),
            "lookup_dedup_ms_per_batch": round(1e3 * statistics.median(deduped), 3),
            "log_over_dedup": round(statistics.median(logged) / statistics.median(deduped), 3),
            "take_ms": round(1e3 * take, 3)}


def run(keys: int, changed: int, dim: int, rounds: int, workdir: str) -> dict:
    terminate_config_initializer()
    chain_dir, full_dir = os.path.join(workdir, "chain"), os.path.join(workdir, "full")
    deltas, fulls = [], []
    with tf.Graph().as_default():
        init(is_incremental_checkpoint=True, save_checkpoint_due_time=3600, save_delta_checkpoints_secs=600)
        table, ids, train = _build(keys, dim, changed)
        saver = tf.compat.v1.train.Saver(max_to_keep=rounds + 2)
        full_saver = tf.compat.v1.train.Saver(max_to_keep=2)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            _fill(table, keys, dim, session)
            base_s, base_bytes, _ = _timed_save(saver, session, os.path.join(chain_dir, "model"), 0,
                                                is_incremental_checkpoint=True)
            for r in range(1, rounds + 1):
                batch = (np.arange((r - 1) * changed, r * changed, dtype=np.int64) % keys) * 7 + 3
                session.run(train, {ids: batch})
                order = [("delta", "full"), ("full", "delta")][r % 2]
                for kind in order:
                    if kind == "delta":
                        deltas.append(_timed_save(saver, session, os.path.join(chain_dir, "model"), r,
                                                  is_incremental_checkpoint=True, save_delta=True))
                    else:
                        fulls.append(_timed_save(full_saver, session, os.path.join(full_dir, "model"), r))
    terminate_config_initializer()
    chain_s, chain_state = _restore_time(chain_dir, deltas[-1][2], keys, dim, changed)
    full_s, full_state = _restore_time(full_dir, fulls[-1][2], keys, dim, changed)
    np.testing.assert_array_equal(chain_state[0], full_state[0])
    np.testing.assert_array_equal(chain_state[1], full_state[1])
    for name in full_state[2]:
        np.testing.assert_array_equal(chain_state[2][name], full_state[2][name])
    delta_s, delta_b = statistics.median(d[0] for d in deltas), statistics.median(d[1] for d in deltas)
    full_s_med, full_b = statistics.median(f[0] for f in fulls), statistics.median(f[1] for f in fulls)
    return {
        "keys": keys, "changed_keys_per_save": changed, "dim": dim, "slots": 2, "rounds": rounds,
        "base_save": {"seconds": round(base_s, 4), "bytes": base_bytes},
        "delta_save": {"seconds_median": round(delta_s, 4), "bytes_median": int(delta_b),
                       "seconds": [round(d[0], 4) for d in deltas], "bytes": [d[1] for d in deltas]},
        "full_save": {"seconds_median": round(full_s_med, 4), "bytes_median": int(full_b),
                      "seconds": [round(f[0], 4) for f in fulls], "bytes": [f[1] for f in fulls]},
        "delta_over_full": {"bytes": round(delta_b / full_b, 5), "seconds": round(delta_s / full_s_med, 5)},
        "goal_delta_over_full_at_most": GOAL,
        "meets_goal": bool(delta_b / full_b <= GOAL and delta_s / full_s_med <= GOAL),
        "restore": {"chain_seconds": round(chain_s, 4), "links": rounds + 1, "full_seconds": round(full_s, 4),
                    "identical": True},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--changed", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="mxrec_delta_bench_")
    try:
        result = run(args.keys, args.changed, args.dim, args.rounds, workdir)
        result["change_log"] = tracking_cost()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result.update({"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                   "machine": machine_info(), **_mx_rec_source()})
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("base_save", "delta_over_full", "meets_goal", "restore", "change_log")},
                     indent=1))


if __name__ == "__main__":
    main()
