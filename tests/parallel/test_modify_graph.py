"""2 real ranks: modify-graph mode trains exactly like FeatureSpec mode, and multi-lookup merges two
lookups of one table into one exchange with the same numbers."""
from pathlib import Path
from typing import Dict

import numpy as np
import pytest

from tests.parallel.harness import run_job
from tests.paths import REPO

JOB = REPO / "tests" / "jobs" / "feed_mode_job.py"


def _run(out: Path, *args: str) -> Dict[str, np.ndarray]:
    out.mkdir()
    run_job(JOB, [out, *args], ranks=2)
    parts = [np.load(out / f"rank{r}.npz") for r in (0, 1)]
    keys = np.concatenate([p["keys"] for p in parts])
    order = np.argsort(keys)
    result = {"losses": parts[0]["losses"], "keys": keys[order], "ranks": int(parts[0]["ranks"]),
              "alltoall_ops": int(parts[0]["alltoall_ops"]), "built_lookups": int(parts[0]["built_lookups"])}
    for name in ("embeddings", "m", "v"):
        result[name] = np.concatenate([p[name] for p in parts])[order]
    np.testing.assert_array_equal(parts[0]["losses"], parts[1]["losses"])  # global losses: one value per step
    return result


def _assert_same(a, b, atol: float) -> None:
    assert a["ranks"] == b["ranks"] == 2 and len(a["losses"]) == 30
    np.testing.assert_allclose(a["losses"], b["losses"], atol=atol, rtol=0)
    np.testing.assert_array_equal(a["keys"], b["keys"])
    for name in ("embeddings", "m", "v"):
        np.testing.assert_allclose(a[name], b[name], atol=atol, rtol=0, err_msg=name)


@pytest.mark.parametrize("cache", [[], ["--ddr"]], ids=["hbm", "ddr"])
def test_two_ranks_modify_graph_equals_featurespec(tmp_path, cache):
    featurespec = _run(tmp_path / "featurespec", "--feed", "featurespec", *cache)
    modified = _run(tmp_path / "modify", "--feed", "modify", *cache)
    _assert_same(featurespec, modified, atol=1e-6)


def test_two_ranks_multi_lookup_makes_one_exchange_with_the_same_numbers(tmp_path):
    separate = _run(tmp_path / "separate", "--feed", "modify", "--lookups", "2")
    merged = _run(tmp_path / "merged", "--feed", "modify", "--lookups", "2", "--multi_lookup")
    assert (separate["built_lookups"], merged["built_lookups"]) == (2, 1)
    # each lookup's exchange: keys out, rows back, and the gradient's way back; merged: one of each
    assert merged["alltoall_ops"] == 3 and separate["alltoall_ops"] == 6
    # merged lookups sum a key's gradient rows in one segment sum, separate ones in two and then
    # together: float32 rounding differs, and 30 Adam steps carry it (1.3e-6 on one of 3704 values
    # on an AMD EPYC host; below 1e-6 on the Intel host this bound was first set on)
    _assert_same(separate, merged, atol=1e-5)
