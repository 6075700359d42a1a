"""Tier benchmark: the same lookup + lazy-Adam step in HBM, DDR and SSD modes, in one invocation.

Data: the lookup benchmark's Zipf(1.1) keys over 10^6 distinct keys, dim 16, 26 fields, batch 1024
(a 2% device cache must hold two batches of distinct keys; at batch 8192 one batch has ~44k). Modes:

- ``hbm``: every key on the device (device 10^6 + 10%).
- ``ddr``: device cache of 10% of the keys, host memory for all of them.
- ``ssd``: device 2%, host 10%, the rest in RocksDB under a temporary directory.
- ``ddr_fit`` (only with ``--floor``, a diagnostic): DDR mode whose device cache holds every key,
  so that nothing is swapped: the cost of the DDR machinery itself.

Each mode is built twice: with the batches coming from a ``tf.data`` pipeline and
``sparse_lookup(..., modify_graph=True)`` (``pipeline``, the headline figures: key processing runs
in the pipeline, and DDR/SSD tables place the next batch while the current one trains), and with
the batches fed through a placeholder (``feed``: every step plans and swaps its own batch before
its lookup).

After one pass over the pool (inserts) and warm-up, rounds alternate between the systems (an SSD
round ends when RocksDB's background flushes and compactions have, so that they are charged to
it and not to the next system's round); steps/s is the median of the rounds, the ratios are
against HBM with the same input, and each mode's device and host hit rates come from
``table.telemetry()`` over the timed rounds. CPU ms/step (median over the rounds) counts every
thread of the process (getrusage): TF's, tf.data's and RocksDB's. Results:
benchmarks/results/tiers.json.

    .venv/bin/python benchmarks/tiers.py [--preset small] [--rounds N] [--steps N] [--output F]
                                         [--readme README.md] [--floor]
"""
import argparse
import dataclasses
import datetime
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.lookup_update import PRESETS, REPO, System, _mx_rec_source, loss_weights, machine_info, \
    make_pool  # noqa: E402
from benchmarks.readme_block import replace_block  # noqa: E402

DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "tiers.json"
README_BEGIN, README_END = "<!-- tiers:begin -->", "<!-- tiers:end -->"
MODES = ("hbm", "ddr", "ssd")
FLOOR = "ddr_fit"  # diagnostic (--floor): DDR whose device cache holds every key, the lookahead without swaps
INPUTS = ("pipeline", "feed")


@dataclasses.dataclass
class PipelineSystem:
    """A graph whose batches come from its own iterator (pool order, repeated); ``run`` as System's."""

    name: str
    session: tf.compat.v1.Session
    train_op: tf.Operation
    loss: tf.Tensor

    def run(self, steps: int, fetch_loss: bool = False) -> List[float]:
        fetches = [self.train_op, self.loss] if fetch_loss else self.train_op
        return [float(out[1]) if fetch_loss else 0.0 for out in (self.session.run(fetches) for _ in range(steps))]


