"""Criteo (Kaggle text format) -> the model zoo's TFRecords (see ``layout.py`` for the ids and values).

    python tools/criteo/convert.py --train_data_path train.txt --test_data_path dev.txt test.txt \\
        --output_path /data/criteo [--line_per_sample 1] [--hash_buckets 0] [--skip_malformed]

Writes ``<output_path>/train/part-*.tfrecord``, ``<output_path>/test/part-*.tfrecord`` and
``meta.json`` (counts, distinct keys, the id layout), with a progress bar per split and a summary.
A malformed line (wrong field count, a label other than 0/1, a non-numeric integer field, a
categorical field that is not hex) stops the conversion with its file and line number; with
``--skip_malformed`` such lines are skipped and counted instead. Empty lines are counted. A
truncated or damaged gzip input stops the conversion naming the file and its last whole line.

Categorical values are unsigned 64-bit numbers (at most 16 hex digits). Exact ids (``--hash_buckets
0``) need them below 2**32; with ``--hash_buckets N`` a value v becomes ``v mod N`` (v read as an
unsigned 64-bit integer, so values at or above 2**63 hash like any other).

The output folder is replaced whole at the end (``mx_rec.data.output_folder``): a run that
fails or is killed leaves the previous output exactly as it was.
"""
import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from mx_rec.data.output_folder import OutputFolderError, replace_folder
from mx_rec.data.records import CRITEO_SCHEMA, SplitStats, SplitWriter, write_meta
from mx_rec.data.text_input import InputError, MalformedLines, parse_finite, read_lines, require_files
from tools.criteo import layout

CHUNK = 8192
MAX_EXACT = 2**32
MAX_VALUE = 2**64  # categorical values are unsigned 64-bit
INT64_MAX = 2**63 - 1


@dataclass
class SplitResult:
    """One converted split: what was written, label-1 count, its distinct ids (sorted int64)."""

    stats: SplitStats
    positives: int
    keys: np.ndarray


@dataclass
class _Chunk:
    labels: List[int] = field(default_factory=list)
    dense: List[List[float]] = field(default_factory=list)
    sparse: List[List[int]] = field(default_factory=list)


def parse_line(text: str, delimiter: str, hash_buckets: int) -> Tuple[int, List[float], List[int]]:
    """One line -> (label, 13 integer values with NaN for missing, 26 categorical values with -1 for missing).

    With ``hash_buckets`` N > 0 the categorical values are already reduced mod N (exactly, on the
    unsigned 64-bit value), so they fit int64 whatever their size.

    Raises:
        ValueError: saying what is wrong with the line.
    """
    parts = text.split(delimiter)
    if len(parts) != layout.N_FIELDS:
        raise ValueError(f"expected {layout.N_FIELDS} fields (label, I1..I13, C1..C26) separated by "
                         f"{delimiter!r}, got {len(parts)}")
    if parts[0] not in ("0", "1"):
        raise ValueError(f"label must be 0 or 1, got {parts[0]!r}")
    dense = []
    for i, raw in enumerate(parts[1:1 + layout.N_DENSE], start=1):
        dense.append(parse_finite(raw, f"I{i}") if raw else math.nan)
    sparse = []
    for i, raw in enumerate(parts[1 + layout.N_DENSE:], start=1):
        if not raw:
            sparse.append(-1)
            continue
        try:
            value = int(raw, 16)
        except ValueError:
            raise ValueError(f"C{i} is not a hex string: {raw!r}") from None
        if value < 0 or value >= MAX_VALUE:
            raise ValueError(f"C{i}={raw!r} is not an unsigned 64-bit value (at most 16 hex digits)")
        if hash_buckets:
            value %= hash_buckets
        elif value >= MAX_EXACT:
            raise ValueError(f"C{i}={raw!r} is outside 32 bits; pass --hash_buckets N to hash such values")
        sparse.append(value)
    return int(parts[0]), dense, sparse


def _chunk_arrays(chunk: _Chunk, hash_buckets: int):
    dense = np.asarray(chunk.dense, dtype=np.float64).reshape(-1, layout.N_DENSE)
    raw = np.asarray(chunk.sparse, dtype=np.int64).reshape(-1, layout.N_SPARSE)
    missing = raw < 0
    ids = layout.sparse_ids(np.where(missing, 0, raw).astype(np.uint64), missing, hash_buckets)
    return {"label": np.asarray(chunk.labels, dtype=np.int64),
            "dense_feature": layout.dense_transform(np.nan_to_num(dense), np.isnan(dense)),
            "sparse_feature": ids}


