"""From run.sh's arguments and the environment to one checked ``LaunchPlan``.

Each rank runs ``python -m mx_rec.launch.rank_env main_mxrec.py ...``, which sets
``OMPI_COMM_WORLD_RANK`` / ``_SIZE`` / ``_LOCAL_RANK`` / ``_LOCAL_SIZE`` (and ``RANK_ID``) from
Horovod's rank variables before the script starts, as Rec SDK scripts expect.

DATA_PATH must hold what the model reads: the glob patterns of ``models/<model>/data_layout.txt``
(one a line, ``#`` comments; without that file ``train/*.tfrecord`` and ``test/*.tfrecord``), each
matching at least one file, or nothing starts.

Environment read here (besides the switches and ``CM_*`` variables):
    MODEL           model folder under ``models/`` (default ``dlrm``)
    MODEL_ARGS      extra arguments for ``main_mxrec.py``, shell-quoted (e.g. ``--steps 20``)
    HOROVODRUN      the ``horovodrun`` to use (default: beside the Python interpreter, else on PATH)
    HOROVODRUN_ARGS extra ``horovodrun`` options (e.g. ``--verbose --start-timeout 60``)

Example:
    >>> plan = build_plan(["so", "mx_rec_py/mx_rec", "hccl.json", "data"], os.environ,
    ...                   repo=Path("."), python=sys.executable)   # doctest: +SKIP
    >>> print(plan.describe())                                       # doctest: +SKIP
"""
import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from mx_rec.launch.cluster import ClusterEnv, parse_cluster_env
from mx_rec.launch.errors import LaunchError
from mx_rec.launch.rank_table import RankTable, load_rank_table
from mx_rec.launch.switches import Switches, parse_switches

USAGE = "bash run.sh SO_PATH PKG_PATH HCCL_JSON DATA_PATH [IP]"
DEFAULT_MODEL = "dlrm"
MODEL_SCRIPT = "main_mxrec.py"
DATA_LAYOUT = "data_layout.txt"
DEFAULT_DATA_LAYOUT = ("train/*.tfrecord", "test/*.tfrecord")
RANK_WRAPPER = ("-m", "mx_rec.launch.rank_env")


@dataclass(frozen=True)
class LaunchArgs:
    """run.sh's positional arguments, paths made absolute and checked.

    Attributes:
        so_path: folder of native op libraries (goes first on ``LD_LIBRARY_PATH``; may be empty).
        pkg_path: the ``mx_rec`` package folder (its parent goes first on ``PYTHONPATH``).
        hccl_json: the rank table argument (a path; ignored in the rank-table-free scheme).
        data_path: the data folder, passed to the processes as ``DATA_PATH``.
        ip: the 5th argument, or None when the rank table decides the ranks.
    """

    so_path: Path
    pkg_path: Path
    hccl_json: str
    data_path: Path
    ip: Optional[str] = None


