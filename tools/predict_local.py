"""Predict with a local model (``tools/export_local.py``) on a folder of the model zoo's TFRecords.

    python tools/predict_local.py --model MODEL_DIR --data FOLDER --output FILE [--split test] [--batch 4096]

FOLDER is a dataset root (``<FOLDER>/<split>/*.tfrecord`` and ``meta.json``, as
``tools/criteo/convert.py``, ``tools/criteo/synthetic.py`` or ``models/mmoe/census.py`` write
them) or a folder of ``*.tfrecord`` files. The fields come from ``meta.json``; without one, from
the model's inputs plus a ``label`` of one column. Writes FILE, a tab-separated table with one line
per sample in file order (``row``, ``label_<t>``, ``pred_<t>`` for every task t), and
``FILE.metrics.json`` with each task's AUC and log loss (sklearn), which it also prints.
"""
import argparse
import json
import os
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.metrics import log_loss, roc_auc_score  # noqa: E402

from mx_rec.data.records import Field, Schema, read_meta, schema_from_json  # noqa: E402
from mx_rec.inference.model import InferenceModel, load_inference_model  # noqa: E402

EPS = 1e-7


def find_files(folder: Path, split: str) -> Tuple[List[str], Optional[dict]]:
    """The split's TFRecord files in order and the dataset's meta.json (None without one)."""
    own = sorted(folder.glob("*.tfrecord"))
    root, files = (folder, own) if own else (folder, sorted((folder / split).glob("*.tfrecord")))
    meta = read_meta(root) or (read_meta(folder.parent) if own else None)
    if meta is not None and not own:
        files = [root / f for f in meta["splits"][split]["files"]]
    if not files:
        raise SystemExit(f"predict_local.py: error: no *.tfrecord files in {folder} or {folder / split}")
    return [str(f) for f in files], meta


def schema_for(model: InferenceModel, meta: Optional[dict]) -> Schema:
    """The files' fields: meta.json's, else the model's inputs and a one-column int64 label."""
    if meta is not None:
        return schema_from_json(meta["schema"])
    fields = [Field(k, "int64" if e["dtype"].startswith("int") else "float32", int(np.prod(e["shape"][1:])))
              for k, e in model.inputs.items()]
    return tuple(fields) + (Field("label", "int64", 1),)


def read_batches(files: Sequence[str], schema: Schema, batch: int) -> Iterator[Dict[str, np.ndarray]]:
    """Samples in file order, ``batch`` records at a time: name -> [n, width] numpy arrays."""
    features = {f.name: tf.io.VarLenFeature(f.tf_dtype) for f in schema}
    for serialized in tf.data.TFRecordDataset(list(files)).batch(batch):
        parsed = tf.io.parse_example(serialized, features)
        yield {f.name: parsed[f.name].values.numpy().reshape(-1, f.width) for f in schema}


def metrics(labels: np.ndarray, probs: np.ndarray) -> List[Dict[str, float]]:
    """Per task: AUC (nan with one class), mean log loss, positives, samples; labels, probs float [n, T]."""
    out = []
    for t in range(labels.shape[1]):
        y, p = labels[:, t].astype(np.float64), probs[:, t].astype(np.float64)
        both = 0 < y.sum() < y.shape[0]
        out.append({"auc": float(roc_auc_score(y, p)) if both else float("nan"),
                    "logloss": float(log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1])) if y.size else float("nan"),
                    "positives": int(y.sum()), "samples": int(y.shape[0])})
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="folder written by tools/export_local.py")
    parser.add_argument("--data", required=True, help="dataset root or folder of *.tfrecord files")
    parser.add_argument("--output", required=True, help="predictions file (tab-separated)")
    parser.add_argument("--split", default="test", help="split folder under a dataset root")
    parser.add_argument("--batch", type=int, default=4096, help="records read at a time")
    args = parser.parse_args(argv)
    files, meta = find_files(Path(args.data), args.split)
    labels, probs = [], []
    with load_inference_model(args.model) as model:
        for batch in read_batches(files, schema_for(model, meta), args.batch):
            probs.append(np.asarray(model.predict(batch), np.float64).reshape(batch["label"].shape[0], -1))
            labels.append(batch["label"].astype(np.float64))
    labels, probs = np.concatenate(labels), np.concatenate(probs)
    tasks = probs.shape[1]
    header = ["row"] + [f"label_{t}" for t in range(labels.shape[1])] + [f"pred_{t}" for t in range(tasks)]
    table = np.concatenate([np.arange(labels.shape[0])[:, None], labels, probs], axis=1)
    fmt = ["%d"] + ["%d"] * labels.shape[1] + ["%.9g"] * tasks
    np.savetxt(args.output, table, fmt=fmt, delimiter="\t", header="\t".join(header), comments="")
    results = {"model": os.path.abspath(args.model), "data": files, "tasks": metrics(labels[:, :tasks], probs)}
    with open(args.output + ".metrics.json", "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    for t, m in enumerate(results["tasks"]):
        print(f"task {t}: auc {m['auc']:.6f} logloss {m['logloss']:.6f} positives {m['positives']} "
              f"samples {m['samples']}")
    print(f"wrote {labels.shape[0]} predictions to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
