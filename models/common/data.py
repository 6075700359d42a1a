"""Reading the model zoo's TFRecords (``mx_rec.data.records``) with ``tf.data``, one shard per rank.

Batches are dicts:
    label          float32 [B, L]  (the file's int64 labels, cast)
    sparse_feature int64   [B, F]
    dense_feature  float32 [B, D]
    valid          float32 [B]     evaluation only: 0 for the padding samples that fill the last batches

Training repeats its shard (shuffled each epoch) and stops after a step count that is the same on
every rank, so no rank waits in a collective for one that has run out of data. Evaluation reads
every test sample exactly once over all ranks: each rank reads its shard, then padding samples
(ids -1, ``valid`` 0) up to a batch count that is again the same on every rank.
"""
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Tuple

import tensorflow as tf

from mx_rec.data.records import SPLITS, Schema, read_meta, schema_from_json

READ_BATCH = 64  # records parsed per parse_example call


@dataclass(frozen=True)
class SplitInfo:
    """One split on disk: absolute file paths, record and sample counts."""

    name: str
    files: Tuple[str, ...]
    records: int
    samples: int


@dataclass(frozen=True)
class DataInfo:
    """A dataset folder: its schema, packing, splits and ``meta.json`` (empty dict if it has none)."""

    root: Path
    schema: Schema
    line_per_sample: int
    train: SplitInfo
    test: SplitInfo
    meta: Dict[str, Any]

    def width(self, name: str) -> int:
        return next(f.width for f in self.schema if f.name == name)


def load_data_info(root: Path, schema: Schema) -> DataInfo:
    """Describe the dataset under ``root`` and check it carries ``schema``.

    Without ``meta.json`` (TFRecords made elsewhere) the files under ``train/`` and ``test/`` are
    counted once; records may then pack any number of samples.

    Raises:
        FileNotFoundError: ``root`` or a split has no ``*.tfrecord`` files.
        ValueError: the data's fields differ from ``schema``, naming the field.
    """
    root = Path(root)
    meta = read_meta(root)
    if meta is None:
        splits = {name: _count_split(root, name, schema) for name in SPLITS}
        return DataInfo(root, schema, 0, splits["train"], splits["test"], {})
    on_disk = {f.name: f for f in schema_from_json(meta["schema"])}
    for want in schema:
        have = on_disk.get(want.name)
        if have is None or (have.dtype, have.width) != (want.dtype, want.width):
            found = f"{have.dtype}[{have.width}]" if have else "missing"
            raise ValueError(f"{root}: field {want.name} is {found}; this model needs {want.dtype}[{want.width}]")
    splits = {}
    for name in SPLITS:
        entry = meta["splits"].get(name)
        if entry is None or not entry["files"]:
            raise FileNotFoundError(f"{root}/meta.json lists no {name} files")
        splits[name] = SplitInfo(name, tuple(str(root / f) for f in entry["files"]), int(entry["records"]),
                                 int(entry["samples"]))
    return DataInfo(root, schema, int(meta["line_per_sample"]), splits["train"], splits["test"], meta)


def _count_split(root: Path, name: str, schema: Schema) -> SplitInfo:
    files = tuple(sorted(str(p) for p in (root / name).glob("*.tfrecord")))
    if not files:
        raise FileNotFoundError(f"no {root / name}/*.tfrecord files: DATA_PATH must hold train/ and test/ "
                                "TFRecords (tools/criteo/convert.py, tools/criteo/synthetic.py or "
                                "models/mmoe/census.py write them)")
    label_width = next(f.width for f in schema if f.name == "label")
    records = samples = 0
    for path in files:
        for raw in tf.compat.v1.io.tf_record_iterator(path):
            example = tf.train.Example.FromString(raw)
            samples += len(example.features.feature["label"].int64_list.value) // label_width
            records += 1
    return SplitInfo(name, files, records, samples)


def _parser(schema: Schema):
    features = {f.name: tf.io.VarLenFeature(f.tf_dtype) for f in schema}

    def parse(serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(serialized, features)
        return {f.name: tf.reshape(parsed[f.name].values, [-1, f.width]) for f in schema}

    return parse


def _samples(split: SplitInfo, schema: Schema, rank: int, rank_size: int) -> tf.data.Dataset:
    """This rank's samples of ``split`` (record-level shard), one dict of [width] tensors each."""
    dataset = tf.data.TFRecordDataset(list(split.files))
    if rank_size > 1:
        dataset = dataset.shard(rank_size, rank)
    dataset = dataset.batch(READ_BATCH).map(_parser(schema), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.unbatch()


def _cast_labels(batch: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    return {**batch, "label": tf.cast(batch["label"], tf.float32)}


def train_steps(info: DataInfo, batch_size: int, rank_size: int, epochs: float) -> int:
    """Steps for ``epochs`` passes over the training split with a global batch of ``batch_size * rank_size``."""
    return max(1, int(epochs * info.train.samples / (batch_size * rank_size)))


def train_dataset(info: DataInfo, batch_size: int, steps: int, rank: int, rank_size: int, seed: int,
                  shuffle_buffer: int) -> tf.data.Dataset:
    """``steps`` batches of ``batch_size`` from this rank's shard, repeated and reshuffled each epoch."""
    dataset = _samples(info.train, info.schema, rank, rank_size)
    if shuffle_buffer > 1:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed + rank, reshuffle_each_iteration=True)
    dataset = dataset.repeat().batch(batch_size, drop_remainder=True).take(steps)
    return dataset.map(_cast_labels).prefetch(4)


def eval_steps(info: DataInfo, batch_size: int, rank_size: int, max_steps: int = 0) -> int:
    """Batches each rank runs so that every rank's shard fits (``max_steps`` > 0 caps it)."""
    packing = info.line_per_sample
    if packing:
        per_rank = math.ceil(info.test.records / rank_size) * packing
    else:  # records of unknown, possibly uneven packing: one rank may hold every sample
        per_rank = info.test.samples
    steps = max(1, math.ceil(per_rank / batch_size))
    return min(steps, max_steps) if max_steps > 0 else steps


def eval_dataset(info: DataInfo, batch_size: int, steps: int, rank: int, rank_size: int) -> tf.data.Dataset:
    """``steps`` batches: this rank's test shard, then padding samples (``valid`` 0, ids -1)."""
    def mark_valid(sample):
        return {**sample, "valid": tf.constant(1.0)}

    dataset = _samples(info.test, info.schema, rank, rank_size).map(mark_valid)
    padding = {f.name: tf.fill([f.width], tf.constant(-1 if f.name == "sparse_feature" else 0, f.tf_dtype))
               for f in info.schema}
    padding["valid"] = tf.constant(0.0)
    dataset = dataset.concatenate(tf.data.Dataset.from_tensors(padding).repeat())
    return dataset.batch(batch_size, drop_remainder=True).take(steps).map(_cast_labels).prefetch(4)


def make_iterator(dataset: tf.data.Dataset) -> Tuple[Any, Dict[str, tf.Tensor]]:
    """(initializable iterator, its ``get_next()`` batch)."""
    iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
    return iterator, iterator.get_next()

