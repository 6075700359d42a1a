"""Serving speed: the SavedModel (``export_savedmodel``) against the local model (``load_inference_model``).

One invocation: synthetic Criteo-shaped data (``tools/criteo/synthetic.py``), the model zoo's DLRM
trained for a few steps with a checkpoint (``models/dlrm/main_mxrec.py --checkpoint_dir``), that
checkpoint exported both ways, then predictions per second of each at every batch size (512 and
8192 by default) on the same batches: ids drawn from the table's keys (about 5% unknown keys
and 2% padding ``-1``), dense features normal. Rounds alternate between the two systems
(``calls`` predictions each); the rate is the median over rounds, ``ratio_savedmodel_over_local``
the ratio of the medians and ``ratio_paired_rounds_median`` the median of per-round ratios
(steadier when other processes load the machine). Both predict in this process, each with TF's
default threads; ``max_abs_diff`` checks they predict the same numbers. Results:
benchmarks/results/serving.json. ``--quick`` (a tiny table, a few calls) is a smoke run.

    .venv/bin/python benchmarks/serving.py [--quick] [--batch_sizes 512 8192] [--rounds N] [--output F]
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
from typing import Dict, List, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.lookup_update import REPO, _mx_rec_source, machine_info  # noqa: E402

DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "serving.json"


@dataclasses.dataclass
class Settings:
    """What one invocation measures.

    Attributes:
        rows / max_cardinality: synthetic dataset size and keys of its largest field.
        train_steps / train_batch: the DLRM job's training (its checkpoint is what is served).
        batch_sizes: samples per prediction call. calls: calls per system and round (per batch size,
            scaled so a round predicts about ``samples_per_round`` samples). rounds: timed rounds.
    """

    preset: str
    rows: int
    max_cardinality: int
    train_steps: int
    train_batch: int
    batch_sizes: Sequence[int]
    samples_per_round: int
    rounds: int
    unknown_fraction: float = 0.05
    padding_fraction: float = 0.02
    seed: int = 20241202


PRESETS: Dict[str, Settings] = {
    "full": Settings("full", rows=60_000, max_cardinality=200_000, train_steps=40, train_batch=1024,
                     batch_sizes=(512, 8192), samples_per_round=65_536, rounds=9),
    "quick": Settings("quick", rows=1500, max_cardinality=300, train_steps=3, train_batch=64,
                      batch_sizes=(64, 256), samples_per_round=512, rounds=2),
}


def _run(cmd: List[str], what: str) -> str:
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if proc.returncode != 0:
        raise SystemExit(f"serving.py: {what} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n"
                         f"{proc.stderr[-4000:]}")
    return proc.stdout


def prepare(settings: Settings, work: Path) -> Dict[str, Path]:
    """Data, a trained DLRM checkpoint, and its two exports under ``work``."""
    from mx_rec.inference import export_local, export_savedmodel

    data, ckpt = work / "data", work / "ckpt"
    _run([sys.executable, str(REPO / "tools" / "criteo" / "synthetic.py"), "--output_path", str(data), "--rows",
          str(settings.rows), "--test_fraction", "0.1", "--max_cardinality", str(settings.max_cardinality),
          "--seed", str(settings.seed % 1000)], "synthetic data")
    _run([sys.executable, str(REPO / "models" / "dlrm" / "main_mxrec.py"), "--data_path", str(data), "--steps",
          str(settings.train_steps), "--batch_size", str(settings.train_batch), "--eval_batch_size", "512",
          "--eval_steps", "1", "--checkpoint_dir", str(ckpt)], "the DLRM job")
    export_local(str(ckpt), str(work / "local"))
    export_savedmodel(str(ckpt), str(work / "savedmodel"))
    return {"local": work / "local", "savedmodel": work / "savedmodel"}


def make_batches(settings: Settings, keys: np.ndarray, inputs: Dict[str, dict], batch: int, count: int
                 ) -> List[Dict[str, np.ndarray]]:
    """``count`` batches of ``batch`` samples: ids from ``keys``, some unknown, some padding."""
    rng = np.random.default_rng(settings.seed + batch)
    out = []
    for _ in range(count):
        sample = {}
        for name, entry in inputs.items():
            shape = [batch] + list(entry["shape"][1:])
            if entry["dtype"].startswith("int"):
                ids = keys[rng.integers(0, keys.shape[0], shape)]
                draw = rng.random(shape)
                ids = np.where(draw < settings.unknown_fraction, keys.max() + 1 + rng.integers(0, 10**6, shape), ids)
                ids = np.where(draw > 1 - settings.padding_fraction, -1, ids)
                sample[name] = ids.astype(entry["dtype"])
            else:
                sample[name] = rng.standard_normal(shape).astype(entry["dtype"])
        out.append(sample)
    return out


def measure(settings: Settings, models: Dict[str, Path], log=print) -> dict:
    """Per batch size: each system's predictions/s (median over rounds), their ratios, their largest difference."""
    from mx_rec.inference import load_inference_model

    local = load_inference_model(str(models["local"]))
    served = tf.saved_model.load(str(models["savedmodel"])).signatures["serving_default"]
    keys = next(iter(local.tables.values())).keys
    results = {}
    for batch in settings.batch_sizes:
        calls = max(1, settings.samples_per_round // batch)
        batches = make_batches(settings, np.asarray(keys), local.inputs, batch, min(calls, 4))
        tensors = [{k: tf.constant(v) for k, v in b.items()} for b in batches]
        systems = {"local": lambda i: local.predict(batches[i % len(batches)]),
                   "savedmodel": lambda i: served(**tensors[i % len(tensors)])["prediction"].numpy()}
        diff = max(float(np.abs(systems["local"](i) - systems["savedmodel"](i)).max()) for i in range(len(batches)))
        rates: Dict[str, List[float]] = {name: [] for name in systems}
        for _ in range(settings.rounds):
            for name, predict in systems.items():
                start = time.perf_counter()
                for i in range(calls):
                    predict(i)
                rates[name].append(calls * batch / (time.perf_counter() - start))
        medians = {name: statistics.median(r) for name, r in rates.items()}
        results[str(batch)] = {
            "batch_size": batch, "calls_per_round": calls, "max_abs_diff": diff,
            "predictions_per_s": medians, "round_predictions_per_s": rates,
            "ratio_savedmodel_over_local": medians["savedmodel"] / medians["local"],
            "ratio_paired_rounds_median": statistics.median(s / l for s, l in zip(rates["savedmodel"],
                                                                                rates["local"]))}
        log(f"batch {batch}: savedmodel {medians['savedmodel']:.0f}/s, local {medians['local']:.0f}/s, ratio "
            f"{results[str(batch)]['ratio_savedmodel_over_local']:.2f} (max |diff| {diff:.2e})")
    local.close()
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch_sizes", type=int, nargs="+")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT))
    args = parser.parse_args(argv)
    settings = PRESETS["quick" if args.quick else "full"]
    if args.batch_sizes:
        settings = dataclasses.replace(settings, batch_sizes=tuple(args.batch_sizes))
    if args.rounds:
        settings = dataclasses.replace(settings, rounds=args.rounds)
    with tempfile.TemporaryDirectory(prefix="mxrec_serving_") as tmp:
        started = time.perf_counter()
        models = prepare(settings, Path(tmp))
        with open(Path(tmp) / "savedmodel" / "assets.extra" / "mx_rec_export.json", encoding="utf-8") as f:
            export = json.load(f)
        print(f"trained and exported in {time.perf_counter() - started:.0f} s: {export['tables']}", flush=True)
        results = measure(settings, models)
    report = {"benchmark": "serving", "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "settings": dataclasses.asdict(settings), "model": "models/dlrm (zoo DLRM, default architecture)",
              "tables": export["tables"], "savedmodel_chunk_batch": export["chunk_batch"],
              "machine": machine_info(), "source": _mx_rec_source(),
              "by_batch_size": results}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
