"""Static against dynamic shapes: one MMoE-shaped training step with ``send_count`` and without, in one invocation.

The model is ``models/mmoe``'s "sum" network (PaddleRec's census MMoE): per example 29 sparse ids
into one table of width 144 (8 experts x 16 units + 2 gates x 8 experts), summed, plus a linear
layer over 13 dense values; experts, two softmax gates, two towers, two sigmoid losses. Dense
variables train with Adam, the table with hash lazy Adam; the batches come from a ``tf.data``
pipeline over a pre-generated pool (census-like ids: each field draws from its own small
vocabulary, 2 to 60 values).

Modes, each its own graph and session:

- ``static``: ``init(use_dynamic=False)``, ``sparse_lookup(..., send_count=46000 // ranks)``
  (Rec SDK's MMoE example sets 46000 // rank_size; a batch has far fewer distinct keys).
- ``dynamic``: ``init(use_dynamic=True)``, no ``send_count``.

Both modes must train the same numbers: their losses over the first pass of the pool are
compared exactly (``losses_identical``). Then warm-up steps, then rounds alternating between the
modes (``steps`` timed steps each); steps/s is the median of the rounds, ``ratio_static_over_dynamic``
the ratio of the medians and ``ratio_paired_rounds_median`` the median of per-round ratios (steadier
when other processes load the machine), ``cpu_ms_per_step`` the median over the rounds of the
process's CPU time (every thread; on 2 ranks, rank 0's process). One rank runs in this process;
two ranks run under ``horovodrun --gloo -np 2`` (this script with ``--worker``), each rank training
its own batches with the table sharded over both. Results: benchmarks/results/static_dynamic.json.
``--quick`` (send_count 4600, batch 32, a few steps) is the smoke test's run.

    .venv/bin/python benchmarks/static_dynamic.py [--quick] [--ranks 1 2] [--rounds N] [--steps N]
                                                  [--output F] [--readme README.md]
"""
import argparse
import dataclasses
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.lookup_update import REPO, _mx_rec_source, check_counts, machine_info  # noqa: E402
from benchmarks.readme_block import replace_block  # noqa: E402

DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "static_dynamic.json"
README_BEGIN, README_END = "<!-- static_dynamic:begin -->", "<!-- static_dynamic:end -->"
MODES = ("static", "dynamic")
NUM_EXPERTS, EXPERT_UNITS, TOWER_UNITS, NUM_TASKS = 8, 16, 8, 2
TARGET = 0.9  # static mode within 10% of dynamic mode's steps/s


@dataclasses.dataclass
class Settings:
    """What one invocation measures.

    Attributes:
        batch_size / fields: ids per rank and step are int64 [batch_size, fields].
        dense_features: float32 [batch_size, dense_features] per step.
        max_field_vocabulary: each field's vocabulary has 2 .. this many values.
        send_count: static mode's ``send_count`` on one rank; on N ranks ``send_count // N``.
        pool_batches: batches per rank generated before timing and cycled through.
        rounds / steps / warmup_steps: timed rounds per mode, timed steps per round, untimed steps
            per mode after the first pass.
    """

    preset: str
    batch_size: int
    fields: int
    dense_features: int
    max_field_vocabulary: int
    send_count: int
    pool_batches: int
    rounds: int
    steps: int
    warmup_steps: int
    dim: int = NUM_EXPERTS * EXPERT_UNITS + NUM_TASKS * NUM_EXPERTS
    learning_rate: float = 0.001
    seed: int = 20241201


PRESETS: Dict[str, Settings] = {
    "full": Settings(preset="full", batch_size=256, fields=29, dense_features=13, max_field_vocabulary=60,
                     send_count=46000, pool_batches=16, rounds=21, steps=20, warmup_steps=10),
    "quick": Settings(preset="quick", batch_size=32, fields=29, dense_features=13, max_field_vocabulary=60,
                      send_count=4600, pool_batches=4, rounds=2, steps=3, warmup_steps=1),
}


# ---------------------------------------------------------------------------------------------- data

