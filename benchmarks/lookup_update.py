"""Lookup + update microbenchmark: mx_rec against a plain-TF upper bound, on Zipf-distributed keys.

Both systems train one sparse table (``dim`` columns) with lazy Adam on the same pre-generated
batches of int64 ids ``[batch, fields]``, fed through a ``tf.compat.v1.placeholder``:

- ``mx_rec``: ``create_table`` + ``sparse_lookup`` + ``lazy_adam.create_hash_optimizer`` (keys are
  hashed to rows on the host every step).
- ``plain_tf``: a ``tf.Variable`` holding a row for every key, ids remapped to row numbers in numpy
  beforehand (no hashing at all), ``tf.gather`` and lazy Adam written with plain TF ops.

Both start from the same rows (mx_rec's deterministic initial value of each key), so their losses
over the first pass of the pool must agree; the JSON records the largest relative difference.

Timing: one pass over the pool (mx_rec inserts all the pool's keys then; reported separately as
``first_pass``), warm-up steps, then ``rounds`` rounds per system, alternating between the systems,
each round ``steps`` timed steps. steps/s and keys/s (ids per second) are the medians of the rounds;
``ratio_mx_rec_over_plain`` is the ratio of the two median steps/s, and
``ratio_paired_rounds_median`` the median of the per-round ratios (steadier when other processes
load the machine; the JSON records the load average before and after).

Usage::

    .venv/bin/python benchmarks/lookup_update.py                   # full preset (about a minute)
    .venv/bin/python benchmarks/lookup_update.py --preset small    # seconds (smoke test)
    .venv/bin/python benchmarks/lookup_update.py --rounds 7 --steps 40 --output /tmp/x.json
"""
import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numba  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "lookup_update.json"
MX_REC = "mx_rec"
PLAIN = "plain_tf"


@dataclasses.dataclass
class Settings:
    """What one invocation measures.

    Attributes:
        batch_size / fields: ids per batch are int64 [batch_size, fields].
        num_keys: distinct keys the Zipf ranks are drawn over (ranks 1..num_keys).
        zipf_a: Zipf exponent (P(rank) proportional to rank ** -zipf_a).
        dim: embedding width. pool_batches: batches generated before timing and cycled through.
        rounds / steps: timed rounds per system, and timed steps per round.
        warmup_steps: untimed steps per system after the first pass, before the rounds.
        learning_rate: lazy Adam's learning rate. seed: numpy seed for keys, batches and weights.
    """

    preset: str
    batch_size: int
    fields: int
    num_keys: int
    zipf_a: float
    dim: int
    pool_batches: int
    rounds: int
    steps: int
    warmup_steps: int
    learning_rate: float = 0.001
    seed: int = 20240601

    @property
    def ids_per_step(self) -> int:
        return self.batch_size * self.fields

    @property
    def device_vocabulary_size(self) -> int:
        """Rows of the mx_rec table: every key fits, with 10% to spare."""
        return self.num_keys + self.num_keys // 10


PRESETS: Dict[str, Settings] = {
    "full": Settings(preset="full", batch_size=8192, fields=26, num_keys=1_000_000, zipf_a=1.1, dim=16,
                     pool_batches=32, rounds=9, steps=48, warmup_steps=8),
    "small": Settings(preset="small", batch_size=256, fields=26, num_keys=10_000, zipf_a=1.1, dim=16,
                      pool_batches=8, rounds=2, steps=8, warmup_steps=2),
}


# ---------------------------------------------------------------------------------------------- data

def _scatter_keys(ranks: np.ndarray) -> np.ndarray:
    """A bijection of [0, 2**63) applied to int64 ranks: scattered, positive, distinct int64 keys."""
    mask = np.uint64((1 << 63) - 1)
    x = ranks.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = (x * np.uint64(0x9E3779B97F4A7C15)) & mask  # odd multiplier: bijective mod 2**63
        x ^= x >> np.uint64(29)
        x = (x * np.uint64(0xBF58476D1CE4E5B9)) & mask
        x ^= x >> np.uint64(32)
    return x.astype(np.int64)


