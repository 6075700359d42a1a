"""Criteo-shaped synthetic data with a planted logistic click model, so the best AUC is known.

    python tools/criteo/synthetic.py --output_path /data/synthetic --rows 1000000 --seed 2024 \\
        [--test_fraction 0.1] [--line_per_sample 1] [--zipf 1.2] [--max_cardinality 20000]

Each sample has the Criteo shape (``layout.py``: label, 13 dense, 26 sparse ids, TFRecords as
``convert.py`` writes them). The world, fixed by ``--seed``:

    field f (26):  cardinality n_f from 3 to --max_cardinality (log-spaced, shuffled over fields),
                   keys drawn Zipf(--zipf) over popularity ranks, rank -> a random 32-bit value;
                   a missing rate of 0..30% on a third of the fields (missing is one more key)
    dense j (13):  counts floor(exp(N(mu_j, s_j))) with some missing, transformed like Criteo
                   (log(x + 1), missing -> 0)
    planted logit: b + sum_f w_f[key_f] + sum_j v_j * standardised(dense_j)
                   w_f[k] ~ N(0, --key_scale^2), v_j ~ N(0, --dense_scale^2)
    label:         Bernoulli(sigmoid(planted logit))

The generator prints (and stores in ``meta.json``) the oracle AUC of each split: the AUC of the
planted probabilities against the sampled labels, the most any model can reach on that split.

The output folder is replaced whole at the end (``mx_rec.data.output_folder``): a run that
fails or is killed leaves the previous output exactly as it was.
"""
import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from mx_rec.data.output_folder import OutputFolderError, replace_folder
from mx_rec.data.records import CRITEO_SCHEMA, SplitWriter, write_meta
from mx_rec.data.zipf import zipf_cdf
from tools.criteo import layout

CHUNK = 100_000


@dataclass
class World:
    """The planted model of one seed (see the module docstring)."""

    cardinality: np.ndarray        # int64 [26]
    cdfs: list                     # per field: float64 [n_f], Zipf CDF over popularity ranks
    values: list                   # per field: uint64 [n_f], the 32-bit value of each rank
    weights: list                  # per field: float64 [n_f + 1], last entry = the missing key
    missing_rate: np.ndarray       # float64 [26]
    dense_mu: np.ndarray           # float64 [13]
    dense_sigma: np.ndarray        # float64 [13]
    dense_missing: np.ndarray      # float64 [13]
    dense_weights: np.ndarray      # float64 [13]
    dense_mean: np.ndarray         # float64 [13], of the transformed values (for standardising)
    dense_std: np.ndarray          # float64 [13]
    bias: float


def make_world(args: argparse.Namespace) -> World:
    """The planted model for ``args.seed`` (cardinalities, key values, weights, dense laws)."""
    rng = np.random.default_rng(args.seed)
    cardinality = np.round(np.geomspace(3, args.max_cardinality, layout.N_SPARSE)).astype(np.int64)
    rng.shuffle(cardinality)
    cdfs, values, weights = [], [], []
    for n in cardinality:
        cdfs.append(zipf_cdf(int(n), args.zipf))
        values.append(rng.choice(2**32, size=int(n), replace=False).astype(np.uint64))
        weights.append(rng.normal(0.0, args.key_scale, int(n) + 1))
    missing_rate = np.where(rng.random(layout.N_SPARSE) < 1 / 3, rng.uniform(0.0, 0.3, layout.N_SPARSE), 0.0)
    dense_mu = rng.uniform(0.0, 4.0, layout.N_DENSE)
    dense_sigma = rng.uniform(0.5, 2.0, layout.N_DENSE)
    dense_missing = rng.uniform(0.0, 0.4, layout.N_DENSE)
    world = World(cardinality, cdfs, values, weights, missing_rate, dense_mu, dense_sigma, dense_missing,
                  rng.normal(0.0, args.dense_scale, layout.N_DENSE), np.zeros(layout.N_DENSE),
                  np.ones(layout.N_DENSE), 0.0)
    probe = _draw_dense(world, np.random.default_rng(args.seed + 1), 200_000)
    world.dense_mean, world.dense_std = probe.mean(axis=0), probe.std(axis=0) + 1e-6
    world.bias = args.bias
    return world


def _draw_dense(world: World, rng: np.random.Generator, rows: int) -> np.ndarray:
    counts = np.floor(np.exp(rng.normal(world.dense_mu, world.dense_sigma, (rows, layout.N_DENSE))))
    missing = rng.random((rows, layout.N_DENSE)) < world.dense_missing
    return layout.dense_transform(counts, missing).astype(np.float64)


