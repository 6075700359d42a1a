"""``tools/criteo/convert.py`` on the shared Wide-ResDNN Criteo sample and ``tools/criteo/synthetic.py``:
counts, shapes, the id layout, ``line_per_sample`` packing, malformed lines, the oracle AUC; failed,
killed and damaged-input runs that leave the previous output as it was; 64-bit hashed values."""
import gzip
import json
import math
import signal
import subprocess
import time
import zlib
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


def snapshot(folder: Path) -> Dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> List[str]:
    """Staging or set-aside folders of ``folder`` beside it (``.<name>.partial-*``, ``.<name>.previous-*``)."""
    return sorted(p.name for p in folder.parent.glob(f".{folder.name}.*"))


def truncated_gzip(source: Path, target: Path, keep: float) -> int:
    """``source`` gzipped into ``target`` and cut to ``keep`` of its bytes; returns the number of whole
    lines the cut stream still holds (what any reader can decompress from it)."""
    data = gzip.compress(source.read_bytes())
    cut = data[:int(len(data) * keep)]
    target.write_bytes(cut)
    return zlib.decompressobj(wbits=31).decompress(cut).count(b"\n")


def convert(train: Path, output: Path, *extra: object) -> subprocess.CompletedProcess:
    return run_tool(CONVERT, "--train_data_path", train, "--test_data_path", CRITEO / "test.csv",
                    "--output_path", output, *extra)


def test_failed_conversions_leave_the_previous_output_as_it_was(tmp_path):
    require_shared(CRITEO / "dev.csv", CRITEO / "test.csv")
    out = tmp_path / "out"
    assert convert(CRITEO / "dev.csv", out).returncode == 0
    before = snapshot(out)
    assert {"meta.json", "train/part-00000.tfrecord", "test/part-00000.tfrecord"} <= set(before)

    lines = (CRITEO / "dev.csv").read_text().splitlines()
    fields = lines[300].split("\t")
    fields[14] = "1" + "0" * 16  # 2**64: not an unsigned 64-bit value, even hashed
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(lines[:300] + ["\t".join(fields)]) + "\n")
    proc = convert(bad, out, "--hash_buckets", 1000)
    assert proc.returncode == 2 and f"{bad}:301: C1='{fields[14]}' is not an unsigned 64-bit value" in proc.stderr
    assert f"{out} is unchanged" in proc.stderr
    assert snapshot(out) == before and leftovers(out) == []

    cut = tmp_path / "cut.txt.gz"
    whole = truncated_gzip(CRITEO / "dev.csv", cut, 0.6)
    assert 0 < whole < 409
    proc = convert(cut, out, "--skip_malformed")  # a damaged file is not a malformed line: never skipped
    assert proc.returncode == 2, proc.stderr
    assert (f"{cut}: the gzip stream ends before its end-of-stream marker (truncated?); the last line read whole "
            f"is line {whole}") in proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(out) == before and leftovers(out) == []

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("keep me")
    proc = convert(CRITEO / "dev.csv", notes)
    assert proc.returncode == 2 and f"output path {notes} is not empty and holds no meta.json" in proc.stderr
    (out / "mine.txt").write_text("keep me too")
    proc = convert(CRITEO / "dev.csv", out)
    assert proc.returncode == 2 and "holds entries a converter does not write: mine.txt" in proc.stderr
    assert snapshot(notes) == {"mine.txt": b"keep me"} and snapshot(out) == {**before, "mine.txt": b"keep me too"}


def _kill_once_staging(command: List[str], output: Path) -> int:
    """Start ``command``, SIGKILL it as soon as its staging folder beside ``output`` exists; returns its status."""
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None and not list(output.parent.glob(f".{output.name}.partial-*")):
            time.sleep(0.005)  # polling only; nothing is timed
        proc.send_signal(signal.SIGKILL)
        return proc.wait(timeout=60)
    finally:
        proc.kill()


@pytest.mark.parametrize("tool", ["convert", "synthetic"])
def test_a_killed_run_leaves_the_previous_output_and_the_next_run_cleans_up(tmp_path, tool):
    out = tmp_path / "out"
    if tool == "convert":
        require_shared(CRITEO / "train.csv", CRITEO / "dev.csv", CRITEO / "test.csv")
        first = [CONVERT, "--train_data_path", CRITEO / "dev.csv", "--test_data_path", CRITEO / "test.csv"]
        second = [CONVERT, "--train_data_path", CRITEO / "train.csv", "--test_data_path", CRITEO / "test.csv"]
    else:
        first = [SYNTHETIC, "--rows", 2000, "--max_cardinality", 500]
        second = [SYNTHETIC, "--rows", 20_000, "--max_cardinality", 500]
    done = run_tool(*first, "--output_path", out)
    assert done.returncode == 0, done.stderr
    before = snapshot(out)
    status = _kill_once_staging([PYTHON, *map(str, second), "--output_path", str(out)], out)
    assert status == -signal.SIGKILL
    assert snapshot(out) == before
    assert [name.split("-")[0] for name in leftovers(out)] == [".out.partial"]  # what the kill left beside it
    if tool == "synthetic":
        return  # the clean-up is the shared helper's, run once below
    again = run_tool(*second, "--output_path", out)
    assert again.returncode == 0, again.stderr
    assert leftovers(out) == [] and snapshot(out) != before
    assert json.loads((out / "meta.json").read_text())["splits"]["train"]["samples"] == 7200


def test_hash_buckets_read_values_as_unsigned_64_bit(tmp_path):
    require_shared(CRITEO / "dev.csv", CRITEO / "test.csv")
    fields = (CRITEO / "dev.csv").read_text().split("\n", 1)[0].split("\t")
    values = ["ffffffffffffffff", "8000000000000001", "7fffffffffffffff", "00000000deadbeef"]
    fields[14:18] = values
    big = tmp_path / "big.txt"
    big.write_text("\t".join(fields) + "\n")
    buckets = 1_000_003
    proc = convert(big, tmp_path / "hashed", "--hash_buckets", buckets)
    assert proc.returncode == 0, proc.stderr
    ids = read_samples(tmp_path / "hashed" / "train")["sparse_feature"][0]
    for f, raw in enumerate(values):
        assert ids[f] == f * (buckets + 1) + int(raw, 16) % buckets, raw
