"""UCI Census-Income (KDD) text -> TFRecords for MMoE (income and marital-status tasks).

    python models/mmoe/census.py --train_data_path census-income.data.gz \\
        --test_data_path census-income.test.gz --output_path /data/census [--skip_malformed]

Input: the UCI files (42 columns separated by ", ", plain or gzip) or DeepCTR's sample layout
(a leading row index, 43 columns separated by ","); the layout is detected per file from its first
line. Output, in ``--output_path``:

    train/part-*.tfrecord, test/part-*.tfrecord   one sample per record:
        label          int64 [2]   income "50000+." (column 42), marital status "Never married" (column 8)
        sparse_feature int64 [29]  the categorical columns in one id space (the feature map)
        dense_feature  float [11]  the continuous columns: log(1 + x), then min-max scaled to [0, 1]
    feature_map.json   per categorical column its id offset and value -> id (built over both files,
                       most frequent value first), and the scaling of each continuous column
    meta.json          counts, positives per task, the vocabulary size

The 29 + 11 split is PaddleRec's / DeepCTR's MMoE census preprocessing: of the 42 columns the two
label columns are dropped; ``instance_weight`` stays as a continuous column.

A malformed line (wrong column count, a non-numeric continuous value, an income other than
"- 50000." / "50000+.") or, with ``--feature_map`` from an earlier run, a category the map does
not know, stops the conversion with its file and line number; ``--skip_malformed`` skips and
counts such lines instead. Empty lines are counted and reported. A truncated or damaged gzip input
stops the conversion naming the file and its last whole line.

The output folder is replaced whole at the end (``mx_rec.data.output_folder``): a run that
fails or is killed leaves the previous output exactly as it was.
"""
import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mx_rec.data.output_folder import OutputFolderError, replace_folder
from mx_rec.data.records import CENSUS_SCHEMA, SplitStats, SplitWriter, write_meta
from mx_rec.data.text_input import InputError, MalformedLines, Where, parse_finite, read_lines, require_files

COLUMNS = (
    "age", "class_worker", "det_ind_code", "det_occ_code", "education", "wage_per_hour", "hs_college",
    "marital_stat", "major_ind_code", "major_occ_code", "race", "hisp_origin", "sex", "union_member",
    "unemp_reason", "full_or_part_emp", "capital_gains", "capital_losses", "stock_dividends", "tax_filer_stat",
    "region_prev_res", "state_prev_res", "det_hh_fam_stat", "det_hh_summ", "instance_weight", "mig_chg_msa",
    "mig_chg_reg", "mig_move_reg", "mig_same", "mig_prev_sunbelt", "num_emp", "fam_under_18", "country_father",
    "country_mother", "country_self", "citizenship", "own_or_self", "vet_question", "vet_benefits",
    "weeks_worked", "year", "income_50k",
)
DENSE_COLUMNS = ("age", "wage_per_hour", "capital_gains", "capital_losses", "stock_dividends", "instance_weight",
                 "num_emp", "own_or_self", "vet_benefits", "weeks_worked", "year")
LABEL_COLUMNS = ("income_50k", "marital_stat")
SPARSE_COLUMNS = tuple(c for c in COLUMNS if c not in DENSE_COLUMNS and c not in LABEL_COLUMNS)
INCOME_VALUES = {"- 50000.": 0, "50000+.": 1}
NEVER_MARRIED = "Never married"
TASKS = ("income", "marital")
FEATURE_MAP = "feature_map.json"
assert len(COLUMNS) == 42 and len(SPARSE_COLUMNS) == 29 and len(DENSE_COLUMNS) == 11

_INDEX = {name: i for i, name in enumerate(COLUMNS)}


@dataclass
class ParsedFile:
    """The rows of one split: raw categorical strings, continuous values, labels, where each came from."""

    sparse: List[List[str]] = field(default_factory=list)
    dense: List[List[float]] = field(default_factory=list)
    labels: List[Tuple[int, int]] = field(default_factory=list)
    where: List[Where] = field(default_factory=list)


