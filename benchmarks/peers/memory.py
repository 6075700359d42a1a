"""Peak RSS probe: one process per system trains the micro workload on N distinct keys.

``python -m benchmarks.peers.memory --system S --keys N [--settings JSON | --preset P]`` prints one
JSON line: ``{"system", "keys", "keys_held", "rss_after_init_bytes", "maxrss_bytes", "ru_maxrss_bytes",
"rss_bytes", "process", "parts"}`` (RSS after the graph and session are built, this process's peak RSS
(VmHWM), getrusage's (which Linux carries over from the parent), RSS at the end; bytes;
``process`` and ``parts`` as ``benchmarks.peers.memory_parts`` has them). Every probe imports the same
modules (TensorFlow, mx_rec, TFRA), so ``--system baseline`` (a session that ran a trivial op) is
subtracted to leave what the table costs: its rows, its optimizer slots (lazy Adam: m and v, so the
raw data is 3 x dim x 4 bytes a key), its hash index and the step's transient buffers.

``--parts`` runs the baseline and the system(s) (comma-separated) as child probes and prints the
per-part table (each byte of the peak over the baseline with its owner), then the JSON lines; e.g.
``python -m benchmarks.peers.memory --parts --system mx_rec_hbm,plain_tf --keys 1000000`` (~30 s a
system on 2 CPUs; run it with the benchmark environment's python for TFRA).

Keys: ranks 1..N scattered as in the pool, ``batch_size`` x ``fields`` distinct keys a step (every
key once, the last batch topped up with the first keys). Each batch is made when it is fed, so the
probe holds one batch of ids, not all N. mx_rec HBM reserves its device rows up front (N + 10%, as
in the speed runs); TFRA's table grows as keys arrive; plain TF has N rows.
"""
import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
from typing import Dict, Iterator, List, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROBED = ("mx_rec_hbm", "tfra", "plain_tf")


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def batches(keys: int, fields: int, batch_size: int) -> Iterator:
    """int64 [<= batch_size, fields] batches holding the scattered ranks 1..keys once each, in order;
    the last row is topped up with the first keys (as many as it lacks)."""
    import numpy as np

    from benchmarks.lookup_update import _scatter_keys

    rows = -(-keys // fields)
    for start in range(0, rows, batch_size):
        flat = np.arange(start * fields, min(start + batch_size, rows) * fields, dtype=np.int64)
        yield _scatter_keys(flat % keys + 1).reshape(-1, fields)


def probe(system: str, keys: int, settings) -> dict:
    """Train ``system``'s micro graph over ``keys`` distinct keys; returns the RSS figures and parts."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_recommenders_addons  # noqa: F401 - same imports in every probe
    import mx_rec.core.embedding  # noqa: F401

    from benchmarks.peers import memory_parts, systems
    from benchmarks.peers.settings import tier_sizes

    tf.compat.v1.disable_eager_execution()
    settings = dataclasses.replace(settings, num_keys=keys)
    held, after_init, parts = 0, None, dict.fromkeys(memory_parts.PART_NAMES, 0)
    if system == "baseline":
        with tf.Graph().as_default(), tf.compat.v1.Session() as session:
            x = tf.compat.v1.placeholder(tf.int64, [None, settings.fields])
            session.run(tf.reduce_sum(x), feed_dict={x: np.ones((settings.batch_size, settings.fields), np.int64)})
    else:
        sizes = tier_sizes("hbm", keys, 0) if system == "mx_rec_hbm" else None
        built = systems.build(system, "micro", settings, sizes)
        after_init = _rss_bytes()
        for batch in batches(keys, settings.fields, settings.batch_size):
            built.session.run(built.train_op, feed_dict={built.feeds["ids"]: batch})
        held = built.stats().get("keys_held", keys)
        if system == "mx_rec_hbm":
            parts = memory_parts.mx_rec_parts(built.session)
        elif system == "plain_tf":
            parts = memory_parts.plain_tf_parts(built.session, "micro_table")
        else:
            parts = memory_parts.tfra_parts(held, settings.dim)
    process = memory_parts.process_memory()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a probe started by a large
    # parent (the benchmark driver, ~600 MB) would report the parent's peak when its own is lower
    # (the baseline did: every figure over it came out ~90 bytes a key low)
    return {"system": system, "keys": keys, "keys_held": held, "rss_after_init_bytes": after_init,
            "maxrss_bytes": process["peak_rss"], "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "rss_bytes": _rss_bytes(), "process": process, "parts": parts}


def run_probe(system: str, keys: int, settings, env: Dict[str, str] = None, timeout: float = 1800) -> dict:
    """:func:`probe` in a child process (``python -m benchmarks.peers.memory``); its JSON line.

    Raises:
        RuntimeError: the child failed; the message ends with its stderr.
    """
    from benchmarks.peers.handles import REPO, worker_env

    cmd = [sys.executable, "-m", "benchmarks.peers.memory", "--system", system, "--keys", str(keys),
           "--settings", json.dumps(dataclasses.asdict(settings))]
    proc = subprocess.run(cmd, cwd=REPO, env=env or worker_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe {system} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _median_process(runs: List[dict]) -> dict:
    """The probe's process figures, each the median over repeats (mallinfo's and TF's fields too)."""
    procs = [r["process"] for r in runs]
    out = {k: statistics.median(p[k] for p in procs) for k in ("rss", "peak_rss", "rss_anon", "rss_file")}
    for group in ("malloc", "tf_allocator"):
        if all(p.get(group) for p in procs):
            out[group] = {k: statistics.median(p[group][k] for p in procs) for k in procs[0][group]}
        else:
            out[group] = None
    return dict(out, parts=runs[-1]["parts"])


def section(settings, runs: Dict[str, List[dict]]) -> dict:
    """The results JSON's ``memory`` section from the probes' JSON lines (``runs["baseline"]`` and one
    list a system, one line a repeat): peak RSS minus the baseline's (medians over repeats), per
    10^6 keys and per key, and each system's ``breakdown`` (``memory_parts.breakdown``)."""
    from benchmarks.peers import memory_parts

    def median(name: str, field: str) -> float:
        return statistics.median(r[field] for r in runs[name])

    raw_row = settings.dim * 4
    base_peak, base_rss = median("baseline", "maxrss_bytes"), median("baseline", "rss_bytes")
    base_process = _median_process(runs["baseline"])
    out = {"keys": settings.memory_keys, "dim": settings.dim, "repeats": len(runs["baseline"]),
           "raw_row_bytes": raw_row, "raw_row_with_adam_slots_bytes": 3 * raw_row,
           "baseline_maxrss_bytes": base_peak, "baseline_maxrss_bytes_all": [r["maxrss_bytes"] for r in runs["baseline"]],
           "note": "peak = peak RSS (VmHWM) of the probe minus the baseline probe's (medians over repeats); after_init "
                   "and at_end = current RSS minus the baseline's current RSS; breakdown: the peak split into "
                   "the table's parts (exact sizes) and the rest (benchmarks/peers/memory_parts.py)",
           "systems": {}}
    for name, system_runs in runs.items():
        if name == "baseline":
            continue
        extra = median(name, "maxrss_bytes") - base_peak
        per_key = extra / settings.memory_keys
        out["systems"][name] = {
            "maxrss_bytes_all": [r["maxrss_bytes"] for r in system_runs], "keys_held": system_runs[-1]["keys_held"],
            "rss_after_init_over_baseline_bytes": median(name, "rss_after_init_bytes") - base_rss,
            "rss_at_end_over_baseline_bytes": median(name, "rss_bytes") - base_rss,
            "peak_rss_over_baseline_bytes": extra, "peak_rss_per_1e6_keys_bytes": per_key * 1e6,
            "bytes_per_key": per_key, "bytes_per_key_over_raw_row": per_key / raw_row,
            "bytes_per_key_over_raw_row_with_slots": per_key / (3 * raw_row),
            "breakdown": memory_parts.breakdown(_median_process(system_runs), base_process, settings.memory_keys)}
    return out


def measure(settings, systems: Sequence[str], log=print) -> dict:
    """Probe the baseline and each probed system of ``systems`` ``settings.memory_repeats`` times,
    alternating, one process each; returns :func:`section`."""
    names = ("baseline",) + tuple(s for s in PROBED if s in systems)
    runs: Dict[str, List[dict]] = {n: [] for n in names}
    for _ in range(settings.memory_repeats):
        for name in names:
            runs[name].append(run_probe(name, settings.memory_keys, settings))
        log("memory: " + ", ".join(f"{n} {r[-1]['maxrss_bytes'] / 2**20:.0f} MiB" for n, r in runs.items()))
    return section(settings, runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--system", required=True,
                        help=f"baseline or one of {PROBED} (with --parts: a comma-separated list)")
    parser.add_argument("--keys", type=int, required=True)
    parser.add_argument("--settings", help="Settings as JSON (default: the preset's)")
    parser.add_argument("--preset", default="full", help="preset when --settings is not given")
    parser.add_argument("--parts", action="store_true", help="probe the baseline and the system(s) as child "
                        "processes and print the per-part table")
    args = parser.parse_args()
    from benchmarks.peers.settings import PRESETS, Settings

    settings = Settings(**json.loads(args.settings)) if args.settings else PRESETS[args.preset]
    systems = args.system.split(",")
    unknown = set(systems) - set(("baseline",) + PROBED)
    if unknown or (len(systems) > 1 and not args.parts):
        parser.error(f"--system: {args.system!r}; one of {('baseline',) + PROBED} (several only with --parts)")
    if not args.parts:
        sys.__stdout__.write(json.dumps(probe(systems[0], args.keys, settings)) + "\n")
        return 0
    from benchmarks.peers import memory_parts

    settings = dataclasses.replace(settings, memory_keys=args.keys)
    runs = {"baseline": [run_probe("baseline", args.keys, settings)]}
    for name in systems:
        runs[name] = [run_probe(name, args.keys, settings)]
    result = section(settings, runs)
    entries = {n: dict(e["breakdown"], keys=args.keys) for n, e in result["systems"].items()}
    print(f"peak RSS over the baseline after training {args.keys:,} keys (dim {settings.dim}, lazy Adam):")
    print(memory_parts.format_table(entries))
    for name, line in runs.items():
        print(json.dumps(line[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
