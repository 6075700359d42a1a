"""2 real ranks under horovodrun: sharded tables train exactly like one rank, checkpoints move between
rank counts, and failures end the whole job with a clear message."""
import re

import numpy as np
import pytest

from tests.parallel.harness import assert_same_tables, merged_state, run_job
from tests.paths import REPO

JOB = REPO / "tests" / "jobs" / "distributed_job.py"


@pytest.mark.parametrize("mode", [[], ["--static"]], ids=["dynamic_shape", "send_count"])
def test_two_ranks_train_like_one(tmp_path, mode):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    run_job(JOB, [one, *mode], ranks=1)
    run_job(JOB, [two, *mode], ranks=2)
    a, b = merged_state(one), merged_state(two)
    assert b["ranks"] == 2 and len(b["parts"]) == 2
    # an unseeded dense variable: the initializer broadcast rank 0's draw
    np.testing.assert_array_equal(np.load(two / "probe_rank0.npy"), np.load(two / "probe_rank1.npy"))
    for rank, part in enumerate(b["parts"]):
        assert part["keys"].size and np.all(part["keys"] % 2 == rank), "each rank holds the keys it owns"
    assert len(a["losses"]) == 30
    np.testing.assert_allclose(b["losses"], a["losses"], atol=1e-5, rtol=0)
    assert_same_tables(a, b, atol=1e-5)


@pytest.mark.parametrize("saved_on,restored_on", [(2, 1), (1, 2)], ids=["2_to_1", "1_to_2"])
def test_checkpoint_moves_between_rank_counts(tmp_path, saved_on, restored_on):
    straight, resumed, ckpt = tmp_path / "straight", tmp_path / "resumed", tmp_path / "ckpt"
    for d in (straight, resumed, ckpt):
        d.mkdir()
    run_job(JOB, [straight, "--save", ckpt], ranks=saved_on)
    run_job(JOB, [resumed, "--restore", ckpt, "--first_step", 15, "--steps", 15], ranks=restored_on)
    assert_same_tables(merged_state(straight, "saved_rank"), merged_state(resumed, "restored_rank"), atol=0)
    uninterrupted, continued = merged_state(straight), merged_state(resumed)
    np.testing.assert_allclose(continued["losses"], uninterrupted["losses"][15:], atol=1e-5, rtol=0)
    assert_same_tables(uninterrupted, continued, atol=1e-5)


def test_send_count_overflow_stops_both_ranks_with_the_message(tmp_path):
    proc = run_job(JOB, [tmp_path, "--static", "--send_count", 100, "--overflow"], ranks=2, expect_ok=False)
    assert proc.returncode != 0
    message = "128 distinct keys bound for one rank exceed send_count=100; set send_count >= 128"
    for rank in (0, 1):
        assert any(line.startswith(f"[{rank}]") and message in line for line in proc.stderr.splitlines()), \
            f"rank {rank} did not report the overflow:\n{proc.stderr[-4000:]}"


def test_a_killed_rank_ends_the_job_within_60s_naming_it(tmp_path):
    proc = run_job(JOB, [tmp_path, "--die_rank", 1, "--die_at", 5], ranks=2, timeout=60, expect_ok=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "Process name: 1" in output and "Exit code: 137" in output, output[-3000:]


def test_replicated_table_trains_like_one_rank_with_identical_replicas(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    run_job(JOB, [one], ranks=1)
    run_job(JOB, [two, "--dp"], ranks=2)
    single = merged_state(one)
    replicas = [merged_state(two, f"rank{r}") for r in range(2)]
    np.testing.assert_allclose(replicas[0]["losses"], single["losses"], atol=1e-5, rtol=0)
    for replica in replicas:
        assert_same_tables(single, replica, atol=1e-5)
    for name in ("keys", "embeddings", "m", "v", "counts"):
        np.testing.assert_array_equal(replicas[0][name], replicas[1][name])


@pytest.mark.parametrize("tier", ["ddr", "ssd"])
def test_lower_tiers_on_two_ranks_train_like_hbm_on_one(tmp_path, tier):
    one, two, ssd = tmp_path / "one", tmp_path / "two", tmp_path / "ssd"
    for d in (one, two, ssd):
        d.mkdir()
    run_job(JOB, [one], ranks=1)
    proc = run_job(JOB, [two, "--ddr"] if tier == "ddr" else [two, "--ssd", ssd], ranks=2)
    swapped = [int(n) for n in re.findall(r"'swapped_out': (\d+)", proc.stdout)]
    assert len(swapped) == 2 and min(swapped) > 0, f"the device caches never overflowed: {proc.stdout}"
    if tier == "ssd":
        on_ssd = [int(n) for n in re.findall(r"'keys_ssd': (\d+)", proc.stdout)]
        assert len(on_ssd) == 2 and min(on_ssd) > 0, proc.stdout
        assert list(ssd.iterdir()) == []  # each rank removed its RocksDB folder when it ended
    a, b = merged_state(one), merged_state(two)
    np.testing.assert_allclose(b["losses"], a["losses"], atol=1e-5, rtol=0)
    assert_same_tables(a, b, atol=1e-5)