def make_pool(settings: Settings, rank: int):
    """(ids int64 [P, B, F], dense float32 [P, B, D], labels float32 [P, B, 2]) of one rank.

    Field f's ids are ``f * 1000 + v`` with v uniform in its vocabulary (the same vocabularies on
    every rank), so keys never collide across fields, as census.py's ids do not.
    """
    vocab = np.random.default_rng(settings.seed).integers(2, settings.max_field_vocabulary + 1, settings.fields)
    rng = np.random.default_rng(settings.seed + 1 + rank)
    shape = (settings.pool_batches, settings.batch_size)
    ids = np.stack([f * 1000 + rng.integers(0, vocab[f], shape) for f in range(settings.fields)], axis=-1)
    dense = rng.random(shape + (settings.dense_features,), dtype=np.float32)
    labels = (rng.random(shape + (NUM_TASKS,)) < 0.3).astype(np.float32)
    return ids.astype(np.int64), dense, labels


# ------------------------------------------------------------------------------------------- systems

@dataclasses.dataclass
class ModeSystem:
    """One mode's graph and session; ``run`` trains on the pipeline's next batches."""

    name: str
    session: tf.compat.v1.Session
    train_op: tf.Operation
    loss: tf.Tensor
    table: object

    def run(self, steps: int, fetch_loss: bool = False) -> List[float]:
        fetches = [self.train_op, self.loss] if fetch_loss else self.train_op
        return [float(out[1]) if fetch_loss else 0.0 for out in (self.session.run(fetches) for _ in range(steps))]

    def timed(self, steps: int) -> Tuple[float, float]:
        """(wall seconds, this process's CPU seconds over all its threads) of ``steps`` steps."""
        start, cpu = time.perf_counter(), time.process_time()
        self.run(steps)
        return time.perf_counter() - start, time.process_time() - cpu


def _dense(x: tf.Tensor, units: int, name: str, seed: int, activation=None) -> tf.Tensor:
    return tf.compat.v1.layers.dense(x, units, activation=activation, name=name,
                                     kernel_initializer=tf.compat.v1.glorot_uniform_initializer(seed=seed),
                                     bias_initializer=tf.compat.v1.constant_initializer(0.1))


def _mmoe_logits(emb: tf.Tensor, dense_x: tf.Tensor, settings: Settings) -> tf.Tensor:
    """models/mmoe's "sum" network: logits float32 [B, 2] from emb [B, F, 144] and dense_x [B, D]."""
    e, u = NUM_EXPERTS, EXPERT_UNITS
    h = tf.reduce_sum(emb, axis=1) + _dense(dense_x, settings.dim, "dense_input", settings.seed)
    experts = tf.nn.relu(tf.reshape(h[:, :e * u], [-1, e, u]))
    gates = tf.nn.softmax(tf.reshape(h[:, e * u:], [-1, NUM_TASKS, e]), axis=-1)
    mixed = tf.einsum("bte,beu->btu", gates, experts)
    logits = []
    for t in range(NUM_TASKS):
        tower = _dense(mixed[:, t, :], TOWER_UNITS, f"tower_{t}", settings.seed + 1 + t, tf.nn.relu)
        logits.append(_dense(tower, 1, f"logit_{t}", settings.seed + 10 + t))
    return tf.concat(logits, axis=1)


def build(mode: str, settings: Settings, pool, threads: int) -> ModeSystem:
    """``mode``'s system; leaves mx_rec initialised with its settings (the next build re-initialises)."""
    from mx_rec.core.embedding import create_table, sparse_lookup
    from mx_rec.optimizers.lazy_adam import create_hash_optimizer
    from mx_rec.util.communication import hccl_ops
    from mx_rec.util.initialize import init, terminate_config_initializer
    from mx_rec.util.variable import get_dense_and_sparse_variable

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(settings.seed)
        terminate_config_initializer()
        config = init(use_dynamic=mode == "dynamic")
        ranks = config.rank_size
        sparse_opt = create_hash_optimizer(settings.learning_rate)
        table = create_table(tf.int64, settings.dim, "mmoe_table",
                             tf.compat.v1.truncated_normal_initializer(stddev=0.05),
                             device_vocabulary_size=settings.fields * 1000)
        ids_pool, dense_pool, labels_pool = pool
        batches = tf.data.Dataset.from_tensor_slices((ids_pool, dense_pool, labels_pool)).repeat().prefetch(2)
        ids, dense_x, labels = tf.compat.v1.data.make_one_shot_iterator(batches).get_next()
        for tensor, width in ((ids, settings.fields), (dense_x, settings.dense_features), (labels, NUM_TASKS)):
            tensor.set_shape([settings.batch_size, width])
        send_count = settings.send_count // ranks if mode == "static" else None
        emb = sparse_lookup(table, ids, send_count=send_count, name="mmoe_lookup")
        logits = _mmoe_logits(emb, dense_x, settings)
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
        dense_vars, sparse_vars = get_dense_and_sparse_variable()
        dense_opt = tf.compat.v1.train.AdamOptimizer(settings.learning_rate)
        dense_grads = dense_opt.compute_gradients(loss, dense_vars)
        if ranks > 1:
            dense_grads = [(hccl_ops.allreduce(g, "mean"), v) for g, v in dense_grads]
        train_op = tf.group(dense_opt.apply_gradients(dense_grads),
                            sparse_opt.apply_gradients(sparse_opt.compute_gradients(loss, sparse_vars)))
        session = tf.compat.v1.Session(graph=graph, config=tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads))
        session.run(tf.compat.v1.global_variables_initializer())
    return ModeSystem(mode, session, train_op, loss, table)