def split_line(text: str, expected: Optional[int]) -> List[str]:
    """Fields of a line (both layouts separate by "," with optional spaces), stripped.

    Raises:
        ValueError: not 42 (or, with the row index, 43) fields, or not ``expected`` fields.
    """
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (42, 43) or (expected is not None and len(parts) != expected):
        want = expected or "42 (or 43 with a leading row index)"
        raise ValueError(f"expected {want} comma-separated columns, got {len(parts)}")
    return parts


def parse_row(parts: List[str]) -> Tuple[List[str], List[float], Tuple[int, int]]:
    """The 42 census columns of a line -> (29 categorical strings, 11 floats, (income, marital) labels).

    Raises:
        ValueError: naming the column at fault.
    """
    dense = [parse_finite(parts[_INDEX[name]], f"column {name}") for name in DENSE_COLUMNS]
    income = parts[_INDEX["income_50k"]]
    if income not in INCOME_VALUES:
        raise ValueError(f"column income_50k must be '- 50000.' or '50000+.', got {income!r}")
    labels = (INCOME_VALUES[income], int(parts[_INDEX["marital_stat"]] == NEVER_MARRIED))
    return [parts[_INDEX[name]] for name in SPARSE_COLUMNS], dense, labels


def read_split(path: str, name: str, malformed: MalformedLines) -> ParsedFile:
    """Parse one file; the first non-empty line fixes its layout (42 or 43 columns)."""
    parsed = ParsedFile()
    width = None
    for where, text in read_lines([path], name):
        if not text.strip():
            malformed.blank += 1
            continue
        try:
            parts = split_line(text, width)
            columns = len(parts)
            if columns == 43:
                if not parts[0].lstrip("-").isdigit():
                    raise ValueError(f"43 columns, but the first (the row index) is not an integer: {parts[0]!r}")
                parts = parts[1:]
            row = parse_row(parts)
        except ValueError as err:
            malformed.bad(where, err)
            continue
        width = width or columns
        parsed.sparse.append(row[0])
        parsed.dense.append(row[1])
        parsed.labels.append(row[2])
        parsed.where.append(where)
    return parsed