def make_pool(settings: Settings):
    """Pre-generate the batches.

    Returns:
        key_batches: list of int64 [batch_size, fields], scattered keys (what mx_rec is fed).
        row_batches: list of int64 [batch_size, fields], the same ids as rows 0..num_keys-1
            (what plain TF is fed: Zipf rank - 1).
        keys_of_row: int64 [num_keys]; the key of each plain-TF row.
    """
    rng = np.random.default_rng(settings.seed)
    weights = np.arange(1, settings.num_keys + 1, dtype=np.float64) ** -settings.zipf_a
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    keys_of_row = _scatter_keys(np.arange(1, settings.num_keys + 1, dtype=np.int64))
    if np.unique(keys_of_row).shape[0] != settings.num_keys:
        raise AssertionError("key scattering is not injective")
    key_batches, row_batches = [], []
    shape = (settings.batch_size, settings.fields)
    for _ in range(settings.pool_batches):
        rows = np.searchsorted(cdf, rng.random(shape), side="right").astype(np.int64)
        np.minimum(rows, settings.num_keys - 1, out=rows)  # guards u == 1.0 after rounding
        row_batches.append(rows)
        key_batches.append(keys_of_row[rows])
    return key_batches, row_batches, keys_of_row


def loss_weights(settings: Settings) -> np.ndarray:
    """float32 [1, fields, dim]; the fixed weights of ``loss = sum(emb * w)``."""
    rng = np.random.default_rng(settings.seed + 1)
    return rng.standard_normal((1, settings.fields, settings.dim)).astype(np.float32)


# ------------------------------------------------------------------------------------------- systems

@dataclasses.dataclass
class System:
    """One graph + session ready to step; ``step(i)`` trains on batch ``i % pool``."""

    name: str
    session: tf.compat.v1.Session
    train_op: tf.Operation
    loss: tf.Tensor
    ids: tf.Tensor
    batches: Sequence[np.ndarray]
    cursor: int = 0

    def run(self, steps: int, fetch_loss: bool = False) -> List[float]:
        """Run ``steps`` training steps; returns the losses when ``fetch_loss``."""
        losses = []
        fetches = [self.train_op, self.loss] if fetch_loss else self.train_op
        for _ in range(steps):
            out = self.session.run(fetches, feed_dict={self.ids: self.batches[self.cursor % len(self.batches)]})
            self.cursor += 1
            if fetch_loss:
                losses.append(float(out[1]))
        return losses

    def timed(self, steps: int) -> float:
        """Seconds taken by ``steps`` steps."""
        start = time.perf_counter()
        self.run(steps)
        return time.perf_counter() - start


def build_mx_rec(settings: Settings, batches: Sequence[np.ndarray]):
    """The mx_rec system; returns (System, the EmbeddingTable)."""
    from mx_rec.core.embedding import create_table, sparse_lookup
    from mx_rec.optimizers.lazy_adam import create_hash_optimizer
    from mx_rec.util.initialize import init

    graph = tf.Graph()
    with graph.as_default():
        init()
        table = create_table(tf.int64, settings.dim, "bench",
                             tf.compat.v1.truncated_normal_initializer(stddev=0.05),
                             device_vocabulary_size=settings.device_vocabulary_size)
        ids = tf.compat.v1.placeholder(tf.int64, [None, settings.fields], name="ids")
        emb = sparse_lookup(table, ids)
        loss = tf.reduce_sum(emb * tf.constant(loss_weights(settings)))
        opt = create_hash_optimizer(settings.learning_rate)
        train_op = opt.apply_gradients(opt.compute_gradients(loss, var_list=[table.variable]))
        session = tf.compat.v1.Session(graph=graph)
        session.run(tf.compat.v1.global_variables_initializer())
    return System(MX_REC, session, train_op, loss, ids, batches), table


def _lazy_adam_update(var: tf.Variable, grad: tf.IndexedSlices, learning_rate: float, beta1: float = 0.9,
                      beta2: float = 0.999, epsilon: float = 1e-8) -> tf.Operation:
    """Lazy Adam on the rows in ``grad`` with plain TF ops (the math of mx_rec's hash lazy Adam)."""
    zeros = tf.zeros_like(var.initial_value)
    m = tf.compat.v1.Variable(zeros, trainable=False, use_resource=True, name="m")
    v = tf.compat.v1.Variable(zeros, trainable=False, use_resource=True, name="v")
    beta1_power = tf.compat.v1.Variable(beta1, trainable=False, use_resource=True, name="beta1_power")
    beta2_power = tf.compat.v1.Variable(beta2, trainable=False, use_resource=True, name="beta2_power")
    # float32 tensors, as TF's Adam has them (so 1 - beta2 rounds the same way in both systems).
    learning_rate, beta1, beta2, epsilon = (tf.constant(x, tf.float32)
                                            for x in (learning_rate, beta1, beta2, epsilon))
    rows, position = tf.unique(grad.indices)
    g = tf.math.unsorted_segment_sum(grad.values, position, tf.shape(rows)[0])
    step_size = learning_rate * tf.sqrt(1.0 - beta2_power) / (1.0 - beta1_power)
    m_t = beta1 * m.sparse_read(rows) + (1.0 - beta1) * g
    v_t = beta2 * v.sparse_read(rows) + (1.0 - beta2) * tf.square(g)
    updates = [m.scatter_update(tf.IndexedSlices(m_t, rows)),
               v.scatter_update(tf.IndexedSlices(v_t, rows)),
               var.scatter_sub(tf.IndexedSlices(step_size * m_t / (tf.sqrt(v_t) + epsilon), rows))]
    with tf.control_dependencies(updates):
        return tf.group(beta1_power.assign(beta1_power * beta1), beta2_power.assign(beta2_power * beta2))


