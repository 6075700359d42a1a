"""Checkpoints across processes: resume in a fresh process; a save killed by SIGKILL loses nothing."""
import os
import subprocess

import numpy as np

from tests.paths import PYTHON, REPO

JOB = REPO / "tests" / "jobs" / "checkpoint_job.py"


def _run(directory, mode, expect_rc=0):
    proc = subprocess.run([PYTHON, str(JOB), str(directory), mode], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == expect_rc, f"{mode}: exit {proc.returncode}\n{proc.stderr[-4000:]}"
    return proc


def _assert_same(a_path, b_path):
    a, b = np.load(a_path), np.load(b_path)
    assert sorted(a.files) == sorted(b.files)
    assert "users/slot/LazyAdam/m" in a.files and "users/counts" in a.files and a["users/counts"].size
    for name in a.files:
        assert a[name].shape == b[name].shape, name
        np.testing.assert_allclose(a[name], b[name], atol=1e-6, rtol=0, err_msg=name)


def test_resume_in_a_fresh_process_continues_identically(tmp_path):
    _run(tmp_path, "straight")
    _run(tmp_path, "resume")
    _assert_same(tmp_path / "straight.npz", tmp_path / "resume.npz")


def test_a_save_killed_midway_leaves_the_previous_checkpoint_restorable(tmp_path):
    reference = tmp_path / "ref"
    killed = tmp_path / "killed"
    reference.mkdir()
    killed.mkdir()
    _run(reference, "straight")
    _run(killed, "kill", expect_rc=-9)
    leftovers = [p.name for p in killed.iterdir() if ".tmp-" in p.name]
    assert leftovers, "the kill should have hit the save while its temporary directory existed"
    assert not (killed / "model-35-mxrec-sparse").exists()
    assert 'model_checkpoint_path: "' in (killed / "checkpoint").read_text()
    assert (killed / "checkpoint").read_text().splitlines()[0].endswith('model-30"')
    _run(killed, "resume")
    _assert_same(reference / "straight.npz", killed / "resume.npz")