def convert_split(paths: Sequence[str], name: str, output: Path, args: argparse.Namespace,
                  malformed: MalformedLines) -> SplitResult:
    """Convert the lines of ``paths`` into ``output/<name>``."""
    writer = SplitWriter(output / name, CRITEO_SCHEMA, args.line_per_sample, args.samples_per_file)
    chunk, positives, key_parts = _Chunk(), 0, []

    def flush() -> None:
        nonlocal chunk, positives
        if chunk.labels:
            arrays = _chunk_arrays(chunk, args.hash_buckets)
            writer.write(arrays)
            positives += int(arrays["label"].sum())
            key_parts.append(np.unique(arrays["sparse_feature"]))
            chunk = _Chunk()

    for where, text in read_lines(paths, name):
        if args.header and where.line == 1:
            continue
        if not text.strip():
            malformed.blank += 1
            continue
        try:
            label, dense, sparse = parse_line(text, args.delimiter, args.hash_buckets)
        except ValueError as err:
            malformed.bad(where, err)
            continue
        chunk.labels.append(label)
        chunk.dense.append(dense)
        chunk.sparse.append(sparse)
        if len(chunk.labels) >= CHUNK:
            flush()
    flush()
    keys = np.unique(np.concatenate(key_parts)) if key_parts else np.zeros(0, np.int64)
    return SplitResult(writer.close(), positives, keys)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train_data_path", nargs="+", required=True, help="training text file(s), plain or .gz")
    parser.add_argument("--test_data_path", nargs="+", required=True, help="test text file(s), plain or .gz")
    parser.add_argument("--output_path", required=True, help="folder for train/, test/ and meta.json")
    parser.add_argument("--line_per_sample", type=int, default=1, help="samples packed into one record")
    parser.add_argument("--hash_buckets", type=int, default=0,
                        help="0: exact ids (field * 2**33 + value); N: value mod N per field "
                             "(the value read as an unsigned 64-bit integer)")
    parser.add_argument("--samples_per_file", type=int, default=1_000_000, help="samples per part file")
    parser.add_argument("--delimiter", default="\t", help="field separator (default: tab)")
    parser.add_argument("--header", action="store_true", help="skip the first line of every file")
    parser.add_argument("--skip_malformed", action="store_true",
                        help="skip and count malformed lines instead of stopping at the first")
    args = parser.parse_args(argv)
    if args.line_per_sample < 1:
        parser.error(f"--line_per_sample must be >= 1, got {args.line_per_sample}")
    if args.hash_buckets < 0:
        parser.error(f"--hash_buckets must be >= 0, got {args.hash_buckets}")
    if (args.hash_buckets + 1) * layout.N_SPARSE > INT64_MAX:
        parser.error(f"--hash_buckets {args.hash_buckets} is too large: the ids of {layout.N_SPARSE} fields "
                     f"(field * (N + 1) + bucket) must fit int64")
    require_files(parser, args.train_data_path + args.test_data_path)
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    output = Path(args.output_path)
    malformed = MalformedLines(skip=args.skip_malformed)
    try:
        with replace_folder(output) as staging:
            train, test, unseen, layout_text = _convert(args, staging, malformed)
    except InputError as err:
        print(f"convert.py: error: {err} ({output} is unchanged)", file=sys.stderr)
        return 2
    except OutputFolderError as err:
        print(f"convert.py: error: {err}", file=sys.stderr)
        return 2
    for name, result in (("train", train), ("test", test)):
        print(f"{name}: {result.stats.samples} rows (label 1: {result.positives}), "
              f"{result.keys.size} distinct keys, {result.stats.records} records in {len(result.stats.files)} file(s)")
    print(f"test keys not in train: {unseen}; line_per_sample {args.line_per_sample}; ids: {layout_text}")
    print(malformed.summary())
    print(f"wrote {output} in {time.perf_counter() - start:.1f} s")
    return 0


def _convert(args: argparse.Namespace, output: Path, malformed: MalformedLines
             ) -> Tuple[SplitResult, SplitResult, int, str]:
    """Both splits and ``meta.json`` into ``output``; returns (train, test, test keys not in train, id layout)."""
    train = convert_split(args.train_data_path, "train", output, args, malformed)
    test = convert_split(args.test_data_path, "test", output, args, malformed)
    unseen = int(np.setdiff1d(test.keys, train.keys, assume_unique=True).size)
    layout_text = ("field * 2**33 + int(hex, 16); missing: field * 2**33 + 2**32" if args.hash_buckets == 0 else
                   f"field * {args.hash_buckets + 1} + uint64(hex) % {args.hash_buckets}; "
                   f"missing: field * {args.hash_buckets + 1} + {args.hash_buckets}")
    write_meta(output, CRITEO_SCHEMA, args.line_per_sample, {"train": train.stats, "test": test.stats},
               positives={"train": [train.positives], "test": [test.positives]},
               source="criteo text", train_files=list(args.train_data_path), test_files=list(args.test_data_path),
               hash_buckets=args.hash_buckets, id_layout=layout_text,
               train_distinct_keys=int(train.keys.size), test_distinct_keys=int(test.keys.size),
               test_keys_not_in_train=unseen, malformed_skipped=malformed.count, blank_lines=malformed.blank)
    return train, test, unseen, layout_text


if __name__ == "__main__":
    sys.exit(main())
