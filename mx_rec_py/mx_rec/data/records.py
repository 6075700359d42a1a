"""The model zoo's TFRecord format: fields, the part-file writer and ``meta.json``.

A dataset folder holds ``train/part-NNNNN.tfrecord``, ``test/part-NNNNN.tfrecord`` and
``meta.json``. Each record is a ``tf.train.Example`` with one int64 or float list per field. A
record packs up to ``line_per_sample`` samples (as Rec SDK's Criteo data does): a field of width
W holds k * W values for the record's k samples, in sample order; the last record of a split may
hold fewer samples than the others.

Schemas:
    census (``models/mmoe/census.py``): label int64 [2], sparse_feature int64 [29], dense_feature float [11]
    criteo (``tools/criteo``):          label int64 [1], sparse_feature int64 [26], dense_feature float [13]

``meta.json`` records the schema, the packing, per split the files, records, samples and
positives of each label column, and whatever the converter adds (vocabulary size, distinct keys,
the generator's oracle AUC, ...). Readers use it to size tables and count steps without a pass
over the data.

Example:
    >>> writer = SplitWriter(Path("out/train"), CRITEO_SCHEMA, line_per_sample=4)  # doctest: +SKIP
    >>> writer.write({"label": labels, "sparse_feature": ids, "dense_feature": dense})  # [n, width] each
    >>> write_meta(Path("out"), CRITEO_SCHEMA, 4, {"train": writer.close()}, vocab_size=None)
"""
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

# TensorFlow is imported where a record is written or a dtype asked for, not at import: a converter
# that stops at a bad input line says so in a fraction of a second instead of after TF's import.

META_FILE = "meta.json"
FORMAT = "mx_rec-model-zoo-tfrecord-v1"
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Field:
    """One feature of a sample: ``width`` values of ``dtype`` ("int64" or "float32")."""

    name: str
    dtype: str
    width: int

    @property
    def tf_dtype(self) -> "tf.DType":
        import tensorflow as tf
        return tf.int64 if self.dtype == "int64" else tf.float32

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(np.int64) if self.dtype == "int64" else np.dtype(np.float32)


Schema = Tuple[Field, ...]

CENSUS_SCHEMA: Schema = (Field("label", "int64", 2), Field("sparse_feature", "int64", 29),
                         Field("dense_feature", "float32", 11))
CRITEO_SCHEMA: Schema = (Field("label", "int64", 1), Field("sparse_feature", "int64", 26),
                         Field("dense_feature", "float32", 13))


def schema_to_json(schema: Schema) -> List[Dict[str, Any]]:
    return [asdict(f) for f in schema]


def schema_from_json(items: Sequence[Mapping[str, Any]]) -> Schema:
    return tuple(Field(str(i["name"]), str(i["dtype"]), int(i["width"])) for i in items)


@dataclass
class SplitStats:
    """What a :class:`SplitWriter` wrote: file names (relative to the dataset root), counts."""

    files: List[str] = field(default_factory=list)
    records: int = 0
    samples: int = 0


class SplitWriter:
    """Writes samples of one split as ``part-NNNNN.tfrecord`` files in ``folder``.

    Args:
        folder: the split's folder (``<root>/train`` or ``<root>/test``); created if missing.
        schema: the fields every batch of samples carries.
        line_per_sample: samples packed into one record (>= 1).
        samples_per_file: a new part file starts after this many samples (rounded up to whole records).
    """

    def __init__(self, folder: Path, schema: Schema, line_per_sample: int = 1,
                 samples_per_file: int = 1_000_000) -> None:
        if line_per_sample < 1:
            raise ValueError(f"line_per_sample must be >= 1, got {line_per_sample}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("part-*.tfrecord"):
            old.unlink()  # a rerun into the same folder must not leave parts of the previous run
        self.schema = schema
        self.line_per_sample = line_per_sample
        self.samples_per_file = max(samples_per_file, line_per_sample)
        self.stats = SplitStats()
        self._writer: Optional["tf.io.TFRecordWriter"] = None
        self._in_file = 0
        self._pending: Dict[str, List[np.ndarray]] = {f.name: [] for f in schema}
        self._pending_rows = 0

    def write(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Append samples: ``arrays[name]`` is [n, width] (or [n] for width 1) of the field's dtype."""
        rows = None
        for f in self.schema:
            value = np.asarray(arrays[f.name], dtype=f.np_dtype).reshape(-1, f.width)
            if rows is not None and value.shape[0] != rows:
                raise ValueError(f"field {f.name} has {value.shape[0]} samples, expected {rows}")
            rows = value.shape[0]
            self._pending[f.name].append(value)
        self._pending_rows += rows or 0
        if self._pending_rows >= self.line_per_sample:
            self._flush(final=False)

    def close(self) -> SplitStats:
        """Write what is left (a last, shorter record if needed) and close the file."""
        self._flush(final=True)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return self.stats

    def _flush(self, final: bool) -> None:
        if not self._pending_rows:
            return
        data = {name: np.concatenate(parts) for name, parts in self._pending.items()}
        k = self.line_per_sample
        whole = self._pending_rows if final else self._pending_rows - self._pending_rows % k
        for start in range(0, whole, k):
            self._write_record({name: value[start:start + k] for name, value in data.items()})
        self._pending = {name: [value[whole:]] for name, value in data.items()}
        self._pending_rows -= whole

    def _write_record(self, record: Mapping[str, np.ndarray]) -> None:
        import tensorflow as tf
        if self._writer is None or self._in_file >= self.samples_per_file:
            if self._writer is not None:
                self._writer.close()
            name = f"part-{len(self.stats.files):05d}.tfrecord"
            self._writer = tf.io.TFRecordWriter(str(self.folder / name))
            self.stats.files.append(f"{self.folder.name}/{name}")
            self._in_file = 0
        features = {}
        for f in self.schema:
            values = record[f.name].ravel()
            if f.dtype == "int64":
                features[f.name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
            else:
                features[f.name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        self._writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
        samples = next(iter(record.values())).shape[0]
        self._in_file += samples
        self.stats.records += 1
        self.stats.samples += samples


def write_meta(root: Path, schema: Schema, line_per_sample: int, splits: Mapping[str, SplitStats],
               positives: Optional[Mapping[str, Sequence[int]]] = None, **extra: Any) -> Path:
    """Write ``<root>/meta.json``.

    Args:
        splits: split name -> what its writer wrote.
        positives: split name -> count of 1s in each label column.
        extra: converter-specific entries (JSON-serialisable), stored at the top level.
    """
    meta = {"format": FORMAT, "schema": schema_to_json(schema), "line_per_sample": line_per_sample,
            "splits": {name: {**asdict(stats), "positives": list((positives or {}).get(name, []))}
                       for name, stats in splits.items()},
            **extra}
    path = Path(root) / META_FILE
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path


def read_meta(root: Path) -> Optional[Dict[str, Any]]:
    """``<root>/meta.json`` as a dict, or None when the folder has none (data from elsewhere)."""
    path = Path(root) / META_FILE
    if not path.is_file():
        return None
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta
