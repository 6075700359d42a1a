"""Tier benchmark: the same lookup + lazy-Adam step in HBM, DDR and SSD modes, in one invocation.

Data: the lookup benchmark's Zipf(1.1) keys over 10^6 distinct keys, dim 16, 26 fields, batch 1024
(a 2% device cache must hold two batches of distinct keys; at batch 8192 one batch has ~44k). Modes:

- ``hbm``: every key on the device (device 10^6 + 10%).
- ``ddr``: device cache of 10% of the keys, host memory for all of them.
- ``ssd``: device 2%, host 10%, the rest in RocksDB under a temporary directory.

After one pass over the pool (inserts) and warm-up, rounds alternate between the modes; steps/s
is the median of the rounds, the ratios are against HBM, and each mode's device and host hit
rates come from ``table.telemetry()`` over the timed rounds. Results: benchmarks/results/tiers.json.

    .venv/bin/python benchmarks/tiers.py [--preset small] [--rounds N] [--steps N] [--output F]
"""
import argparse
import dataclasses
import datetime
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.lookup_update import PRESETS, REPO, System, _mx_rec_source, loss_weights, machine_info, \
    make_pool  # noqa: E402

DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "tiers.json"
MODES = ("hbm", "ddr", "ssd")


def tier_sizes(mode: str, num_keys: int) -> Dict[str, int]:
    """create_table sizes of a mode, as fractions of the distinct keys."""
    return {"hbm": {"device_vocabulary_size": num_keys + num_keys // 10},
            "ddr": {"device_vocabulary_size": num_keys // 10, "host_vocabulary_size": num_keys},
            "ssd": {"device_vocabulary_size": num_keys // 50, "host_vocabulary_size": num_keys // 10,
                    "ssd_vocabulary_size": num_keys}}[mode]


def build(mode: str, settings, batches, ssd_dir: str):
    """One mode's graph and session; returns (System, table)."""
    from mx_rec.core.embedding import create_table, sparse_lookup
    from mx_rec.optimizers.lazy_adam import create_hash_optimizer
    from mx_rec.util.initialize import init

    graph = tf.Graph()
    with graph.as_default():
        init()
        opt = create_hash_optimizer(settings.learning_rate)  # before the table: DDR/SSD tables take its slots
        table = create_table(tf.int64, settings.dim, "bench",  # one name: the same initial rows in every mode
                             tf.compat.v1.truncated_normal_initializer(stddev=0.05),
                             ssd_data_path=[ssd_dir], **tier_sizes(mode, settings.num_keys))
        ids = tf.compat.v1.placeholder(tf.int64, [None, settings.fields], name="ids")
        loss = tf.reduce_sum(sparse_lookup(table, ids) * tf.constant(loss_weights(settings)))
        train_op = opt.apply_gradients(opt.compute_gradients(loss, var_list=[table.variable]))
        session = tf.compat.v1.Session(graph=graph)
        session.run(tf.compat.v1.global_variables_initializer())
    return System(mode, session, train_op, loss, ids, batches), table


def run(settings, log=print) -> dict:
    from mx_rec.util.initialize import terminate_config_initializer

    tf.compat.v1.disable_eager_execution()
    key_batches, _, _ = make_pool(settings)
    systems, tables = {}, {}
    with tempfile.TemporaryDirectory(prefix="mxrec_ssd_") as ssd_dir:
        try:
            for mode in MODES:
                systems[mode], tables[mode] = build(mode, settings, key_batches, ssd_dir)
            losses = {m: systems[m].run(settings.pool_batches, fetch_loss=True) for m in MODES}
            for m in MODES:
                systems[m].run(settings.warmup_steps)
            start = {m: dataclasses.asdict(tables[m].store.counters) if tables[m].tiered else {} for m in MODES}
            seconds: Dict[str, list] = {m: [] for m in MODES}
            for r in range(settings.rounds):
                for m in (MODES if r % 2 == 0 else MODES[::-1]):
                    seconds[m].append(systems[m].timed(settings.steps))
                log(f"round {r + 1}/{settings.rounds}: " + ", ".join(
                    f"{m} {settings.steps / s[-1]:.2f} steps/s" for m, s in seconds.items()))
            telemetry = {m: tables[m].telemetry() for m in MODES}
            counters = {m: (start[m], dataclasses.asdict(tables[m].store.counters)) for m in MODES if tables[m].tiered}
        finally:
            for system in systems.values():
                system.session.close()
            terminate_config_initializer()
    result_modes = {}
    for m in MODES:
        rates = [settings.steps / s for s in seconds[m]]
        entry = {"steps_per_s": statistics.median(rates), "round_steps_per_s": rates,
                 "keys_per_s": statistics.median(rates) * settings.ids_per_step, "telemetry": telemetry[m],
                 "sizes": tier_sizes(m, settings.num_keys)}
        if m in counters:
            before, after = counters[m]
            keys = max(after["keys"] - before["keys"], 1)
            entry["timed_device_hit_rate"] = (after["device_hits"] - before["device_hits"]) / keys
            entry["timed_host_hit_rate"] = (after["host_hits"] - before["host_hits"]) / keys
            entry["timed_ssd_hit_rate"] = (after["ssd_hits"] - before["ssd_hits"]) / keys
        else:
            entry.update(timed_device_hit_rate=1.0, timed_host_hit_rate=0.0, timed_ssd_hit_rate=0.0)
        result_modes[m] = entry
    hbm = result_modes["hbm"]["steps_per_s"]
    return {
        "benchmark": "tiers",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": dict(dataclasses.asdict(settings), ids_per_step=settings.ids_per_step),
        "machine": machine_info(), "source": _mx_rec_source(), "modes": result_modes,
        "ratio_ddr_over_hbm": result_modes["ddr"]["steps_per_s"] / hbm,
        "ratio_ssd_over_hbm": result_modes["ssd"]["steps_per_s"] / hbm,
        "targets": {"ddr": 0.8, "ssd": 0.5},
        "first_pass_losses_agree": bool(np.allclose(losses["hbm"], losses["ddr"], rtol=1e-5)
                                        and np.allclose(losses["hbm"], losses["ssd"], rtol=1e-5)),
    }


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
    args = parser.parse_args(argv)
    overrides = dict(PRESET_OVERRIDES[args.preset], preset=args.preset)
    overrides.update({k: getattr(args, k) for k in ("rounds", "steps") if getattr(args, k) is not None})
    settings = dataclasses.replace(PRESETS["full"], **overrides)
    result = run(settings)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for m in MODES:
        r = result["modes"][m]
        print(f"  {m}: {r['steps_per_s']:.2f} steps/s, device hit {r['timed_device_hit_rate']:.3f}, "
              f"host hit {r['timed_host_hit_rate']:.3f}, ssd hit {r['timed_ssd_hit_rate']:.3f}")
    print(f"  DDR/HBM {result['ratio_ddr_over_hbm']:.3f} (target 0.8), SSD/HBM {result['ratio_ssd_over_hbm']:.3f} "
          f"(target 0.5); first-pass losses agree: {result['first_pass_losses_agree']}; written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