def build_plain(settings: Settings, batches: Sequence[np.ndarray], initial_rows: np.ndarray) -> System:
    """The plain-TF system; ``initial_rows`` float32 [num_keys, dim] are the rows' starting values."""
    graph = tf.Graph()
    with graph.as_default():
        init_value = tf.compat.v1.placeholder(tf.float32, [settings.num_keys + 1, settings.dim], name="init_value")
        var = tf.compat.v1.Variable(init_value, trainable=False, use_resource=True, name="table")
        ids = tf.compat.v1.placeholder(tf.int64, [None, settings.fields], name="ids")
        emb = tf.gather(var, ids)
        loss = tf.reduce_sum(emb * tf.constant(loss_weights(settings)))
        grad = tf.gradients(loss, [var])[0]
        if not isinstance(grad, tf.IndexedSlices):
            raise AssertionError(f"expected an IndexedSlices gradient, got {type(grad).__name__}")
        train_op = _lazy_adam_update(var, grad, settings.learning_rate)
        session = tf.compat.v1.Session(graph=graph)
        padded = np.concatenate([initial_rows, np.zeros((1, settings.dim), np.float32)])
        session.run(tf.compat.v1.global_variables_initializer(), feed_dict={init_value: padded})
    return System(PLAIN, session, train_op, loss, ids, batches)


# ----------------------------------------------------------------------------------------- reporting

