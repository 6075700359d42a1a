"""run.sh (SPEC section 6): launches under horovodrun, and rejects bad input before starting anything.

Three groups:
    * the launcher's checks called directly (``mx_rec.launch``; fast, one process);
    * run.sh on bad input: exits non-zero in well under 10 s, names the problem, and never
      reaches horovodrun (a fake ``HOROVODRUN`` leaves a marker file if it is ever called);
    * real launches of ``MODEL=little_demo`` on 2 processes, from rank tables of versions 1.0
      (both shapes) and 2.0 and from the rank-table-free ``IP`` form.
"""
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Sequence

import pytest

from mx_rec.launch import LaunchError
from mx_rec.launch.cluster import parse_cluster_env
from mx_rec.launch.plan import build_plan, check_data, data_layout, find_model, list_models, parse_args
from mx_rec.launch.rank_env import rank_environment
from mx_rec.launch.rank_table import load_rank_table, parse_rank_table
from mx_rec.launch.switches import parse_switches, read_switch
from tests.paths import PYTHON, REPO, launch_env

RUN_SH = REPO / "run.sh"
DEMO_RUN_SH = REPO / "models" / "little_demo" / "run.sh"
PKG = REPO / "mx_rec_py" / "mx_rec"
TABLES = Path(__file__).resolve().parent / "rank_tables"
DEMO_ARGS = "--steps 20 --batch_size 128 --eval_steps 2"
CM_ENV = {"CM_CHIEF_IP": "127.0.0.1", "CM_CHIEF_PORT": "60001", "CM_WORKER_IP": "127.0.0.1", "CM_WORKER_SIZE": "2"}
# Variables the launcher reads: cleared so that the caller's environment cannot leak into a test.
LAUNCH_VARS = ("MODEL", "MODEL_ARGS", "USE_DYNAMIC", "CACHE_MODE", "USE_FAAE", "USE_DYNAMIC_EXPANSION",
               "USE_MULTI_LOOKUP", "USE_MODIFY_GRAPH", "TRAIN_RANK_SIZE", "HOROVODRUN", "HOROVODRUN_ARGS",
               "MXREC_DRY_RUN", *CM_ENV)


def _table(version: str = "2.0", ranks: Sequence[Sequence[int]] = ((0, 1),),
           hosts: Sequence[str] = ("127.0.0.1",)) -> Dict:
    """A server-list rank table: ``ranks[i]`` are the rank ids of ``hosts[i]``."""
    return {"version": version, "server_count": str(len(hosts)), "status": "completed",
            "server_list": [{"server_id": host,
                             "device": [{"device_id": str(d), "device_ip": f"192.168.{d}.1", "rank_id": str(r)}
                                        for d, r in enumerate(rank_ids)]}
                            for host, rank_ids in zip(hosts, ranks)]}


# ---------------------------------------------------------------- the checks, called directly


@pytest.mark.parametrize("name,version", [("v1_server_list_2p.json", "1.0"), ("v1_group_list_2p.json", "1.0"),
                                          ("v2_server_list_2p.json", "2.0")])
def test_fixture_tables_have_two_local_ranks(name, version):
    table = load_rank_table(TABLES / name)
    assert (table.version, table.rank_size) == (version, 2)
    assert [d.rank_id for d in table.devices] == [0, 1]
    assert [d.device_id for d in table.devices] == [0, 1]
    assert len(table.hosts()) == 1 and table.hosts()[0][1] == 2


def test_two_servers_give_hosts_in_rank_order():
    table = parse_rank_table(_table(ranks=[(2, 3), (0, 1)], hosts=["10.0.0.2", "10.0.0.1"]))
    assert table.hosts() == [("10.0.0.1", 2), ("10.0.0.2", 2)]
    assert [d.server_id for d in table.devices] == ["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2"]


def test_integer_fields_are_accepted():
    data = {"version": "1.0", "server_list": [{"server_id": "localhost", "device": [
        {"device_id": 0, "rank_id": 0}, {"device_id": 1, "rank_id": 1}]}]}
    assert parse_rank_table(data).rank_size == 2


