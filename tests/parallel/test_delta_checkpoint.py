"""Delta checkpoints on 2 real ranks: a base + 5 deltas saved by 2 ranks restore on 2 and on 1, and one saved by
1 rank restores on 2, each version exactly as the full checkpoint of that step; IncrementalSaverHook saves
the same kinds on both ranks (one horovodrun launch)."""
import json

from tests.jobs import delta_job as job
from tests.parallel.harness import run_job
from tests.paths import REPO

JOB = REPO / "tests" / "jobs" / "delta_job.py"


def test_chains_move_between_one_and_two_ranks(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    job.train_and_save(str(one))
    run_job(JOB, [two, one], ranks=2)  # trains on 2 ranks into two/; restores two/ (2 -> 2) and one/ (1 -> 2)
    for rank in (0, 1):
        report = json.loads((two / f"ok-{rank}.json").read_text())
        assert report["own"] > 100 and report["other"] > 100, report  # keys compared on this rank
        assert report["hook"] == {"0": "base", "2": "delta", "4": "delta", "5": "base"}, report
    assert job.assert_identical(job.restore_versions(str(two))) > 200  # 2 -> 1
