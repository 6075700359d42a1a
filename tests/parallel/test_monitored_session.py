"""``MonitoredTrainingSession(checkpoint_dir=...)`` with sparse tables, in real processes on 1 and 2 ranks.

Per rank count, three jobs (tests/jobs/monitored_job.py, one after another in one process (or one
process per rank), each in a new graph and configuration, so only the checkpoint folder carries state):
    * uninterrupted: 20 steps, checkpoints by seconds (a clock rank 0 moves forward after steps 6
      and 13; the other rank's clock never fires, so the ranks must agree to save);
    * interrupted: 10 steps, checkpoints every 5 steps;
    * restarted: the same checkpoint folder, to step 20: resumes from the latest checkpoint (step 10).
Asserted: the steps of the checkpoints written (TF's state file and the sparse manifests), that
the restarted job starts at step 10, and that its losses and final tables, slots and dense
weights equal the uninterrupted job's.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from tests.parallel.harness import run_job

JOB = Path(__file__).resolve().parent.parent / "jobs" / "monitored_job.py"


def _load(folder: Path, tag: str, ranks: int):
    out = []
    for rank in range(ranks):
        with np.load(folder / f"{tag}-rank{rank}.npz") as data:
            out.append({k: data[k] for k in data.files})
    return out


def _manifest_step(folder: Path, step: int) -> int:
    with open(folder / f"model.ckpt-{step}-mxrec-sparse" / "manifest.json", encoding="utf-8") as f:
        return json.load(f)["step"]


@pytest.fixture(scope="module", params=[1, 2], ids=["1rank", "2ranks"])
def jobs(request, tmp_path_factory):
    ranks = request.param
    folder = tmp_path_factory.mktemp(f"monitored{ranks}")
    run_job(JOB, [folder, "all"], ranks)
    return ranks, folder / "straight", folder / "resumed"


def test_saves_by_seconds_on_the_same_step_on_every_rank(jobs):
    ranks, straight, _ = jobs
    dumps = _load(straight, "seconds20", ranks)
    # at session creation, at the first step after each clock jump, and at the end
    expected = [0, 7, 14, 20]
    for dump in dumps:
        assert dump["saved"].tolist() == expected
        assert dump["steps"].tolist() == list(range(20))
    for step in expected:
        assert _manifest_step(straight, step) == step
        shards = sorted(p.name for p in (straight / f"model.ckpt-{step}-mxrec-sparse" / "users").iterdir())
        assert shards == [f"shard-{r:05d}-of-{ranks:05d}.npz" for r in range(ranks)]


def test_saves_by_steps_and_resumes_from_the_latest(jobs):
    ranks, straight, resumed = jobs
    first = _load(resumed, "steps10", ranks)
    again = _load(resumed, "steps20", ranks)
    for dump in first:
        assert dump["saved"].tolist() == [0, 5, 10]
    for dump in again:
        assert int(dump["first"]) == 10  # restored from model.ckpt-10
        assert dump["steps"].tolist() == list(range(10, 20))
        assert dump["saved"].tolist() == [0, 5, 10, 15, 20]
    for step in (0, 5, 10, 15, 20):
        assert _manifest_step(resumed, step) == step


def test_restarted_job_gives_the_uninterrupted_numbers(jobs):
    ranks, straight, resumed = jobs
    whole = _load(straight, "seconds20", ranks)
    first = _load(resumed, "steps10", ranks)
    again = _load(resumed, "steps20", ranks)
    for w, f, a in zip(whole, first, again):
        np.testing.assert_array_equal(f["losses"], w["losses"][:10])
        np.testing.assert_array_equal(a["losses"], w["losses"][10:])
        for name in ("keys", "embeddings", "slots", "weights"):
            np.testing.assert_array_equal(a[name], w[name], err_msg=name)
    assert whole[0]["losses"][-5:].mean() < whole[0]["losses"][:5].mean()