@pytest.mark.parametrize("data,needle", [
    (_table(ranks=[(0, 0)]), "duplicate rank_id 0"),
    (_table(ranks=[(0, 2)]), "rank ids must be 0..1"),
    (_table(ranks=[(1, 2)]), "missing [0]"),
    ({**_table(), "version": "3.0"}, "unknown rank table version '3.0'"),
    ({k: v for k, v in _table().items() if k != "version"}, "version missing"),
    ({**_table(), "status": "initializing"}, "status is 'initializing'"),
    ({**_table(), "server_count": "2"}, "server_count is 2"),
    ({**_table(), "server_count": "0", "server_list": []}, "no devices"),
    ({**_table(), "server_list": [{"server_id": "h", "device": []}]}, "no 'device' list"),
    ({**_table(), "server_list": [{"device": [{"device_id": "0", "rank_id": "0"}]}]}, "no 'server_id'"),
    (_table(ranks=[(0, 2), (1, 3)], hosts=["a", "b"]), "not contiguous"),
    ({"version": "2.0", "group_list": []}, "no 'server_list'"),
    ({"version": "1.0"}, "'server_list' or 'group_list'"),
    ([1, 2], "JSON object"),
])
def test_bad_tables_are_rejected(data, needle):
    with pytest.raises(LaunchError) as err:
        parse_rank_table(data, source="t.json")
    assert needle in str(err.value) and "t.json" in str(err.value)


def test_bad_rank_id_and_duplicate_device_are_named():
    data = _table()
    data["server_list"][0]["device"][1]["rank_id"] = "one"
    with pytest.raises(LaunchError, match=r"rank_id must be a non-negative integer, got 'one'"):
        parse_rank_table(data)
    data = _table()
    data["server_list"][0]["device"][1]["device_id"] = "0"
    with pytest.raises(LaunchError, match="device_id 0 appears twice on server 127.0.0.1"):
        parse_rank_table(data)


def test_group_list_instance_needs_one_device():
    data = json.loads((TABLES / "v1_group_list_2p.json").read_text())
    data["group_list"][0]["instance_list"][1]["devices"] = []
    with pytest.raises(LaunchError, match=r"instance_list\[1\] must hold exactly one device"):
        parse_rank_table(data)


