"""``tools/criteo/convert.py`` on the shared Wide-ResDNN Criteo sample and ``tools/criteo/synthetic.py``:
counts, shapes, the id layout, ``line_per_sample`` packing, malformed lines, the oracle AUC."""
import json
import math
import subprocess
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import tensorflow as tf

from tests.paths import PYTHON, REPO, SHARED_DATA, require_shared

CONVERT = REPO / "tools" / "criteo" / "convert.py"
SYNTHETIC = REPO / "tools" / "criteo" / "synthetic.py"
CRITEO = SHARED_DATA / "criteo" / "wide_resdnn"
STRIDE = 2**33  # exact ids: field * 2**33 + value; missing: field * 2**33 + 2**32
WIDTHS = {"label": 1, "sparse_feature": 26, "dense_feature": 13}


def run_tool(script: Path, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, str(script), *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=180)


def read_samples(folder: Path) -> Dict[str, np.ndarray]:
    """Every sample of ``folder/*.tfrecord`` (records unpacked): label [n], sparse [n, 26], dense [n, 13];
    ``records`` [r] holds the samples of each record."""
    fields: Dict[str, List] = {name: [] for name in WIDTHS}
    per_record = []
    for path in sorted(folder.glob("*.tfrecord")):
        for raw in tf.compat.v1.io.tf_record_iterator(str(path)):
            feature = tf.train.Example.FromString(raw).features.feature
            label = list(feature["label"].int64_list.value)
            per_record.append(len(label))
            fields["label"].extend(label)
            fields["sparse_feature"].extend(feature["sparse_feature"].int64_list.value)
            fields["dense_feature"].extend(feature["dense_feature"].float_list.value)
    out = {name: np.asarray(values).reshape(-1, WIDTHS[name]) for name, values in fields.items()}
    out["label"] = out["label"][:, 0]
    out["records"] = np.asarray(per_record)
    return out


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """train.csv -> train, dev.csv -> test, one sample per record and packed 4 per record."""
    require_shared(CRITEO / "train.csv", CRITEO / "dev.csv")
    work = tmp_path_factory.mktemp("criteo")
    runs = {}
    for name, extra in (("plain", []), ("packed", ["--line_per_sample", 4])):
        proc = run_tool(CONVERT, "--train_data_path", CRITEO / "train.csv", "--test_data_path", CRITEO / "dev.csv",
                        "--output_path", work / name, *extra)
        assert proc.returncode == 0, proc.stderr
        runs[name] = (work / name, proc)
    return runs


def test_counts_and_summary(converted):
    out, proc = converted["plain"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["splits"]["train"]["samples"] == 7200 and meta["splits"]["train"]["positives"] == [1549]
    assert meta["splits"]["test"]["samples"] == 409 and meta["splits"]["test"]["positives"] == [93]
    assert "train: 7200 rows (label 1: 1549)" in proc.stdout and "test: 409 rows (label 1: 93)" in proc.stdout
    assert "malformed lines skipped: 0" in proc.stdout
    train = read_samples(out / "train")
    assert train["sparse_feature"].shape == (7200, 26) and train["dense_feature"].shape == (7200, 13)
    assert int(train["label"].sum()) == 1549 and set(np.unique(train["label"])) == {0, 1}
    assert meta["train_distinct_keys"] == np.unique(train["sparse_feature"]).size


def test_ids_and_dense_values_follow_the_layout(converted):
    out, _ = converted["plain"]
    train = read_samples(out / "train")
    ids = train["sparse_feature"]
    np.testing.assert_array_equal(ids // STRIDE, np.broadcast_to(np.arange(26), ids.shape))
    assert (ids % STRIDE <= 2**32).all()
    first = (CRITEO / "train.csv").read_text().split("\n", 1)[0].split("\t")
    for f, raw in enumerate(first[14:]):
        assert ids[0, f] == f * STRIDE + (int(raw, 16) if raw else 2**32), f"C{f + 1}={raw!r}"
    for j, raw in enumerate(first[1:14]):
        want = math.log1p(max(float(raw), 0.0)) if raw else 0.0
        assert train["dense_feature"][0, j] == pytest.approx(want, rel=1e-6), f"I{j + 1}={raw!r}"
    assert (train["dense_feature"] >= 0).all()


def test_line_per_sample_packs_the_same_samples(converted):
    plain = read_samples(converted["plain"][0] / "test")
    packed = read_samples(converted["packed"][0] / "test")
    assert packed["records"].tolist() == [4] * 102 + [1]  # 409 samples
    for name in WIDTHS:
        np.testing.assert_array_equal(packed[name], plain[name], err_msg=name)
    meta = json.loads((converted["packed"][0] / "meta.json").read_text())
    assert meta["line_per_sample"] == 4 and meta["splits"]["train"]["records"] == 1800


def test_hash_buckets_and_malformed_lines(tmp_path):
    require_shared(CRITEO / "dev.csv")
    lines = (CRITEO / "dev.csv").read_text().splitlines()
    fields = lines[3].split("\t")
    fields[20] = "zz12"
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(lines[:3] + ["\t".join(fields), "1\t2\t3"] + lines[4:20]) + "\n")
    proc = run_tool(CONVERT, "--train_data_path", bad, "--test_data_path", CRITEO / "test.csv",
                    "--output_path", tmp_path / "out")
    assert proc.returncode == 2 and f"{bad}:4: C7 is not a hex string: 'zz12'" in proc.stderr
    proc = run_tool(CONVERT, "--train_data_path", bad, "--test_data_path", CRITEO / "test.csv",
                    "--output_path", tmp_path / "out", "--skip_malformed", "--hash_buckets", 1000)
    assert proc.returncode == 0, proc.stderr
    assert f"malformed lines skipped: 2 (first: {bad}:4: C7 is not a hex string" in proc.stdout
    assert f"{bad}:5: expected 40 fields" in proc.stdout
    train = read_samples(tmp_path / "out" / "train")
    assert train["sparse_feature"].shape == (19, 26)
    ids = train["sparse_feature"]
    np.testing.assert_array_equal(ids // 1001, np.broadcast_to(np.arange(26), ids.shape))


def test_synthetic_is_seeded_and_reports_its_oracle_auc(tmp_path):
    args = ["--rows", 20000, "--seed", 7, "--line_per_sample", 8, "--max_cardinality", 2000]
    first = run_tool(SYNTHETIC, "--output_path", tmp_path / "a", *args)
    assert first.returncode == 0, first.stderr
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["splits"]["train"]["samples"] == 18000 and meta["splits"]["test"]["samples"] == 2000
    assert 0.6 < meta["oracle_auc"]["test"] < 1.0
    assert f"test {meta['oracle_auc']['test']:.4f}" in first.stdout
    test = read_samples(tmp_path / "a" / "test")
    assert test["sparse_feature"].shape == (2000, 26) and test["records"].max() == 8
    assert int(test["label"].sum()) == meta["splits"]["test"]["positives"][0]
    np.testing.assert_array_equal(test["sparse_feature"] // STRIDE, np.broadcast_to(np.arange(26), (2000, 26)))
    again = run_tool(SYNTHETIC, "--output_path", tmp_path / "b", *args)
    assert again.returncode == 0, again.stderr
    for part in ("train/part-00000.tfrecord", "test/part-00000.tfrecord"):
        assert (tmp_path / "a" / part).read_bytes() == (tmp_path / "b" / part).read_bytes(), part