def tier_sizes(mode: str, num_keys: int) -> Dict[str, int]:
    """create_table sizes of a mode, as fractions of the distinct keys."""
    return {"hbm": {"device_vocabulary_size": num_keys + num_keys // 10},
            "ddr": {"device_vocabulary_size": num_keys // 10, "host_vocabulary_size": num_keys},
            FLOOR: {"device_vocabulary_size": num_keys + num_keys // 10, "host_vocabulary_size": num_keys},
            "ssd": {"device_vocabulary_size": num_keys // 50, "host_vocabulary_size": num_keys // 10,
                    "ssd_vocabulary_size": num_keys}}[mode]


def build(mode: str, settings, batches, ssd_dir: str, source: str = "pipeline"):
    """One mode's graph and session, its batches from a pipeline or fed; returns (system, table)."""
    from mx_rec.config.initializer import ConfigInitializer
    from mx_rec.core.embedding import create_table, sparse_lookup
    from mx_rec.graph.modifier import modify_graph_and_start_emb_cache
    from mx_rec.optimizers.lazy_adam import create_hash_optimizer
    from mx_rec.util.initialize import init

    graph = tf.Graph()
    with graph.as_default():
        init()
        opt = create_hash_optimizer(settings.learning_rate)  # before the table: DDR/SSD tables take its slots
        table = create_table(tf.int64, settings.dim, "bench",  # one name: the same initial rows in every mode
                             tf.compat.v1.truncated_normal_initializer(stddev=0.05),
                             ssd_data_path=[ssd_dir], **tier_sizes(mode, settings.num_keys))
        if source == "pipeline":
            dataset = tf.data.Dataset.from_tensor_slices(np.stack(batches)).repeat()
            ids = tf.compat.v1.data.make_initializable_iterator(dataset).get_next()
        else:
            ids = tf.compat.v1.placeholder(tf.int64, [None, settings.fields], name="ids")
        embeddings = sparse_lookup(table, ids, modify_graph=source == "pipeline")
        loss = tf.reduce_sum(embeddings * tf.constant(loss_weights(settings)))
        train_op = opt.apply_gradients(opt.compute_gradients(loss, var_list=[table.variable]))
        if source == "pipeline":
            modify_graph_and_start_emb_cache()
        session = tf.compat.v1.Session(graph=graph)
        session.run(tf.compat.v1.global_variables_initializer())
        if source == "pipeline":
            session.run(ConfigInitializer.get_instance().train_params_config.get_initializer(True))
            return PipelineSystem(mode, session, train_op, loss), table
    return System(mode, session, train_op, loss, ids, batches), table


def _process_cpu_s() -> float:
    """CPU seconds of this process so far, every thread (TF's, tf.data's, RocksDB's) included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _drain(table) -> None:
    table.backend.flush()


def _tiered(table) -> bool:
    from mx_rec.storage.tiered_backend import TieredBackend
    return isinstance(table.backend, TieredBackend)


def _mode_results(settings, seconds, cpu_seconds, telemetry, counters) -> Dict[str, dict]:
    """Per mode: median steps/s over the rounds, CPU per step, telemetry and the timed rounds' hit rates."""
    result_modes = {}
    for m in seconds:
        rates = [settings.steps / s for s in seconds[m]]
        entry = {"steps_per_s": statistics.median(rates), "round_steps_per_s": rates,
                 "cpu_ms_per_step": 1000 * statistics.median(cpu_seconds[m]) / settings.steps,
                 "cores_busy": statistics.median(c / s for c, s in zip(cpu_seconds[m], seconds[m])),
                 "keys_per_s": statistics.median(rates) * settings.ids_per_step, "telemetry": telemetry[m],
                 "sizes": tier_sizes(m, settings.num_keys)}
        if m in counters:
            before, after = counters[m]
            keys = max(after["keys"] - before["keys"], 1)
            for tier in ("device", "host", "ssd"):
                entry[f"timed_{tier}_hit_rate"] = (after[f"{tier}_hits"] - before[f"{tier}_hits"]) / keys
            lookups = max(after["lookups"] - before["lookups"], 1)
            entry["timed_placed_ahead_share"] = (after["ahead_used"] - before["ahead_used"]) / lookups
        else:
            entry.update(timed_device_hit_rate=1.0, timed_host_hit_rate=0.0, timed_ssd_hit_rate=0.0)
        result_modes[m] = entry
    return result_modes


def run(settings, log=print, modes: Sequence[str] = MODES) -> dict:
    from mx_rec.util.initialize import terminate_config_initializer

    tf.compat.v1.disable_eager_execution()
    key_batches, _, _ = make_pool(settings)
    names = [(source, m) for source in INPUTS for m in modes]
    systems, tables = {}, {}
    with tempfile.TemporaryDirectory(prefix="mxrec_ssd_") as ssd_root:
        try:
            for source, m in names:
                ssd_dir = Path(ssd_root) / source
                ssd_dir.mkdir(exist_ok=True)
                systems[source, m], tables[source, m] = build(m, settings, key_batches, str(ssd_dir), source)
            losses = {n: systems[n].run(settings.pool_batches, fetch_loss=True) for n in names}
            for n in names:
                systems[n].run(settings.warmup_steps)
            start = {n: dataclasses.asdict(tables[n].backend.counters) if _tiered(tables[n]) else {} for n in names}
            seconds: Dict[tuple, list] = {n: [] for n in names}
            cpu_seconds: Dict[tuple, list] = {n: [] for n in names}
            for n in names:
                _drain(tables[n])
            for r in range(settings.rounds):
                for n in (names if r % 2 == 0 else names[::-1]):
                    start_s, start_cpu = time.perf_counter(), _process_cpu_s()
                    systems[n].run(settings.steps)
                    _drain(tables[n])  # RocksDB's flushes and compactions count in the SSD round, not the next
                    seconds[n].append(time.perf_counter() - start_s)
                    cpu_seconds[n].append(_process_cpu_s() - start_cpu)
                log(f"round {r + 1}/{settings.rounds}: " + ", ".join(
                    f"{source} {m} {settings.steps / s[-1]:.1f}" for (source, m), s in seconds.items()) + " steps/s")
            telemetry = {n: tables[n].telemetry() for n in names}
            counters = {n: (start[n], dataclasses.asdict(tables[n].backend.counters)) for n in names if _tiered(tables[n])}
        finally:
            for system in systems.values():
                system.session.close()
            terminate_config_initializer()
    by_input = {}
    for source in INPUTS:
        results = _mode_results(settings, {m: seconds[source, m] for m in modes},
                                {m: cpu_seconds[source, m] for m in modes},
                                {m: telemetry[source, m] for m in modes},
                                {m: counters[source, m] for m in modes if (source, m) in counters})
        hbm = results["hbm"]["steps_per_s"]
        by_input[source] = {"modes": results, "ratio_ddr_over_hbm": results["ddr"]["steps_per_s"] / hbm,
                            "ratio_ssd_over_hbm": results["ssd"]["steps_per_s"] / hbm}
    reference = losses["feed", "hbm"]
    return {
        "benchmark": "tiers",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": dict(dataclasses.asdict(settings), ids_per_step=settings.ids_per_step),
        "machine": machine_info(), "source": _mx_rec_source(),
        "headline_input": "pipeline", **by_input["pipeline"], "by_input": by_input,
        "targets": {"ddr": 0.8, "ssd": 0.5},
        "first_pass_losses_agree": all(bool(np.allclose(reference, losses[n], rtol=1e-5)) for n in names),
    }


def readme_block(result: dict) -> str:
    """The README's table of a result (between ``README_BEGIN`` and ``README_END``)."""
    machine = result["machine"]
    lines = [README_BEGIN,
             f"Measured {result['timestamp'][:10]} on {machine['cpus_usable']} cores ({machine['cpu_model']}), "
             f"commit {result['source']['git_commit'][:10]}; median of {result['settings']['rounds']} rounds of "
             f"{result['settings']['steps']} steps. Targets: DDR >= {result['targets']['ddr']}x, "
             f"SSD >= {result['targets']['ssd']}x HBM.",
             "",
             "| input | mode | steps/s | x HBM | CPU ms/step | cores busy | device hit | host hit | SSD hit "
             "| batches placed ahead |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for source in INPUTS:
        modes = result["by_input"][source]["modes"]
        for m, r in modes.items():
            ahead = r.get("timed_placed_ahead_share")
            lines.append(f"| {source} | {m.upper().replace('_', ' ')} | {r['steps_per_s']:.1f} | "
                         f"{r['steps_per_s'] / modes['hbm']['steps_per_s']:.2f} | {r['cpu_ms_per_step']:.2f} | "
                         f"{r['cores_busy']:.2f} | {r['timed_device_hit_rate']:.3f} | "
                         f"{r['timed_host_hit_rate']:.3f} | {r['timed_ssd_hit_rate']:.3f} | "
                         f"{'-' if ahead is None else f'{ahead:.0%}'} |")
    lines.append(README_END)
    return "\n".join(lines) + "\n"


PRESET_OVERRIDES = {
    "full": dict(batch_size=1024, pool_batches=64, rounds=7, steps=32, warmup_steps=16),
    "small": dict(batch_size=32, num_keys=100_000, pool_batches=16, rounds=2, steps=4, warmup_steps=2),
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESET_OVERRIDES), default="full")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--readme", type=Path, help="also rewrite this README's tiers table")
    parser.add_argument("--floor", action="store_true",
                        help=f"add the diagnostic mode {FLOOR!r}: DDR with a device cache holding every key")
    args = parser.parse_args(argv)
    overrides = dict(PRESET_OVERRIDES[args.preset], preset=args.preset)
    overrides.update({k: getattr(args, k) for k in ("rounds", "steps") if getattr(args, k) is not None})
    settings = dataclasses.replace(PRESETS["full"], **overrides)
    result = run(settings, modes=MODES + ((FLOOR,) if args.floor else ()))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for source in INPUTS:
        figures = result["by_input"][source]
        for m, r in figures["modes"].items():
            print(f"  {source} {m}: {r['steps_per_s']:.2f} steps/s, {r['cpu_ms_per_step']:.2f} CPU ms/step, "
                  f"device hit {r['timed_device_hit_rate']:.3f}, "
                  f"host hit {r['timed_host_hit_rate']:.3f}, ssd hit {r['timed_ssd_hit_rate']:.3f}")
        print(f"  {source}: DDR/HBM {figures['ratio_ddr_over_hbm']:.3f} (target 0.8), "
              f"SSD/HBM {figures['ratio_ssd_over_hbm']:.3f} (target 0.5)")
    print(f"  first-pass losses agree: {result['first_pass_losses_agree']}; written to {args.output}")
    if args.readme:
        replace_block(args.readme, readme_block(result), README_BEGIN, README_END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
