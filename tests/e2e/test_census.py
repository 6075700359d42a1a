"""``models/mmoe/census.py`` on the shared census samples: shapes, label counts, the feature map,
both input layouts (DeepCTR's sample with a row index; UCI's 42 columns, gzip), malformed lines, and
failed runs (a bad line, a truncated gzip) that leave the previous output as it was."""
import gzip
import json
import subprocess
import zlib
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import tensorflow as tf

from tests.paths import PYTHON, REPO, SHARED_DATA, require_shared

SCRIPT = REPO / "models" / "mmoe" / "census.py"
SAMPLE = SHARED_DATA / "census" / "census-income.sample"


@pytest.fixture(autouse=True)
def _sample_present():
    require_shared(SAMPLE)


def run_census(train: Path, test: Path, output: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, str(SCRIPT), "--train_data_path", str(train), "--test_data_path", str(test),
                           "--output_path", str(output), *extra], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def read_examples(folder: Path) -> Dict[str, np.ndarray]:
    """Every record of ``folder/*.tfrecord`` stacked per field: label [n, 2], sparse [n, 29], dense [n, 11]."""
    fields: Dict[str, List] = {"label": [], "sparse_feature": [], "dense_feature": []}
    for path in sorted(folder.glob("*.tfrecord")):
        for raw in tf.compat.v1.io.tf_record_iterator(str(path)):
            feature = tf.train.Example.FromString(raw).features.feature
            fields["label"].append(list(feature["label"].int64_list.value))
            fields["sparse_feature"].append(list(feature["sparse_feature"].int64_list.value))
            fields["dense_feature"].append(list(feature["dense_feature"].float_list.value))
    return {name: np.asarray(rows) for name, rows in fields.items()}


