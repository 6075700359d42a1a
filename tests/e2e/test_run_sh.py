"""run.sh (SPEC section 6): launches under horovodrun, and rejects bad input before starting anything.

Three groups (the launcher's checks, called directly in one process, are in ``tests/unit/launch``):
    * the plan's own horovodrun command on 2 processes with a probe for the model script: every
      rank sees Open MPI's rank variables;
    * run.sh on bad input: exits non-zero in well under 10 s, names the problem, and never
      reaches horovodrun (a fake ``HOROVODRUN`` leaves a marker file if it is ever called);
    * real launches of ``MODEL=little_demo`` on 2 processes, from rank tables of versions 1.0
      (both shapes) and 2.0 and from the rank-table-free ``IP`` form.
"""
import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Mapping, Sequence

import pytest

from mx_rec.launch.plan import build_plan
from tests.helpers.launch import CM_ENV, PKG, TABLES, rank_table
from tests.paths import PYTHON, REPO, launch_env

RUN_SH = REPO / "run.sh"
DEMO_RUN_SH = REPO / "models" / "little_demo" / "run.sh"
DEMO_ARGS = "--steps 20 --batch_size 128 --eval_steps 2"
# Variables the launcher reads: cleared so that the caller's environment cannot leak into a test.
LAUNCH_VARS = ("MODEL", "MODEL_ARGS", "USE_DYNAMIC", "CACHE_MODE", "USE_FAAE", "USE_DYNAMIC_EXPANSION",
               "USE_MULTI_LOOKUP", "USE_MODIFY_GRAPH", "TRAIN_RANK_SIZE", "HOROVODRUN", "HOROVODRUN_ARGS",
               "MXREC_DRY_RUN", *CM_ENV)


# ---------------------------------------------------------------- the plan's command on 2 processes


PROBE = """
import json, os, sys
import tensorflow as tf
from rec_sdk_common.communication.hccl.hccl_info import get_local_rank_size, get_rank_id, get_rank_size
from mx_rec.util.initialize import init
before = [get_rank_id(), get_rank_size(), get_local_rank_size()]
init()
import mx_rec.util
after = [mx_rec.util.communication.hccl_ops.get_rank_id(), get_rank_size(), get_local_rank_size()]
size, rank = int(os.environ["OMPI_COMM_WORLD_SIZE"]), int(os.environ["OMPI_COMM_WORLD_RANK"])
shard = [int(x) for x in tf.data.Dataset.range(6).shard(size, rank).as_numpy_iterator()]
ompi = {k[len("OMPI_COMM_WORLD_"):]: int(v) for k, v in os.environ.items() if k.startswith("OMPI_COMM_WORLD_")}
print("PROBE " + json.dumps({"ompi": ompi, "rank_id": os.environ["RANK_ID"], "before": before, "after": after,
                             "shard": shard, "argv": sys.argv[1:]}), flush=True)
"""