def test_load_rank_table_names_missing_and_malformed_files(tmp_path):
    with pytest.raises(LaunchError, match="rank table file not found: .*none.json"):
        load_rank_table(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "1.0",\n  "server_list": [}')
    with pytest.raises(LaunchError, match=r"bad.json is not valid JSON \(line 2"):
        load_rank_table(bad)
    with pytest.raises(LaunchError, match="is not a file"):
        load_rank_table(tmp_path)


def test_switch_defaults_and_values():
    switches = parse_switches({}, rank_size=2)
    assert switches.as_env() == {"USE_DYNAMIC": "0", "CACHE_MODE": "HBM", "USE_FAAE": "0",
                                 "USE_DYNAMIC_EXPANSION": "0", "USE_MULTI_LOOKUP": "0", "USE_MODIFY_GRAPH": "0",
                                 "TRAIN_RANK_SIZE": "2"}
    env = {"USE_DYNAMIC": "0", "CACHE_MODE": "SSD", "USE_FAAE": "1", "USE_DYNAMIC_EXPANSION": "1",
           "USE_MULTI_LOOKUP": "1", "USE_MODIFY_GRAPH": "1", "TRAIN_RANK_SIZE": "2"}
    switches = parse_switches(env, rank_size=2)
    assert not switches.use_dynamic and switches.cache_mode == "SSD" and switches.use_modify_graph
    assert switches.as_env() == env
    assert read_switch({"CACHE_MODE": ""}, "CACHE_MODE") == "HBM"


@pytest.mark.parametrize("env,needle", [
    ({"CACHE_MODE": "hbm"}, "invalid CACHE_MODE='hbm'; valid values: HBM, DDR, SSD"),
    ({"USE_DYNAMIC": "2"}, "invalid USE_DYNAMIC='2'; valid values: 0, 1"),
    ({"USE_FAAE": "yes"}, "invalid USE_FAAE='yes'; valid values: 0, 1"),
    ({"USE_MODIFY_GRAPH": "true"}, "invalid USE_MODIFY_GRAPH='true'"),
    ({"TRAIN_RANK_SIZE": "0"}, "invalid TRAIN_RANK_SIZE='0'; valid values: a positive integer"),
    ({"TRAIN_RANK_SIZE": "x"}, "invalid TRAIN_RANK_SIZE='x'"),
    ({"TRAIN_RANK_SIZE": "8"}, "TRAIN_RANK_SIZE=8 does not match the 2 ranks"),
])
def test_bad_switches_list_valid_values(env, needle):
    with pytest.raises(LaunchError) as err:
        parse_switches(env, rank_size=2)
    assert needle in str(err.value)


def test_cluster_env_checks():
    cluster = parse_cluster_env(CM_ENV, "127.0.0.1")
    assert (cluster.worker_ip, cluster.worker_size, cluster.chief_port) == ("127.0.0.1", 2, 60001)
    with pytest.raises(LaunchError, match="CM_CHIEF_PORT, CM_WORKER_SIZE are not set"):
        parse_cluster_env({"CM_CHIEF_IP": "127.0.0.1", "CM_WORKER_IP": "127.0.0.1"}, "127.0.0.1")
    with pytest.raises(LaunchError, match="invalid CM_WORKER_IP='host-a'; valid values: an IPv4 or IPv6"):
        parse_cluster_env({**CM_ENV, "CM_WORKER_IP": "host-a"}, "127.0.0.1")
    with pytest.raises(LaunchError, match=r"invalid CM_CHIEF_PORT='70000'; valid values: an integer 1..65535"):
        parse_cluster_env({**CM_ENV, "CM_CHIEF_PORT": "70000"}, "127.0.0.1")
    with pytest.raises(LaunchError, match="invalid CM_WORKER_SIZE='0'"):
        parse_cluster_env({**CM_ENV, "CM_WORKER_SIZE": "0"}, "127.0.0.1")
    with pytest.raises(LaunchError, match=r"invalid IP \(5th argument\)='1.2.3'"):
        parse_cluster_env(CM_ENV, "1.2.3")


def test_parse_args_checks_paths(tmp_path):
    with pytest.raises(LaunchError, match="expected 4 or 5 arguments, got 3; usage: bash run.sh"):
        parse_args(["a", "b", "c"])
    with pytest.raises(LaunchError, match="SO_PATH does not exist"):
        parse_args([str(tmp_path / "no_so"), str(PKG), "t.json", str(tmp_path)])
    with pytest.raises(LaunchError, match="did you mean .*mx_rec_py/mx_rec"):
        parse_args([str(tmp_path), str(PKG.parent), "t.json", str(tmp_path)])
    (tmp_path / "file").write_text("")
    with pytest.raises(LaunchError, match="DATA_PATH is not a folder"):
        parse_args([str(tmp_path), str(PKG), "t.json", str(tmp_path / "file")])
    args = parse_args([str(tmp_path), str(PKG), "t.json", str(tmp_path), "127.0.0.1"])
    assert args.ip == "127.0.0.1" and args.pkg_path == PKG


def test_models_are_listed_in_the_error():
    assert "little_demo" in list_models(REPO)
    assert find_model(REPO, "little_demo") == REPO / "models" / "little_demo" / "main_mxrec.py"
    for name in ("no_such_model", "../models", ""):
        with pytest.raises(LaunchError, match="existing models: .*little_demo"):
            find_model(REPO, name)


def test_build_plan_command_and_environment(tmp_path):
    env = {"MODEL": "little_demo", "MODEL_ARGS": "--steps 20 --seed '7'", "CACHE_MODE": "DDR",
           "PYTHONPATH": "/x", "LD_LIBRARY_PATH": "/lib1", "PATH": os.environ["PATH"],
           "HOROVODRUN_ARGS": "--start-timeout 60"}
    argv = [str(tmp_path), str(PKG), str(TABLES / "v1_server_list_2p.json"), str(tmp_path)]
    plan = build_plan(argv, env, repo=REPO, python=PYTHON)
    assert plan.command[1:] == ("--gloo", "--start-timeout", "60", "-np", "2", "-H", "127.0.0.1:2", PYTHON,
                                "-m", "mx_rec.launch.rank_env",
                                str(REPO / "models" / "little_demo" / "main_mxrec.py"), "--steps", "20", "--seed", "7")
    assert Path(plan.command[0]).name == "horovodrun"
    full = plan.environment(env)
    assert full["PYTHONPATH"] == f"{PKG.parent}:/x"
    assert full["LD_LIBRARY_PATH"] == f"{tmp_path}:/lib1"
    assert full["DATA_PATH"] == str(tmp_path) == full["DLRM_CRITEO_DATA_PATH"]
    assert full["CACHE_MODE"] == "DDR" and full["USE_DYNAMIC"] == "0" and full["TRAIN_RANK_SIZE"] == "2"
    assert full["RANK_TABLE_FILE"] == str(TABLES / "v1_server_list_2p.json")
    text = plan.describe()
    assert "processes" in text and "127.0.0.1:2" in text and "CACHE_MODE=DDR" in text


def test_build_plan_ip_scheme_ignores_the_table(tmp_path):
    env = {"MODEL": "little_demo", "PATH": os.environ["PATH"], **CM_ENV, "CM_WORKER_SIZE": "3"}
    argv = [str(tmp_path), str(PKG), "no_such_table.json", str(tmp_path), "127.0.0.1"]
    plan = build_plan(argv, env, repo=REPO, python=PYTHON, caller_pythonpath="")
    assert plan.rank_size == 3 and plan.hosts == (("127.0.0.1", 3),)
    assert plan.command[plan.command.index("-np") + 1] == "3"
    assert plan.env_updates["CM_CHIEF_PORT"] == "60001" and plan.env_updates["PYTHONPATH"] == str(PKG.parent)


def test_data_layout_is_checked_before_starting(tmp_path):
    """DATA_PATH must match every pattern of the model's data_layout.txt; the error names what is missing."""
    data, model_dir = tmp_path / "data", tmp_path / "model"
    (data / "train").mkdir(parents=True)
    model_dir.mkdir()
    (data / "train" / "part-00000.tfrecord").write_bytes(b"")
    assert data_layout(model_dir) == ("train/*.tfrecord", "test/*.tfrecord")  # no layout file: the default
    with pytest.raises(LaunchError, match=r"holds no test/\*\.tfrecord: model m reads train/\*\.tfrecord, "
                                          r"test/\*\.tfrecord \(the default layout\)"):
        check_data("m", model_dir, data)
    (model_dir / "data_layout.txt").write_text("# comment\ntrain/*.tfrecord  # the training split\n\n")
    check_data("m", model_dir, data)
    (model_dir / "data_layout.txt").write_text("train/*.tfrecord\n../outside/*\n")
    with pytest.raises(LaunchError, match=r"data_layout.txt:2: data pattern '../outside/\*' must be relative"):
        data_layout(model_dir)
    assert data_layout(REPO / "models" / "little_demo") == ()  # makes its own data
    assert data_layout(REPO / "models" / "dlrm") == ("train/*.tfrecord", "test/*.tfrecord")


def test_rank_environment_maps_horovod_to_open_mpi():
    env = {"HOROVOD_RANK": "1", "HOROVOD_SIZE": "2", "HOROVOD_LOCAL_RANK": "1", "HOROVOD_LOCAL_SIZE": "2"}
    assert rank_environment(env) == {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2",
                                     "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2",
                                     "RANK_ID": "1", "RANK_SIZE": "2"}
    with pytest.raises(RuntimeError, match="HOROVOD_LOCAL_RANK, HOROVOD_LOCAL_SIZE not set.*horovodrun"):
        rank_environment({"HOROVOD_RANK": "0", "HOROVOD_SIZE": "1"})


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
    (d / "dup.json").write_text(json.dumps(_table(ranks=[(0, 0)])))
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

