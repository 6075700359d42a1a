"""mx_rec's fused kernels against the TF ops they replace, at the peer benchmark's sizes, in one invocation.

Two graphs on the same data, run in alternating rounds (medians of per-round times):

- ``lazy_adam``: one step's update of ``--rows_updated`` distinct rows (43,794: the largest batch of
  the peer benchmark's pool) of a ``--rows`` x dim table (1.1 x 10^6 x 16) and its m / v slots:
  ``MxrecSparseLazyAdam`` vs two gathers, three scatters and the element-wise ops
  (``MXREC_FUSED_KERNELS=0``'s path). After the rounds both tables and slots must be bit-identical.
- ``segment_sum``: the lookup's backward sum of ``--ids`` (212,992 = 8192 x 26) gradient rows into
  their distinct keys, Zipf(1.1) ids numbered in order of first appearance as the host plan numbers
  them: ``MxrecSegmentSum`` vs ``tf.math.unsorted_segment_sum`` (outputs bit-identical).

Results: ``benchmarks/results/kernels.json`` (ms per call of each path, the ratio TF / fused, machine).

    .venv/bin/python benchmarks/kernels.py [--rounds R] [--calls C] [--output F]
"""
import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.lookup_update import REPO, _mx_rec_source, check_counts, machine_info  # noqa: E402
from mx_rec.data.zipf import zipf_cdf  # noqa: E402
from mx_rec.kernels import library, ops  # noqa: E402
from mx_rec.key_process.dedup import dedup  # noqa: E402

DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "kernels.json"
tf.compat.v1.disable_eager_execution()


def _adam_graph(fused: bool, init: np.ndarray, rows: np.ndarray, grad: np.ndarray):
    os.environ[library.ENV_NAME] = "1" if fused else "0"
    graph = tf.Graph()
    with graph.as_default():
        var = tf.compat.v1.Variable(init, use_resource=True)
        m = tf.compat.v1.Variable(tf.zeros_like(init), use_resource=True)
        v = tf.compat.v1.Variable(tf.zeros_like(init), use_resource=True)
        step = tf.constant(0.001 * np.sqrt(1 - 0.999) / (1 - 0.9), tf.float32)
        update = ops.sparse_lazy_adam(var, m, v, step, tf.constant(0.9), tf.constant(0.999), tf.constant(1e-8),
                                      tf.constant(grad), tf.constant(rows))
        session = tf.compat.v1.Session(graph=graph)
        session.run(tf.compat.v1.global_variables_initializer())
    os.environ.pop(library.ENV_NAME)
    return session, update, [var, m, v]


def _segment_graph(fused: bool, data: np.ndarray, inverse: np.ndarray, segments: int):
    graph = tf.Graph()
    with graph.as_default():
        # variables, not constants: grappler would fold a constant sum away
        x = tf.compat.v1.Variable(data, use_resource=True).read_value()
        ids = tf.compat.v1.Variable(inverse, use_resource=True).read_value()
        out = (ops.segment_sum(x, ids, segments) if fused else tf.math.unsorted_segment_sum(x, ids, segments))
        session = tf.compat.v1.Session(graph=graph)
        session.run(tf.compat.v1.global_variables_initializer())
        return session, out.op


def _rounds(runs: Dict[str, Callable[[], None]], rounds: int, calls: int) -> Dict[str, List[float]]:
    for run in runs.values():
        run()
    times: Dict[str, List[float]] = {name: [] for name in runs}
    for r in range(rounds):
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            start = time.perf_counter()
            for _ in range(calls):
                runs[name]()
            times[name].append(1e3 * (time.perf_counter() - start) / calls)
    return times


def _summary(times: Dict[str, List[float]]) -> dict:
    medians = {name: statistics.median(t) for name, t in times.items()}
    return {"ms_per_call": medians, "ms_per_call_rounds": times, "tf_ops_over_fused": medians["tf_ops"] / medians["fused"]}


def run(args: argparse.Namespace) -> dict:
    if library.library() is None:
        raise SystemExit("the fused kernels are not built: run python -m mx_rec.kernels.build")
    rng = np.random.default_rng(args.seed)
    init = rng.standard_normal((args.rows, args.dim)).astype(np.float32) * 0.05
    rows = rng.choice(args.rows, args.rows_updated, replace=False).astype(np.int64)
    grad = rng.standard_normal((args.rows_updated, args.dim)).astype(np.float32)
    adam = {name: _adam_graph(name == "fused", init, rows, grad) for name in ("fused", "tf_ops")}
    times = _rounds({name: (lambda s=s, u=u: s.run(u)) for name, (s, u, _) in adam.items()}, args.rounds, args.calls)
    states = {name: s.run(state) for name, (s, _, state) in adam.items()}
    identical = all(np.array_equal(a, b) for a, b in zip(states["fused"], states["tf_ops"]))
    adam_result = {**_summary(times), "calls_each": 1 + args.rounds * args.calls, "bit_identical": identical}

    ranks = np.searchsorted(zipf_cdf(args.keys, 1.1), rng.random(args.ids), side="right")
    unique, inverse, _ = dedup(ranks.astype(np.int64))
    data = rng.standard_normal((args.ids, args.dim)).astype(np.float32)
    segments = unique.shape[0] + 2  # the lookup's gathered rows, the zero row and the default row
    seg = {name: _segment_graph(name == "fused", data, inverse, segments) for name in ("fused", "tf_ops")}
    times = _rounds({name: (lambda s=s, o=o: s.run(o)) for name, (s, o) in seg.items()}, args.rounds, args.calls)
    outs = {name: s.run(o.outputs[0]) for name, (s, o) in seg.items()}
    seg_result = {**_summary(times), "distinct_keys": int(unique.shape[0]),
                  "bit_identical": bool(np.array_equal(outs["fused"], outs["tf_ops"]))}
    return {"benchmark": "kernels", "command": " ".join([".venv/bin/python", "benchmarks/kernels.py", *sys.argv[1:]]),
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "settings": {k: v for k, v in vars(args).items() if k != "output"},
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
            "lazy_adam": adam_result, "segment_sum": seg_result, "machine": machine_info(),
            "source": _mx_rec_source(), "load_average_after": list(os.getloadavg())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_100_000)
    parser.add_argument("--rows_updated", type=int, default=43_794)
    parser.add_argument("--ids", type=int, default=8192 * 26)
    parser.add_argument("--keys", type=int, default=1_000_000, help="Zipf key space of the ids")
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    check_counts(parser, args, ("rounds", "calls"))
    result = run(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for name in ("lazy_adam", "segment_sum"):
        entry = result[name]
        print(f"{name:12s} fused {entry['ms_per_call']['fused']:6.2f} ms, TF ops {entry['ms_per_call']['tf_ops']:6.2f} ms: "
              f"{entry['tf_ops_over_fused']:.2f}x, bit-identical {entry['bit_identical']}")
    print(f"written: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