def sample_lines() -> List[str]:
    return SAMPLE.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The sample as train; its first 60 rows in UCI layout (42 columns, ", ", gzip) as test."""
    work = tmp_path_factory.mktemp("census")
    uci_rows = [", ".join(part.strip() for part in line.split(",")[1:]) for line in sample_lines()[:60]]
    test_gz = work / "test.gz"
    with gzip.open(test_gz, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(uci_rows) + "\n")
    proc = run_census(SAMPLE, test_gz, work / "out")
    assert proc.returncode == 0, proc.stderr
    return work / "out", proc


def test_rows_and_label_counts(converted):
    out, proc = converted
    meta = json.loads((out / "meta.json").read_text())
    lines = sample_lines()
    income = sum(line.split(",")[-1].strip() == "50000+." for line in lines)
    never = sum(line.split(",")[8].strip() == "Never married" for line in lines)
    assert (income, never) == (12, 84)
    assert meta["splits"]["train"]["samples"] == 200 and meta["splits"]["train"]["positives"] == [12, 84]
    head = lines[:60]
    assert meta["splits"]["test"]["samples"] == 60
    assert meta["splits"]["test"]["positives"] == [sum(x.split(",")[-1].strip() == "50000+." for x in head),
                                                   sum(x.split(",")[8].strip() == "Never married" for x in head)]
    assert "train: 200 rows; income 50000+: 12, never married: 84" in proc.stdout
    assert "malformed lines skipped: 0" in proc.stdout and "vocabulary:" in proc.stdout


def test_shapes_ranges_and_identical_rows_across_layouts(converted):
    out, _ = converted
    train, test = read_examples(out / "train"), read_examples(out / "test")
    vocab = json.loads((out / "feature_map.json").read_text())["vocab_size"]
    assert train["label"].shape == (200, 2) and train["sparse_feature"].shape == (200, 29)
    assert train["dense_feature"].shape == (200, 11)
    assert train["sparse_feature"].min() >= 0 and train["sparse_feature"].max() < vocab
    assert 0.0 <= train["dense_feature"].min() and train["dense_feature"].max() <= 1.0
    # the test split holds the same rows in the UCI layout: same ids, values and labels
    for name in train:
        np.testing.assert_array_equal(test[name], train[name][:60], err_msg=name)


def test_feature_map_decodes_the_first_row(converted):
    out, _ = converted
    fmap = json.loads((out / "feature_map.json").read_text())
    assert len(fmap["sparse_columns"]) == 29 and len(fmap["dense_columns"]) == 11
    assert "instance_weight" in fmap["dense_columns"] and "marital_stat" not in fmap["sparse_columns"]
    sizes = [len(fmap["columns"][c]["values"]) for c in fmap["sparse_columns"]]
    assert fmap["vocab_size"] == sum(sizes)
    offsets = [fmap["columns"][c]["offset"] for c in fmap["sparse_columns"]]
    assert offsets == list(np.cumsum([0] + sizes[:-1]))
    first = read_examples(out / "train")["sparse_feature"][0]
    decoded = {column: value for column, row_id in zip(fmap["sparse_columns"], first)
               for value, vid in fmap["columns"][column]["values"].items() if vid == row_id}
    assert decoded["class_worker"] == "Private" and decoded["education"] == "High school graduate"
    assert decoded["sex"] == "Female" and decoded["country_self"] == "United-States"


def test_malformed_line_is_named_or_counted(tmp_path):
    lines = sample_lines()
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(lines[:5] + [lines[5].replace(", 50000+.", ", maybe.").replace(", - 50000.", ", maybe."),
                                          ",".join(lines[6].split(",")[:30])] + lines[7:10]) + "\n\n")
    proc = run_census(bad, SAMPLE, tmp_path / "out")
    assert proc.returncode == 2
    assert f"{bad}:6: column income_50k must be '- 50000.' or '50000+.', got 'maybe.'" in proc.stderr
    assert "--skip_malformed" in proc.stderr and not (tmp_path / "out" / "meta.json").exists()
    proc = run_census(bad, SAMPLE, tmp_path / "out", "--skip_malformed")
    assert proc.returncode == 0, proc.stderr
    assert f"malformed lines skipped: 2 (first: {bad}:6:" in proc.stdout
    assert f"{bad}:7: expected 43 comma-separated columns, got 30" in proc.stdout
    assert "blank lines: 1" in proc.stdout
    assert json.loads((tmp_path / "out" / "meta.json").read_text())["splits"]["train"]["samples"] == 8


def test_unknown_category_under_a_given_feature_map_is_named(converted, tmp_path):
    out, _ = converted
    lines = sample_lines()
    novel = tmp_path / "novel.txt"
    novel.write_text("\n".join(lines[:3] + [lines[3].replace(" United-States,", " Atlantis,", 1)]) + "\n")
    proc = run_census(novel, SAMPLE, tmp_path / "out", "--feature_map", str(out / "feature_map.json"))
    assert proc.returncode == 2
    assert f"{novel}:4: column country_mother: value 'Atlantis' is not in the feature map" in proc.stderr


def _snapshot(folder: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_failed_runs_leave_the_previous_output_as_it_was(tmp_path):
    out = tmp_path / "out"
    first = run_census(SAMPLE, SAMPLE, out)
    assert first.returncode == 0, first.stderr
    before = _snapshot(out)
    assert {"meta.json", "feature_map.json", "train/part-00000.tfrecord"} <= set(before)
    lines = sample_lines()
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(lines[:150] + [lines[150].replace(", 50000+.", ", maybe.").replace(", - 50000.",
                                                                                               ", maybe.")]) + "\n")
    proc = run_census(bad, SAMPLE, out)
    assert proc.returncode == 2 and f"{bad}:151: column income_50k" in proc.stderr
    assert f"{out} is unchanged" in proc.stderr
    cut = tmp_path / "cut.gz"
    data = gzip.compress(SAMPLE.read_bytes())
    cut.write_bytes(data[:len(data) // 2])
    whole = zlib.decompressobj(wbits=31).decompress(data[:len(data) // 2]).count(b"\n")
    proc = run_census(SAMPLE, cut, out, "--skip_malformed")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{cut}: the gzip stream ends before its end-of-stream marker (truncated?); the last line read whole " \
           f"is line {whole}" in proc.stderr
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "cut.gz", "out"]  # no staging folder left