def _git(cwd: Path, *args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _mx_rec_source() -> dict:
    """Which mx_rec was measured: its path, its git commit, and whether the package has local edits."""
    import mx_rec

    package = Path(mx_rec.__file__).resolve().parent
    status = _git(package, "status", "--porcelain", "--", ".")
    return {"mx_rec_path": str(package), "git_commit": _git(package, "rev-parse", "HEAD"),
            "mx_rec_uncommitted_changes": None if status is None else bool(status)}


def _load_1m() -> Optional[float]:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _cpu_model() -> Optional[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info() -> dict:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
    }


def _rate(settings: Settings, steps: int, seconds: float) -> dict:
    steps_per_s = steps / seconds
    return {"steps_per_s": steps_per_s, "keys_per_s": steps_per_s * settings.ids_per_step,
            "steps": steps, "seconds": seconds}


def summarize(settings: Settings, round_seconds: Dict[str, List[float]]) -> Dict[str, dict]:
    """Per system: median steps/s and keys/s over the rounds, and every round's steps/s."""
    out = {}
    for name, seconds in round_seconds.items():
        rates = [settings.steps / s for s in seconds]
        median = statistics.median(rates)
        out[name] = {"steps_per_s": median, "keys_per_s": median * settings.ids_per_step,
                     "round_steps_per_s": rates, "rounds": len(rates), "steps_per_round": settings.steps}
    return out


def _max_rel_diff(a: Sequence[float], b: Sequence[float]) -> float:
    return max((abs(x - y) / max(abs(x), abs(y), 1e-12) for x, y in zip(a, b)), default=0.0)


# ----------------------------------------------------------------------------------------------- main

def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--rounds", type=int, help="timed rounds per system (default: the preset's)")
    parser.add_argument("--steps", type=int, help="timed steps per round (default: the preset's)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"JSON path (default {DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)
    check_counts(parser, args)
    return args


def check_counts(parser: argparse.ArgumentParser, args: argparse.Namespace, flags=("rounds", "steps")) -> None:
    """Stop with a usage error when a given ``--rounds`` / ``--steps`` is below 1 (None: the preset's)."""
    for flag in flags:
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag} must be >= 1, got {value}")


def run_benchmark(settings: Settings, log: Callable[[str], None] = print) -> dict:
    """Build both systems, time them and return the result dict (see the module docstring)."""
    from mx_rec.util.initialize import terminate_config_initializer

    tf.compat.v1.disable_eager_execution()
    load_before = _load_1m()
    t0 = time.perf_counter()
    key_batches, row_batches, keys_of_row = make_pool(settings)
    log(f"pool: {settings.pool_batches} batches of {settings.batch_size}x{settings.fields} ids "
        f"({time.perf_counter() - t0:.1f} s)")
    pool_keys = np.concatenate([b.ravel() for b in key_batches])
    unique_per_batch = [np.unique(b).shape[0] for b in key_batches]

    mx, table = build_mx_rec(settings, key_batches)
    plain = build_plain(settings, row_batches, table.initial_values(keys_of_row))
    try:
        # First pass over the pool (mx_rec inserts the keys), the losses fetched to compare; its first
        # step (session set-up) is left out of the first-pass timing.
        losses: Dict[str, List[float]] = {}
        first_pass: Dict[str, dict] = {}
        for system in (mx, plain):
            losses[system.name] = system.run(1, fetch_loss=True)
            start = time.perf_counter()
            losses[system.name] += system.run(settings.pool_batches - 1, fetch_loss=True)
            first_pass[system.name] = _rate(settings, settings.pool_batches - 1, time.perf_counter() - start)
        log(f"first pass: mx_rec {first_pass[MX_REC]['steps_per_s']:.2f} steps/s (inserts), "
            f"plain TF {first_pass[PLAIN]['steps_per_s']:.2f} steps/s")
        mx.run(settings.warmup_steps)
        plain.run(settings.warmup_steps)

        round_seconds: Dict[str, List[float]] = {MX_REC: [], PLAIN: []}
        for r in range(settings.rounds):
            order = (mx, plain) if r % 2 == 0 else (plain, mx)
            for system in order:
                round_seconds[system.name].append(system.timed(settings.steps))
            log(f"round {r + 1}/{settings.rounds}: " + ", ".join(
                f"{name} {settings.steps / s[-1]:.2f} steps/s" for name, s in round_seconds.items()))
        table_size = table.size()
    finally:
        mx.session.close()
        plain.session.close()
        terminate_config_initializer()

    systems = summarize(settings, round_seconds)
    settings_dict = dataclasses.asdict(settings)
    settings_dict.update(ids_per_step=settings.ids_per_step, device_vocabulary_size=settings.device_vocabulary_size,
                         key_dtype="int64", optimizer="lazy_adam", loss="reduce_sum(emb * fixed_weights)",
                         feed="tf.compat.v1.placeholder, int64 [batch_size, fields]")
    return {
        "benchmark": "lookup_update",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": settings_dict,
        "machine": dict(machine_info(), load_average_1m_before=load_before, load_average_1m_after=_load_1m()),
        "source": _mx_rec_source(),
        "systems": systems,
        "ratio_mx_rec_over_plain": systems[MX_REC]["steps_per_s"] / systems[PLAIN]["steps_per_s"],
        # Less sensitive to load from other processes: each round's mx_rec rate over the plain rate
        # measured right beside it.
        "ratio_paired_rounds_median": statistics.median(
            m / p for m, p in zip(systems[MX_REC]["round_steps_per_s"], systems[PLAIN]["round_steps_per_s"])),
        "first_pass": first_pass,
        "data": {
            "distinct_keys_in_pool": int(np.unique(pool_keys).shape[0]),
            "unique_keys_per_batch_mean": float(np.mean(unique_per_batch)),
            "mx_rec_table_size": int(table_size),
            "first_pass_loss_max_rel_diff": _max_rel_diff(losses[MX_REC], losses[PLAIN]),
        },
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    overrides = {flag: getattr(args, flag) for flag in ("rounds", "steps") if getattr(args, flag) is not None}
    settings = dataclasses.replace(PRESETS[args.preset], **overrides)
    result = run_benchmark(settings)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    mx, plain = result["systems"][MX_REC], result["systems"][PLAIN]
    print(f"\nlookup+update, {settings.batch_size}x{settings.fields} ids/step, {settings.num_keys} keys "
          f"Zipf({settings.zipf_a}), dim {settings.dim}, median of {settings.rounds} rounds x {settings.steps} steps")
    for name, r in ((MX_REC, mx), (PLAIN, plain)):
        print(f"  {name:9s} {r['steps_per_s']:9.2f} steps/s  {r['keys_per_s'] / 1e6:9.3f} M keys/s")
    insert = result["first_pass"][MX_REC]
    print(f"  mx_rec first pass (inserts): {insert['steps_per_s']:.2f} steps/s, "
          f"{insert['keys_per_s'] / 1e6:.3f} M keys/s")
    print(f"  ratio mx_rec/plain: {result['ratio_mx_rec_over_plain']:.3f} (median of per-round ratios: "
          f"{result['ratio_paired_rounds_median']:.3f})")
    print(f"  written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