@dataclass(frozen=True)
class LaunchPlan:
    """Everything about to start: the ``horovodrun`` command line and the processes' environment.

    Attributes:
        model: model name (folder under ``models/``).
        script: absolute path of the model's ``main_mxrec.py``.
        scheme: how the ranks were decided, for the printed plan.
        hosts: ``(host, slots)`` in rank order; slots sum to the rank count.
        switches: the resolved feature switches.
        command: argv of ``horovodrun``.
        env_updates: variables set or changed for the processes (the rest is inherited).
    """

    model: str
    script: Path
    scheme: str
    hosts: Tuple[Tuple[str, int], ...]
    switches: Switches
    command: Tuple[str, ...]
    env_updates: Dict[str, str] = field(default_factory=dict)

    @property
    def rank_size(self) -> int:
        """Number of processes."""
        return sum(slots for _, slots in self.hosts)

    def environment(self, base: Mapping[str, str]) -> Dict[str, str]:
        """The processes' full environment: ``base`` with ``env_updates`` applied."""
        return {**base, **self.env_updates}

    def describe(self) -> str:
        """The plan as printed before the processes start (several lines, no trailing newline)."""
        switch_text = " ".join(f"{k}={v}" for k, v in self.switches.as_env().items())
        rows = [
            ("model", f"{self.model} ({self.script})"),
            ("ranks from", self.scheme),
            ("processes", str(self.rank_size)),
            ("hosts", format_hosts(self.hosts)),
            ("switches", switch_text),
            ("DATA_PATH", self.env_updates["DATA_PATH"]),
            ("PYTHONPATH", self.env_updates["PYTHONPATH"]),
            ("LD_LIBRARY_PATH", self.env_updates["LD_LIBRARY_PATH"]),
            ("command", shlex.join(self.command)),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(["mx_rec launch plan:"] + [f"  {name:<{width}}  {value}" for name, value in rows])


def format_hosts(hosts: Sequence[Tuple[str, int]]) -> str:
    """``horovodrun -H`` syntax: ``host:slots,host:slots``."""
    return ",".join(f"{host}:{slots}" for host, slots in hosts)


def parse_args(argv: Sequence[str]) -> LaunchArgs:
    """run.sh's 4 or 5 positional arguments, with each path checked.

    Raises:
        LaunchError: wrong argument count, or a path that does not exist / has the wrong kind.
    """
    if len(argv) not in (4, 5):
        raise LaunchError(f"expected 4 or 5 arguments, got {len(argv)}; usage: {USAGE}")
    so_arg, pkg_arg, hccl_arg, data_arg = argv[:4]
    ip = argv[4] if len(argv) == 5 else None
    so_path = _existing_dir(so_arg, "SO_PATH", "folder of native op libraries (may be empty)")
    pkg_path = _existing_dir(pkg_arg, "PKG_PATH", "the installed mx_rec package folder")
    if not (pkg_path / "__init__.py").is_file():
        hint = f"; did you mean {pkg_path / 'mx_rec'}?" if (pkg_path / "mx_rec" / "__init__.py").is_file() else ""
        raise LaunchError(f"PKG_PATH {pkg_path} is not a Python package folder (no __init__.py); "
                          f"pass the mx_rec folder itself{hint}")
    data_path = _existing_dir(data_arg, "DATA_PATH", "the data folder")
    if not hccl_arg.strip():
        raise LaunchError("HCCL_JSON is empty; pass the rank table file (its path is ignored when IP is given)")
    return LaunchArgs(so_path=so_path, pkg_path=pkg_path, hccl_json=hccl_arg, data_path=data_path, ip=ip)


def _existing_dir(value: str, name: str, what: str) -> Path:
    """``value`` as an absolute path to an existing folder."""
    if not value.strip():
        raise LaunchError(f"{name} is empty; pass {what}")
    path = Path(os.path.abspath(Path(value).expanduser()))
    if not path.exists():
        raise LaunchError(f"{name} does not exist: {value} ({what})")
    if not path.is_dir():
        raise LaunchError(f"{name} is not a folder: {value} ({what})")
    return path


def list_models(repo: Path) -> List[str]:
    """Names of the folders under ``repo/models`` that hold a ``main_mxrec.py``, sorted."""
    models_dir = repo / "models"
    if not models_dir.is_dir():
        return []
    return sorted(p.name for p in models_dir.iterdir() if (p / MODEL_SCRIPT).is_file())


def find_model(repo: Path, name: str) -> Path:
    """The ``main_mxrec.py`` of model ``name`` under ``repo/models``.

    Raises:
        LaunchError: no such model; the message lists the existing ones.
    """
    existing = list_models(repo)
    if not name or "/" in name or name in (".", "..") or name not in existing:
        raise LaunchError(f"unknown MODEL={name!r}: no {repo / 'models' / name / MODEL_SCRIPT}; "
                          f"existing models: {', '.join(existing) or '(none)'}")
    return (repo / "models" / name / MODEL_SCRIPT).absolute()


def data_layout(model_dir: Path) -> Tuple[str, ...]:
    """The glob patterns (relative to DATA_PATH) a model reads, from its ``data_layout.txt``.

    Raises:
        LaunchError: a pattern that leaves DATA_PATH (absolute, or with ``..``), naming the file and line.
    """
    path = model_dir / DATA_LAYOUT
    if not path.is_file():
        return DEFAULT_DATA_LAYOUT
    patterns = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        pattern = line.split("#", 1)[0].strip()
        if not pattern:
            continue
        if pattern.startswith("/") or ".." in Path(pattern).parts:
            raise LaunchError(f"{path}:{number}: data pattern {pattern!r} must be relative to DATA_PATH")
        patterns.append(pattern)
    return tuple(patterns)


def check_data(model: str, model_dir: Path, data_path: Path) -> None:
    """Every pattern of the model's data layout matches at least one file under ``data_path``.

    Raises:
        LaunchError: naming DATA_PATH, each pattern that matches nothing, and where the layout comes from.
    """
    patterns = data_layout(model_dir)
    missing = [p for p in patterns if not any(f.is_file() for f in data_path.glob(p))]
    if missing:
        source = model_dir / DATA_LAYOUT if (model_dir / DATA_LAYOUT).is_file() else "the default layout"
        raise LaunchError(f"DATA_PATH {data_path} holds no {', no '.join(missing)}: model {model} reads "
                          f"{', '.join(patterns)} ({source}); convert the data first (tools/criteo/convert.py, "
                          "tools/criteo/synthetic.py or models/mmoe/census.py)")


def split_env_args(env: Mapping[str, str], name: str) -> List[str]:
    """Shell-style words of variable ``name`` (empty when unset).

    Raises:
        LaunchError: unbalanced quotes.
    """
    try:
        return shlex.split(env.get(name, ""))
    except ValueError as err:
        raise LaunchError(f"cannot split {name}={env.get(name)!r}: {err}") from err


def find_horovodrun(env: Mapping[str, str], python: str) -> str:
    """``HOROVODRUN`` if set, else ``horovodrun`` beside ``python``, else the one on ``PATH``.

    Raises:
        LaunchError: none found, or ``HOROVODRUN`` is not an executable file.
    """
    chosen = env.get("HOROVODRUN", "").strip()
    if chosen:
        if not (os.path.isfile(chosen) and os.access(chosen, os.X_OK)):
            raise LaunchError(f"HOROVODRUN={chosen!r} is not an executable file")
        return chosen
    beside = Path(python).parent / "horovodrun"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    on_path = shutil.which("horovodrun", path=env.get("PATH"))
    if on_path:
        return on_path
    raise LaunchError("horovodrun not found (beside the Python interpreter or on PATH); install horovod "
                      "with Gloo or set HOROVODRUN")


def _join_paths(first: Path, rest: str) -> str:
    """``first`` then the entries of the ``:``-list ``rest`` (empty and repeated entries dropped)."""
    entries = [str(first)] + [e for e in rest.split(os.pathsep) if e]
    return os.pathsep.join(dict.fromkeys(entries))


def _ranks(args: LaunchArgs, env: Mapping[str, str]) -> Tuple[str, List[Tuple[str, int]], Dict[str, str]]:
    """(scheme text, hosts, extra variables) from the rank table or the ``CM_*`` variables."""
    if args.ip is not None:
        cluster: ClusterEnv = parse_cluster_env(env, args.ip)
        scheme = (f"rank-table-free: IP {cluster.ip}, chief {cluster.chief_ip}:{cluster.chief_port}, "
                  f"worker {cluster.worker_ip} x {cluster.worker_size}")
        return scheme, [(cluster.worker_ip, cluster.worker_size)], cluster.as_env()
    table: RankTable = load_rank_table(Path(os.path.abspath(Path(args.hccl_json).expanduser())))
    scheme = f"rank table {table.source} (version {table.version}, {table.rank_size} ranks)"
    return scheme, table.hosts(), {"RANK_TABLE_FILE": table.source}


def build_plan(argv: Sequence[str], env: Mapping[str, str], repo: Path, python: str,
               caller_pythonpath: Optional[str] = None) -> LaunchPlan:
    """Check everything and return the plan; nothing is started.

    Args:
        argv: run.sh's positional arguments.
        env: the environment (switches, ``MODEL``, ``MODEL_ARGS``, ``CM_*``, ``PATH`` ...).
        repo: the repository root (holds ``models/``).
        python: interpreter for the processes.
        caller_pythonpath: ``PYTHONPATH`` as the user had it (run.sh adds the launcher's own
            folder for itself); defaults to ``env["PYTHONPATH"]``.

    Raises:
        LaunchError: the first problem found, in the order arguments, rank table or ``CM_*``,
            switches, MODEL, the data, ``MODEL_ARGS``, horovodrun.
    """
    args = parse_args(argv)
    scheme, hosts, rank_env = _ranks(args, env)
    rank_size = sum(slots for _, slots in hosts)
    switches = parse_switches(env, rank_size)
    model = env.get("MODEL", "").strip() or DEFAULT_MODEL
    script = find_model(repo, model)
    check_data(model, script.parent, args.data_path)
    model_args = split_env_args(env, "MODEL_ARGS")
    horovodrun_args = split_env_args(env, "HOROVODRUN_ARGS")
    horovodrun = find_horovodrun(env, python)
    pythonpath = env.get("PYTHONPATH", "") if caller_pythonpath is None else caller_pythonpath
    env_updates = {
        **switches.as_env(),
        **rank_env,
        "MODEL": model,
        "DATA_PATH": str(args.data_path),
        "DLRM_CRITEO_DATA_PATH": str(args.data_path),  # the name Rec SDK's run.sh exports it under
        "PYTHONPATH": _join_paths(args.pkg_path.parent, pythonpath),
        "LD_LIBRARY_PATH": _join_paths(args.so_path, env.get("LD_LIBRARY_PATH", "")),
    }
    if "TF_CPP_MIN_LOG_LEVEL" not in env:
        env_updates["TF_CPP_MIN_LOG_LEVEL"] = "2"  # TensorFlow's C++ info lines, once per process
    command = (horovodrun, "--gloo", *horovodrun_args, "-np", str(rank_size), "-H", format_hosts(hosts),
               python, *RANK_WRAPPER, str(script), *model_args)
    return LaunchPlan(model=model, script=script, scheme=scheme, hosts=tuple(hosts), switches=switches,
                      command=command, env_updates=env_updates)