# ------------------------------------------------------------------------------------------ measuring

def measure(settings: Settings, log: Callable[[str], None] = print) -> dict:
    """Both modes on this process's ranks (1, or this rank of a horovodrun job): their rates,
    ratios and first-pass losses."""
    from mx_rec.communication import collectives
    from mx_rec.util.initialize import terminate_config_initializer

    tf.compat.v1.disable_eager_execution()
    collectives.start()
    rank, ranks = collectives.get_rank_id(), collectives.get_rank_size()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cpus // ranks)
    pool = make_pool(settings, rank)
    load_before = os.getloadavg()[0]
    systems = {mode: build(mode, settings, pool, threads) for mode in MODES}
    try:
        losses = {mode: s.run(settings.pool_batches, fetch_loss=True) for mode, s in systems.items()}
        for s in systems.values():
            s.run(settings.warmup_steps)
        seconds: Dict[str, List[float]] = {mode: [] for mode in MODES}
        cpu_seconds: Dict[str, List[float]] = {mode: [] for mode in MODES}
        for r in range(settings.rounds):
            for mode in (MODES if r % 2 == 0 else MODES[::-1]):
                wall, cpu = systems[mode].timed(settings.steps)
                seconds[mode].append(wall)
                cpu_seconds[mode].append(cpu)
            log(f"[{ranks} rank(s)] round {r + 1}/{settings.rounds}: " + ", ".join(
                f"{mode} {settings.steps / s[-1]:.1f} steps/s" for mode, s in seconds.items()))
        table_size = int(systems["dynamic"].table.size())
    finally:
        for s in systems.values():
            s.session.close()
        terminate_config_initializer()
    ids = pool[0]
    distinct = [np.unique(b).shape[0] for b in ids]
    modes = {}
    for mode, secs in seconds.items():
        rates = [settings.steps / s for s in secs]
        modes[mode] = {"steps_per_s": statistics.median(rates), "round_steps_per_s": rates,
                       "cpu_ms_per_step": statistics.median(1e3 * c / settings.steps for c in cpu_seconds[mode]),
                       "send_count": settings.send_count // ranks if mode == "static" else None}
    diff = max(abs(a - b) for a, b in zip(losses["static"], losses["dynamic"]))
    return {
        "ranks": ranks,
        "modes": modes,
        "ratio_static_over_dynamic": modes["static"]["steps_per_s"] / modes["dynamic"]["steps_per_s"],
        "ratio_paired_rounds_median": statistics.median(
            s / d for s, d in zip(modes["static"]["round_steps_per_s"], modes["dynamic"]["round_steps_per_s"])),
        "first_pass_losses": losses,
        "losses_identical": losses["static"] == losses["dynamic"],
        "first_pass_loss_max_abs_diff": diff,
        "distinct_keys_per_batch_mean": float(np.mean(distinct)),
        "table_size_rank0": table_size,
        "threads_per_rank": threads,
        "load_average_1m": [load_before, os.getloadavg()[0]],
    }


def run_two_ranks(settings: Settings, log: Callable[[str], None] = print, ranks: int = 2) -> dict:
    """``measure`` on ``ranks`` processes under horovodrun --gloo; returns rank 0's result."""
    venv_bin = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rank0.json"
        command = [str(venv_bin / "horovodrun"), "--gloo", "-np", str(ranks), "-H", f"localhost:{ranks}",
                   sys.executable, str(Path(__file__).resolve()), "--worker", str(out),
                   "--settings", json.dumps(dataclasses.asdict(settings))]
        env = dict(os.environ, PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")
        proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
        for line in proc.stdout.splitlines():
            if "round" in line:
                log(line)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"{ranks}-rank benchmark failed (exit {proc.returncode}):\n"
                               f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
        return json.loads(out.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------------------- reporting

def readme_block(result: dict) -> str:
    """The README's table of a result (between ``README_BEGIN`` and ``README_END``)."""
    machine, settings = result["machine"], result["settings"]
    lines = [README_BEGIN,
             f"Measured {result['timestamp'][:10]} on {machine['cpus_usable']} cores ({machine['cpu_model']}), "
             f"commit {(result['source']['git_commit'] or '?')[:10]}; MMoE-shaped step, batch "
             f"{settings['batch_size']} x {settings['fields']} ids per rank, dim {settings['dim']}, "
             f"median of {settings['rounds']} rounds of {settings['steps']} steps. Target: static >= "
             f"{TARGET}x dynamic.",
             "",
             "| ranks | send_count per rank | static steps/s | dynamic steps/s | static / dynamic | paired rounds "
             "| CPU ms/step static, dynamic | losses identical |",
             "|---|---|---|---|---|---|---|---|"]
    for ranks, r in result["by_ranks"].items():
        static, dynamic = r["modes"]["static"], r["modes"]["dynamic"]
        lines.append(f"| {ranks} | {static['send_count']} | {static['steps_per_s']:.1f} | "
                     f"{dynamic['steps_per_s']:.1f} | {r['ratio_static_over_dynamic']:.2f} | "
                     f"{r['ratio_paired_rounds_median']:.2f} | {static['cpu_ms_per_step']:.1f}, "
                     f"{dynamic['cpu_ms_per_step']:.1f} | {'yes' if r['losses_identical'] else 'no'} |")
    lines.append(README_END)
    return "\n".join(lines) + "\n"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds per rank count (smoke test)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--readme", type=Path, help="also rewrite this README's static/dynamic table")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # a horovodrun rank: rank 0 writes here
    parser.add_argument("--settings", help=argparse.SUPPRESS)  # the worker's Settings as JSON
    args = parser.parse_args(argv)
    check_counts(parser, args)
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.worker:
        result = measure(Settings(**json.loads(args.settings)))
        if result["ranks"] > 1:
            from mx_rec.communication import collectives
            if collectives.get_rank_id() == 0:
                args.worker.write_text(json.dumps(result), encoding="utf-8")
        return 0
    settings = PRESETS["quick" if args.quick else "full"]
    settings = dataclasses.replace(settings, **{k: getattr(args, k) for k in ("rounds", "steps")
                                                if getattr(args, k) is not None})
    timestamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    by_ranks = {}
    for ranks in sorted(set(args.ranks)):
        by_ranks[str(ranks)] = measure(settings) if ranks == 1 else run_two_ranks(settings, ranks=ranks)
    result = {"benchmark": "static_dynamic", "timestamp": timestamp, "settings": dataclasses.asdict(settings),
              "machine": machine_info(), "source": _mx_rec_source(), "target_ratio": TARGET, "by_ranks": by_ranks}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for ranks, r in by_ranks.items():
        modes = r["modes"]
        print(f"  {ranks} rank(s): static {modes['static']['steps_per_s']:.1f} steps/s (send_count "
              f"{modes['static']['send_count']}), dynamic {modes['dynamic']['steps_per_s']:.1f} steps/s, "
              f"static/dynamic {r['ratio_static_over_dynamic']:.3f} (paired rounds "
              f"{r['ratio_paired_rounds_median']:.3f}); CPU ms/step {modes['static']['cpu_ms_per_step']:.1f} "
              f"vs {modes['dynamic']['cpu_ms_per_step']:.1f}; losses identical: {r['losses_identical']}")
    print(f"  written to {args.output}")
    if args.readme:
        replace_block(args.readme, readme_block(result), README_BEGIN, README_END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