def sample(world: World, rng: np.random.Generator, rows: int, hash_buckets: int) -> Dict[str, np.ndarray]:
    """``rows`` samples: the record arrays plus ``prob`` (float64 [rows], the planted click probability)."""
    raw = np.zeros((rows, layout.N_SPARSE), dtype=np.uint64)
    missing = np.zeros((rows, layout.N_SPARSE), dtype=bool)
    logit = np.full(rows, world.bias)
    for f in range(layout.N_SPARSE):
        ranks = np.searchsorted(world.cdfs[f], rng.random(rows), side="right")
        missing[:, f] = rng.random(rows) < world.missing_rate[f]
        raw[:, f] = world.values[f][ranks]
        logit += np.where(missing[:, f], world.weights[f][-1], world.weights[f][ranks])
    dense = _draw_dense(world, rng, rows)
    logit += ((dense - world.dense_mean) / world.dense_std) @ world.dense_weights
    prob = 1.0 / (1.0 + np.exp(-logit))
    labels = (rng.random(rows) < prob).astype(np.int64)
    return {"label": labels, "dense_feature": dense.astype(np.float32),
            "sparse_feature": layout.sparse_ids(raw, missing, hash_buckets), "prob": prob}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_path", required=True, help="folder for train/, test/ and meta.json")
    parser.add_argument("--rows", type=int, default=1_000_000, help="samples in train and test together")
    parser.add_argument("--test_fraction", type=float, default=0.1, help="share of the rows in test/")
    parser.add_argument("--seed", type=int, default=2024, help="fixes the world and the samples")
    parser.add_argument("--zipf", type=float, default=1.2, help="Zipf exponent of key popularity")
    parser.add_argument("--max_cardinality", type=int, default=20_000,
                        help="keys of the largest field (the default lets 10^6 rows pin down most planted weights)")
    parser.add_argument("--key_scale", type=float, default=0.3, help="stddev of the planted per-key weights")
    parser.add_argument("--dense_scale", type=float, default=0.3, help="stddev of the planted dense weights")
    parser.add_argument("--bias", type=float, default=-1.5, help="planted intercept (sets the click rate)")
    parser.add_argument("--line_per_sample", type=int, default=1, help="samples packed into one record")
    parser.add_argument("--hash_buckets", type=int, default=0, help="as convert.py: 0 = exact ids")
    args = parser.parse_args(argv)
    if args.rows < 2 or not 0.0 < args.test_fraction < 1.0:
        parser.error("need --rows >= 2 and 0 < --test_fraction < 1")
    if args.max_cardinality < 3 or args.zipf <= 0 or args.line_per_sample < 1:
        parser.error("need --max_cardinality >= 3, --zipf > 0 and --line_per_sample >= 1")
    return args


def _generate(args: argparse.Namespace, output: Path):
    """Both splits and ``meta.json`` into ``output``; returns (rows per split, and per split: stats,
    positives, oracle AUC, distinct keys)."""
    world = make_world(args)
    rng = np.random.default_rng(args.seed + 2)
    test_rows = max(1, int(round(args.rows * args.test_fraction)))
    sizes = {"train": args.rows - test_rows, "test": test_rows}
    stats, positives, oracle, distinct = {}, {}, {}, {}
    with tqdm(total=args.rows, unit="rows", desc="synthetic", mininterval=0.5, leave=False) as bar:
        for name, rows in sizes.items():
            writer = SplitWriter(output / name, CRITEO_SCHEMA, args.line_per_sample)
            probs, labels, keys = [], [], []
            for begin in range(0, rows, CHUNK):
                chunk = sample(world, rng, min(CHUNK, rows - begin), args.hash_buckets)
                writer.write(chunk)
                probs.append(chunk["prob"])
                labels.append(chunk["label"])
                keys.append(np.unique(chunk["sparse_feature"]))
                bar.update(chunk["label"].size)
            stats[name] = writer.close()
            label = np.concatenate(labels)
            positives[name] = [int(label.sum())]
            oracle[name] = float(roc_auc_score(label, np.concatenate(probs)))
            distinct[name] = np.unique(np.concatenate(keys))
    write_meta(output, CRITEO_SCHEMA, args.line_per_sample, stats, positives=positives,
               source="tools/criteo/synthetic.py", generator={k: v for k, v in vars(args).items()
                                                             if k != "output_path"},
               oracle_auc=oracle, cardinality=[int(n) for n in world.cardinality],
               train_distinct_keys=int(distinct["train"].size), test_distinct_keys=int(distinct["test"].size),
               test_keys_not_in_train=int(np.setdiff1d(distinct["test"], distinct["train"], True).size))
    return sizes, stats, positives, oracle, distinct


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    output = Path(args.output_path)
    try:
        with replace_folder(output) as staging:
            sizes, stats, positives, oracle, distinct = _generate(args, staging)
    except OutputFolderError as err:
        print(f"synthetic.py: error: {err}", file=sys.stderr)
        return 2
    for name in sizes:
        print(f"{name}: {stats[name].samples} rows (label 1: {positives[name][0]}), {distinct[name].size} distinct "
              f"keys, {stats[name].records} records; oracle auc {oracle[name]:.4f}")
    print(f"oracle auc (planted probabilities vs sampled labels): train {oracle['train']:.4f} "
          f"test {oracle['test']:.4f}")
    print(f"wrote {output} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
