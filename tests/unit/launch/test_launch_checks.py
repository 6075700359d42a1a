"""The launcher's checks (``mx_rec.launch``, SPEC section 6) called directly, in one process: rank
tables of versions 1.0 and 2.0, the switches, the ``IP`` scheme's cluster variables, run.sh's arguments,
the models and their data layouts, the plan's horovodrun command and environment, and the per-rank
environment. ``tests/e2e/test_run_sh.py`` runs run.sh itself."""
import json
import os
from pathlib import Path

import pytest

from mx_rec.launch import LaunchError
from mx_rec.launch.cluster import parse_cluster_env
from mx_rec.launch.plan import build_plan, check_data, data_layout, find_model, list_models, parse_args
from mx_rec.launch.rank_env import rank_environment
from mx_rec.launch.rank_table import load_rank_table, parse_rank_table
from mx_rec.launch.switches import parse_switches, read_switch
from tests.helpers.launch import CM_ENV, PKG, TABLES, rank_table
from tests.paths import PYTHON, REPO


@pytest.mark.parametrize("name,version", [("v1_server_list_2p.json", "1.0"), ("v1_group_list_2p.json", "1.0"),
                                          ("v2_server_list_2p.json", "2.0")])
def test_fixture_tables_have_two_local_ranks(name, version):
    table = load_rank_table(TABLES / name)
    assert (table.version, table.rank_size) == (version, 2)
    assert [d.rank_id for d in table.devices] == [0, 1]
    assert [d.device_id for d in table.devices] == [0, 1]
    assert len(table.hosts()) == 1 and table.hosts()[0][1] == 2


def test_two_servers_give_hosts_in_rank_order():
    table = parse_rank_table(rank_table(ranks=[(2, 3), (0, 1)], hosts=["10.0.0.2", "10.0.0.1"]))
    assert table.hosts() == [("10.0.0.1", 2), ("10.0.0.2", 2)]
    assert [d.server_id for d in table.devices] == ["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2"]


def test_integer_fields_are_accepted():
    data = {"version": "1.0", "server_list": [{"server_id": "localhost", "device": [
        {"device_id": 0, "rank_id": 0}, {"device_id": 1, "rank_id": 1}]}]}
    assert parse_rank_table(data).rank_size == 2


@pytest.mark.parametrize("data,needle", [
    (rank_table(ranks=[(0, 0)]), "duplicate rank_id 0"),
    (rank_table(ranks=[(0, 2)]), "rank ids must be 0..1"),
    (rank_table(ranks=[(1, 2)]), "missing [0]"),
    ({**rank_table(), "version": "3.0"}, "unknown rank table version '3.0'"),
    ({k: v for k, v in rank_table().items() if k != "version"}, "version missing"),
    ({**rank_table(), "status": "initializing"}, "status is 'initializing'"),
    ({**rank_table(), "server_count": "2"}, "server_count is 2"),
    ({**rank_table(), "server_count": "0", "server_list": []}, "no devices"),
    ({**rank_table(), "server_list": [{"server_id": "h", "device": []}]}, "no 'device' list"),
    ({**rank_table(), "server_list": [{"device": [{"device_id": "0", "rank_id": "0"}]}]}, "no 'server_id'"),
    (rank_table(ranks=[(0, 2), (1, 3)], hosts=["a", "b"]), "not contiguous"),
    ({"version": "2.0", "group_list": []}, "no 'server_list'"),
    ({"version": "1.0"}, "'server_list' or 'group_list'"),
    ([1, 2], "JSON object"),
])
def test_bad_tables_are_rejected(data, needle):
    with pytest.raises(LaunchError) as err:
        parse_rank_table(data, source="t.json")
    assert needle in str(err.value) and "t.json" in str(err.value)


def test_bad_rank_id_and_duplicate_device_are_named():
    data = rank_table()
    data["server_list"][0]["device"][1]["rank_id"] = "one"
    with pytest.raises(LaunchError, match=r"rank_id must be a non-negative integer, got 'one'"):
        parse_rank_table(data)
    data = rank_table()
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


def test_script_runs_a_users_own_file_checked_against_its_folders_layout(tmp_path):
    script = tmp_path / "job" / "train.py"
    script.parent.mkdir()
    script.write_text("print('hi')\n")
    (script.parent / "data_layout.txt").write_text("part-*.tfrecord\n")
    data = tmp_path / "data"
    data.mkdir()
    argv = [str(tmp_path), str(PKG), str(TABLES / "v1_server_list_2p.json"), str(data)]
    env = {"SCRIPT": str(script), "MODEL": "little_demo", "PATH": os.environ["PATH"]}
    with pytest.raises(LaunchError, match=r"holds no part-\*\.tfrecord"):
        build_plan(argv, env, repo=REPO, python=PYTHON)
    (data / "part-0.tfrecord").write_text("")
    plan = build_plan(argv, env, repo=REPO, python=PYTHON)
    assert plan.script == script and plan.model == "train" and plan.command[-1] == str(script)
    for bad in (str(tmp_path / "missing.py"), str(script.parent / "data_layout.txt")):
        with pytest.raises(LaunchError, match="is not a Python file"):
            build_plan(argv, {**env, "SCRIPT": bad}, repo=REPO, python=PYTHON)


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