def _scaled_log(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.log1p(np.abs(values))


def build_feature_map(splits: Sequence[ParsedFile]) -> Dict:
    """Ids for every categorical value of ``splits`` (column offsets, most frequent value first) and
    the min / max of each continuous column after log(1 + x)."""
    columns, offset = {}, 0
    for j, name in enumerate(SPARSE_COLUMNS):
        counts = Counter(row[j] for split in splits for row in split.sparse)
        ordered = sorted(counts, key=lambda value: (-counts[value], value))
        columns[name] = {"offset": offset, "values": {value: offset + i for i, value in enumerate(ordered)}}
        offset += len(ordered)
    dense = np.concatenate([np.asarray(s.dense, dtype=np.float64).reshape(-1, len(DENSE_COLUMNS)) for s in splits])
    logged = _scaled_log(dense)
    scaling = {name: {"min": float(logged[:, j].min()), "max": float(logged[:, j].max())}
               for j, name in enumerate(DENSE_COLUMNS)}
    return {"sparse_columns": list(SPARSE_COLUMNS), "dense_columns": list(DENSE_COLUMNS),
            "label_columns": {"income": "income_50k == '50000+.'", "marital": "marital_stat == 'Never married'"},
            "vocab_size": offset, "dense_transform": "log(1 + x), then (v - min) / (max - min)",
            "columns": columns, "dense_scaling": scaling}


def encode(split: ParsedFile, feature_map: Dict, malformed: MalformedLines) -> Dict[str, np.ndarray]:
    """A parsed split -> the arrays of ``CENSUS_SCHEMA`` (rows with unknown categories are reported)."""
    ids, keep = [], []
    for row, where in zip(split.sparse, split.where):
        try:
            encoded = []
            for name, value in zip(SPARSE_COLUMNS, row):
                known = feature_map["columns"][name]["values"]
                if value not in known:
                    raise ValueError(f"column {name}: value {value!r} is not in the feature map")
                encoded.append(known[value])
        except ValueError as err:
            malformed.bad(where, err)
            keep.append(False)
            continue
        ids.append(encoded)
        keep.append(True)
    mask = np.asarray(keep, dtype=bool)
    dense = _scaled_log(np.asarray(split.dense, dtype=np.float64).reshape(-1, len(DENSE_COLUMNS))[mask])
    low = np.asarray([feature_map["dense_scaling"][c]["min"] for c in DENSE_COLUMNS])
    high = np.asarray([feature_map["dense_scaling"][c]["max"] for c in DENSE_COLUMNS])
    scaled = np.clip((dense - low) / np.where(high > low, high - low, 1.0), 0.0, 1.0)
    return {"label": np.asarray(split.labels, dtype=np.int64).reshape(-1, 2)[mask],
            "sparse_feature": np.asarray(ids, dtype=np.int64).reshape(-1, len(SPARSE_COLUMNS)),
            "dense_feature": scaled.astype(np.float32)}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train_data_path", required=True, help="training file (census-income.data[.gz])")
    parser.add_argument("--test_data_path", required=True, help="test file (census-income.test[.gz])")
    parser.add_argument("--output_path", required=True, help="folder for train/, test/, feature_map.json, meta.json")
    parser.add_argument("--feature_map", default="",
                        help="reuse this feature_map.json instead of building one from both files")
    parser.add_argument("--samples_per_file", type=int, default=100_000, help="samples per part file")
    parser.add_argument("--skip_malformed", action="store_true",
                        help="skip and count malformed lines instead of stopping at the first")
    args = parser.parse_args(argv)
    require_files(parser, (args.train_data_path, args.test_data_path, args.feature_map))
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    output = Path(args.output_path)
    malformed = MalformedLines(skip=args.skip_malformed)
    try:
        with replace_folder(output) as staging:
            splits = {"train": read_split(args.train_data_path, "train", malformed),
                      "test": read_split(args.test_data_path, "test", malformed)}
            if args.feature_map:
                feature_map = json.loads(Path(args.feature_map).read_text(encoding="utf-8"))
            else:
                feature_map = build_feature_map(list(splits.values()))
            arrays = {name: encode(split, feature_map, malformed) for name, split in splits.items()}
            stats, positives = _write(staging, arrays, feature_map, args, malformed)
    except InputError as err:
        print(f"census.py: error: {err} ({output} is unchanged)", file=sys.stderr)
        return 2
    except OutputFolderError as err:
        print(f"census.py: error: {err}", file=sys.stderr)
        return 2
    for name in ("train", "test"):
        income, marital = positives[name]
        print(f"{name}: {stats[name].samples} rows; income 50000+: {income}, never married: {marital}; "
              f"{len(stats[name].files)} file(s)")
    print(f"vocabulary: {feature_map['vocab_size']} ids over {len(SPARSE_COLUMNS)} categorical columns; "
          f"{len(DENSE_COLUMNS)} continuous columns; feature map {output / FEATURE_MAP}")
    print(malformed.summary())
    print(f"wrote {output} in {time.perf_counter() - start:.1f} s")
    return 0


def _write(output: Path, arrays: Dict[str, Dict[str, np.ndarray]], feature_map: Dict, args: argparse.Namespace,
           malformed: MalformedLines) -> Tuple[Dict[str, SplitStats], Dict[str, List[int]]]:
    """Both splits, ``feature_map.json`` and ``meta.json`` into ``output``; returns (stats, positives) per split."""
    stats, positives = {}, {}
    for name, values in arrays.items():
        writer = SplitWriter(output / name, CENSUS_SCHEMA, 1, args.samples_per_file)
        writer.write(values)
        stats[name] = writer.close()
        positives[name] = [int(v) for v in values["label"].sum(axis=0)]
    (output / FEATURE_MAP).write_text(json.dumps(feature_map, indent=1) + "\n", encoding="utf-8")
    write_meta(output, CENSUS_SCHEMA, 1, stats, positives=positives, source="census-income (KDD)",
               tasks=list(TASKS), vocab_size=feature_map["vocab_size"], feature_map=FEATURE_MAP,
               train_files=[args.train_data_path], test_files=[args.test_data_path],
               malformed_skipped=malformed.count, blank_lines=malformed.blank)
    return stats, positives


if __name__ == "__main__":
    sys.exit(main())