def test_every_rank_sees_open_mpi_rank_variables(tmp_path):
    """The plan's own horovodrun command line, with the model script swapped for a probe: each of 2 ranks
    gets OMPI_COMM_WORLD_* equal to what get_rank_id() etc. report, before and after init(), and shards
    a dataset with them (Rec SDK scripts' dataset.shard(OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_RANK))."""
    (tmp_path / "data").mkdir()
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = launch_env({"MODEL": "little_demo", "MODEL_ARGS": "--flag 'two words'"}, LAUNCH_VARS)
    plan = build_plan([str(tmp_path), str(PKG), str(TABLES / "v2_server_list_2p.json"), str(tmp_path / "data")],
                      env, repo=REPO, python=PYTHON)
    command = list(plan.command)
    command[command.index(str(plan.script))] = str(probe)
    proc = subprocess.run(command, cwd=REPO, env=plan.environment(env), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = {}
    for line in proc.stdout.splitlines():
        match = re.match(r"^\[(\d)\]<stdout>:PROBE (.*)$", line)
        if match:
            found[int(match.group(1))] = json.loads(match.group(2))
    assert sorted(found) == [0, 1], proc.stdout
    for rank, seen in found.items():
        assert seen["ompi"] == {"RANK": rank, "SIZE": 2, "LOCAL_RANK": rank, "LOCAL_SIZE": 2}
        assert seen["rank_id"] == str(rank)
        assert seen["before"] == seen["after"] == [rank, 2, 2]
        assert seen["argv"] == ["--flag", "two words"]
    assert found[0]["shard"] == [0, 2, 4] and found[1]["shard"] == [1, 3, 5]


# ---------------------------------------------------------------- run.sh as a user runs it




def run_sh(args: Sequence[str], extra_env: Mapping[str, str], script: Path = RUN_SH,
           timeout: float = 120) -> subprocess.CompletedProcess:
    """``bash script args...`` from the repo root."""
    return subprocess.run(["bash", str(script), *map(str, args)], cwd=REPO, env=launch_env(extra_env, LAUNCH_VARS),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def job_dirs(tmp_path):
    """An empty SO_PATH and DATA_PATH, and a fake HOROVODRUN that leaves a marker if it is ever run."""
    (tmp_path / "so").mkdir()
    (tmp_path / "data").mkdir()
    fake = tmp_path / "fake_horovodrun"
    fake.write_text(f"#!/bin/sh\ntouch '{tmp_path / 'horovodrun_called'}'\n")
    fake.chmod(0o755)
    return tmp_path


def _bad_json(d: Path) -> Path:
    (d / "bad.json").write_text('{"version": "1.0", "server_list": [')
    return d / "bad.json"


def _duplicate_ranks(d: Path) -> Path:
    (d / "dup.json").write_text(json.dumps(rank_table(ranks=[(0, 0)])))
    return d / "dup.json"


V2 = TABLES / "v2_server_list_2p.json"
# id -> (rank table or None for "drop the argument", extra arguments, environment, words the message must hold)
FAILURES = {
    "missing_table": (lambda d: d / "none.json", [], {}, ["HCCL_JSON", "not found", "none.json"]),
    "malformed_json": (_bad_json, [], {}, ["HCCL_JSON", "bad.json", "not valid JSON"]),
    "duplicate_rank_ids": (_duplicate_ranks, [], {}, ["dup.json", "duplicate rank_id 0"]),
    "bad_cache_mode": (lambda d: V2, [], {"CACHE_MODE": "GPU"}, ["CACHE_MODE", "HBM", "DDR", "SSD"]),
    "use_dynamic_2": (lambda d: V2, [], {"USE_DYNAMIC": "2"}, ["USE_DYNAMIC", "'2'", "0, 1"]),
    "missing_data_path": (lambda d: V2, ["DATA"], {}, ["DATA_PATH", "does not exist", "no_data"]),
    "data_without_splits": (lambda d: V2, [], {"MODEL": "dlrm"},
                            ["DATA_PATH", "holds no train/*.tfrecord, no test/*.tfrecord", "model dlrm"]),
    "wrong_arg_count": (lambda d: V2, ["SHORT"], {}, ["expected 4 or 5 arguments, got 3", "usage"]),
    "unknown_model": (lambda d: V2, [], {"MODEL": "nosuch"}, ["MODEL", "nosuch", "little_demo"]),
    "train_rank_size_mismatch": (lambda d: V2, [], {"TRAIN_RANK_SIZE": "4"}, ["TRAIN_RANK_SIZE=4", "2 ranks"]),
    "ip_without_worker_size": (lambda d: d / "ignored.json", ["IP"],
                               {k: v for k, v in CM_ENV.items() if k != "CM_WORKER_SIZE"},
                               ["CM_WORKER_SIZE", "not set"]),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_bad_input_fails_fast_without_starting(case, job_dirs):
    table_of, tweaks, extra_env, needles = FAILURES[case]
    data = job_dirs / ("no_data" if "DATA" in tweaks else "data")
    args: List = [job_dirs / "so", PKG, table_of(job_dirs), data]
    if "SHORT" in tweaks:
        args = args[:3]
    if "IP" in tweaks:
        args.append("127.0.0.1")
    env = {"MODEL": "little_demo", "HOROVODRUN": str(job_dirs / "fake_horovodrun"), **extra_env}
    start = time.monotonic()
    proc = run_sh(args, env, timeout=30)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0, f"expected failure, got exit 0:\n{proc.stdout}\n{proc.stderr}"
    assert elapsed < 10, f"took {elapsed:.1f}s to fail"
    message = proc.stderr.strip()
    assert message.startswith("run.sh: error:") and len(message.splitlines()) == 1, message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    assert "launch plan" not in proc.stdout
    assert not (job_dirs / "horovodrun_called").exists(), "horovodrun was started"


def test_model_run_sh_forces_its_model(job_dirs):
    proc = run_sh([job_dirs / "so", PKG, V2, job_dirs / "data"], {"MODEL": "dlrm", "MXREC_DRY_RUN": "1"},
                  script=DEMO_RUN_SH, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"model\s+little_demo ", proc.stdout), proc.stdout
    assert re.search(r"processes\s+2$", proc.stdout, re.MULTILINE), proc.stdout


# ---------------------------------------------------------------- real launches on 2 processes


@dataclass
class Launch:
    """One finished ``run.sh`` job."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


LAUNCHES = {
    "table_v1_server_list": (RUN_SH, TABLES / "v1_server_list_2p.json", None, {"MODEL": "little_demo"}),
    "table_v1_group_list": (RUN_SH, TABLES / "v1_group_list_2p.json", None, {"MODEL": "little_demo"}),
    "table_v2_model_run_sh": (DEMO_RUN_SH, TABLES / "v2_server_list_2p.json", None, {}),
    "ip_scheme": (RUN_SH, "unused.json", "127.0.0.1", {"MODEL": "little_demo", **CM_ENV}),
}


@pytest.fixture(scope="module", params=list(LAUNCHES))
def launch(request, tmp_path_factory) -> Launch:
    """Run the little demo on 2 processes in one of the ways of ``LAUNCHES`` (once per module)."""
    script, table, ip, extra_env = LAUNCHES[request.param]
    work = tmp_path_factory.mktemp(request.param)
    (work / "so").mkdir()
    (work / "data").mkdir()
    args: List[object] = [work / "so", PKG, table, work / "data"] + ([ip] if ip else [])
    start = time.monotonic()
    proc = run_sh(args, {**extra_env, "MODEL_ARGS": DEMO_ARGS}, script=script, timeout=180)
    return Launch(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


def _lines_of(output: str, rank: int) -> List[str]:
    """Lines horovodrun prefixed with ``[rank]<stdout>:`` or ``[rank]<stderr>:``."""
    return [line for line in output.splitlines() if line.startswith(f"[{rank}]<")]


def test_launch_starts_two_processes(launch: Launch):
    assert launch.returncode == 0, f"exit {launch.returncode}\n{launch.stdout}\n{launch.stderr}"
    assert re.search(r"processes\s+2$", launch.stdout, re.MULTILINE), launch.stdout
    for rank in (0, 1):
        lines = _lines_of(launch.output, rank)
        assert lines, f"no output from process {rank}:\n{launch.output}"
        assert any(re.search(r"<stdout>:final loss [0-9.]+ ", line) for line in lines), \
            f"process {rank} did not finish training:\n{launch.output}"
        assert any("<stdout>:eval auc" in line for line in lines), f"process {rank} did not evaluate"
    assert not _lines_of(launch.output, 2), "more than 2 processes"
    assert launch.seconds < 90, f"launch took {launch.seconds:.0f}s"


def test_launch_initialises_both_ranks_of_two(launch: Launch):
    """Needs the Horovod backend of ``mx_rec.communication`` (each process reports its own rank)."""
    assert launch.returncode == 0, f"exit {launch.returncode}\n{launch.stderr}"
    for rank in (0, 1):
        assert re.search(rf"^\[{rank}\]<stderr>:.*mx_rec initialised: rank {rank} of 2$", launch.stderr,
                         re.MULTILINE), f"rank {rank} of 2 not reported:\n{launch.stderr}"

