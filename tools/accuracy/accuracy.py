"""Accuracy of the model zoo against the literature and against known optima (not part of the test suite).

    python tools/accuracy/accuracy.py [--only mmoe_census dlrm_synthetic dlrm_wide_resdnn]
                                      [--work_dir /tmp/mx_rec_accuracy] [--results_dir benchmarks/results]

Experiments (data from ``../shared/data``, see its SOURCES.md; nothing is copied into the repo):

    mmoe_census       MMoE trained on the rows of census-income.test.gz whose line number (from 1)
                      mod 5 is not 0, tested on the others. Targets: test AUC >= 0.94 (income),
                      >= 0.99 (marital status), as PaddleRec reports for MMoE on census-income.
    dlrm_synthetic    DLRM on tools/criteo/synthetic.py data, 10^6 rows (90% train), seed 2024.
                      Target: test AUC within 0.01 of the generator's oracle AUC.
    dlrm_wide_resdnn  DLRM trained on Wide-ResDNN's Criteo train.csv, tested on dev.csv + test.csv.
                      Reported only (7,200 training rows; no published figure to match).

For the Criteo experiments a logistic regression on one-hot ids + dense features (scikit-learn,
L2, converged: the planted model's own family for the synthetic data) is fitted on the same split
as a reference. Each experiment writes ``<results_dir>/accuracy_<name>.json`` with the figures,
the commands, the wall times and the machine, and prints a one-line verdict.
"""
import argparse
import gzip
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
PYTHON = sys.executable
EXPERIMENTS = ("mmoe_census", "dlrm_synthetic", "dlrm_wide_resdnn")
SYNTHETIC_SEED = 2024
WIDE_RESDNN_ARGS = ["--batch_size", "128", "--epochs", "2"]  # 7,200 rows: small batches, two passes


def run(command: List[str], log: Path) -> float:
    """Run ``command`` from the repo root, output to ``log``; returns its wall time in seconds.

    Raises:
        RuntimeError: non-zero exit, with the log's tail.
    """
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        proc = subprocess.run(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n{tail}")
    return seconds


def shown(command: List[str]) -> str:
    return " ".join(str(Path(c).relative_to(REPO)) if c.startswith(str(REPO)) else c for c in command)


def train(model: str, data: Path, metrics: Path, log: Path, extra: Sequence[str] = ()) -> Dict:
    """Train ``models/<model>`` on ``data`` (one process, default switches); returns its metrics file."""
    command = [PYTHON, str(REPO / "models" / model / "main_mxrec.py"), "--data_path", str(data),
               "--metrics_file", str(metrics), *extra]
    seconds = run(command, log)
    report = json.loads(metrics.read_text(encoding="utf-8"))
    report["command"] = shown(command)
    report["process_seconds"] = seconds
    return report


def logistic_reference(data: Path, c: float = 0.05) -> Dict:
    """AUC of an L2 logistic regression on one-hot ids + standardised dense features of ``data``."""
    import tensorflow as tf
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    def load(split: str) -> Dict[str, np.ndarray]:
        features = {"label": tf.io.VarLenFeature(tf.int64), "sparse_feature": tf.io.VarLenFeature(tf.int64),
                    "dense_feature": tf.io.VarLenFeature(tf.float32)}
        widths = {"label": 1, "sparse_feature": 26, "dense_feature": 13}
        files = sorted(str(p) for p in (data / split).glob("*.tfrecord"))
        parts: Dict[str, List[np.ndarray]] = {k: [] for k in widths}
        for batch in tf.data.TFRecordDataset(files).batch(4096).map(lambda s: tf.io.parse_example(s, features)):
            for k, w in widths.items():
                parts[k].append(batch[k].values.numpy().reshape(-1, w))
        return {k: np.concatenate(v) for k, v in parts.items()}

    start = time.perf_counter()
    tr, te = load("train"), load("test")
    keys, inverse = np.unique(np.concatenate([tr["sparse_feature"].ravel(), te["sparse_feature"].ravel()]),
                              return_inverse=True)
    mean, std = tr["dense_feature"].mean(axis=0), tr["dense_feature"].std(axis=0) + 1e-6

    def design(ids: np.ndarray, dense: np.ndarray):
        n = dense.shape[0]
        onehot = sparse.csr_matrix((np.ones(ids.size), (np.repeat(np.arange(n), 26), ids)), shape=(n, keys.size))
        return sparse.hstack([onehot, sparse.csr_matrix((dense - mean) / std)]).tocsr()

    split = tr["sparse_feature"].size
    model = LogisticRegression(C=c, max_iter=1000)
    model.fit(design(inverse[:split], tr["dense_feature"]), tr["label"].ravel())
    prob = model.predict_proba(design(inverse[split:], te["dense_feature"]))[:, 1]
    return {"model": f"sklearn LogisticRegression(C={c}) on one-hot ids + standardised dense",
            "test_auc": float(roc_auc_score(te["label"].ravel(), prob)), "seconds": time.perf_counter() - start}


def mmoe_census(work: Path) -> Dict:
    source = SHARED / "census" / "census-income.test.gz"
    start = time.perf_counter()
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        lines = handle.read().splitlines(keepends=True)
    split = {"train": [x for i, x in enumerate(lines, 1) if i % 5 != 0],
             "test": [x for i, x in enumerate(lines, 1) if i % 5 == 0]}
    for name, rows in split.items():
        with gzip.open(work / f"census_{name}.gz", "wt", encoding="utf-8") as handle:
            handle.writelines(rows)
    data = work / "census_tfrecord"
    convert = [PYTHON, str(REPO / "models" / "mmoe" / "census.py"), "--train_data_path", str(work / "census_train.gz"),
               "--test_data_path", str(work / "census_test.gz"), "--output_path", str(data)]
    convert_seconds = run(convert, work / "census_convert.log") + (time.perf_counter() - start)
    report = train("mmoe", data, work / "mmoe_metrics.json", work / "mmoe_train.log")
    targets = {"income": 0.94, "marital": 0.99}
    met = {task: report["eval"][task]["auc"] >= target for task, target in targets.items()}
    return {"experiment": "mmoe_census", "data": {"source": "census/census-income.test.gz (UCI test split)",
                                                  "split": "line number (from 1) mod 5 != 0 -> train, == 0 -> test",
                                                  "train_rows": len(split["train"]), "test_rows": len(split["test"])},
            "convert": {"command": shown(convert), "seconds": convert_seconds},
            "run": report, "targets_auc_at_least": targets, "target_met": met, "passed": all(met.values()),
            "summary": " ".join(f"{t} auc {report['eval'][t]['auc']:.4f} (target {targets[t]})" for t in targets)}


def dlrm_synthetic(work: Path, reference: bool) -> Dict:
    data = work / "synthetic_tfrecord"
    generate = [PYTHON, str(REPO / "tools" / "criteo" / "synthetic.py"), "--output_path", str(data),
                "--rows", "1000000", "--seed", str(SYNTHETIC_SEED)]
    generate_seconds = run(generate, work / "synthetic_generate.log")
    meta = json.loads((data / "meta.json").read_text(encoding="utf-8"))
    oracle = meta["oracle_auc"]["test"]
    report = train("dlrm", data, work / "dlrm_synthetic_metrics.json", work / "dlrm_synthetic_train.log")
    auc = report["eval"]["ctr"]["auc"]
    result = {"experiment": "dlrm_synthetic",
              "data": {"generator": shown(generate), "train_rows": meta["splits"]["train"]["samples"],
                       "test_rows": meta["splits"]["test"]["samples"], "oracle_auc": meta["oracle_auc"],
                       "train_distinct_keys": meta["train_distinct_keys"], "cardinality": meta["cardinality"]},
              "generate_seconds": generate_seconds, "run": report, "oracle_test_auc": oracle,
              "gap_to_oracle": oracle - auc, "target": "oracle_test_auc - auc <= 0.01",
              "passed": oracle - auc <= 0.01,
              "summary": f"auc {auc:.4f} vs oracle {oracle:.4f} (gap {oracle - auc:.4f}, target <= 0.01)"}
    if reference:
        result["reference"] = logistic_reference(data)
        result["summary"] += f"; logistic regression {result['reference']['test_auc']:.4f}"
    return result


def dlrm_wide_resdnn(work: Path, reference: bool) -> Dict:
    source = SHARED / "criteo" / "wide_resdnn"
    data = work / "wide_resdnn_tfrecord"
    convert = [PYTHON, str(REPO / "tools" / "criteo" / "convert.py"), "--train_data_path", str(source / "train.csv"),
               "--test_data_path", str(source / "dev.csv"), str(source / "test.csv"), "--output_path", str(data)]
    convert_seconds = run(convert, work / "wide_resdnn_convert.log")
    meta = json.loads((data / "meta.json").read_text(encoding="utf-8"))
    report = train("dlrm", data, work / "dlrm_wide_resdnn_metrics.json", work / "dlrm_wide_resdnn_train.log",
                   WIDE_RESDNN_ARGS)
    auc = report["eval"]["ctr"]["auc"]
    result = {"experiment": "dlrm_wide_resdnn",
              "data": {"train": "criteo/wide_resdnn/train.csv", "test": "criteo/wide_resdnn/dev.csv + test.csv",
                       "train_rows": meta["splits"]["train"]["samples"], "test_rows": meta["splits"]["test"]["samples"],
                       "test_keys_not_in_train": meta["test_keys_not_in_train"]},
              "convert": {"command": shown(convert), "seconds": convert_seconds}, "run": report,
              "passed": None, "summary": f"auc {auc:.4f} logloss {report['eval']['ctr']['logloss']:.4f} (reported)"}
    if reference:
        result["reference"] = logistic_reference(data, c=0.1)
        result["summary"] += f"; logistic regression {result['reference']['test_auc']:.4f}"
    return result


def machine() -> Dict:
    import tensorflow as tf
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "models", "tools", "mx_rec_py"], cwd=REPO,
                                capture_output=True, text=True).stdout.strip())
    cpu = ""
    if Path("/proc/cpuinfo").is_file():
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = found.group(1) if found else ""
    return {"cpu_count": os.cpu_count(), "cpu_model": cpu, "platform": platform.platform(),
            "python": platform.python_version(), "tensorflow": tf.__version__, "numpy": np.__version__,
            "git_commit": commit, "uncommitted_changes": dirty}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=EXPERIMENTS, default=list(EXPERIMENTS))
    parser.add_argument("--work_dir", default="/tmp/mx_rec_accuracy", help="converted data and logs go here")
    parser.add_argument("--results_dir", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--no_reference", action="store_true", help="skip the logistic-regression references")
    args = parser.parse_args(argv)
    work, results = Path(args.work_dir), Path(args.results_dir)
    work.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    runners: Dict[str, Callable[[Path], Dict]] = {
        "mmoe_census": mmoe_census,
        "dlrm_synthetic": lambda w: dlrm_synthetic(w, not args.no_reference),
        "dlrm_wide_resdnn": lambda w: dlrm_wide_resdnn(w, not args.no_reference),
    }
    failed = 0
    for name in args.only:
        start = time.perf_counter()
        result = runners[name](work)
        result["wall_seconds"] = time.perf_counter() - start
        result["timestamp"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        result["machine"] = machine()
        path = results / f"accuracy_{name}.json"
        path.write_text(json.dumps(result, indent=2, default=float) + "\n", encoding="utf-8")
        verdict = {True: "PASS", False: "FAIL", None: "REPORTED"}[result["passed"]]
        failed += result["passed"] is False
        print(f"{name}: {verdict}: {result['summary']}; wall {result['wall_seconds']:.0f} s "
              f"(train+eval {result['run']['wall_seconds']:.0f} s) -> {path}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
