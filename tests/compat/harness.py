"""Run the Rec-SDK-style scripts of ``tests/compat/scripts`` the way their users do: ``bash run.sh
SO_PATH PKG_PATH HCCL_JSON DATA_PATH``, on 1 or 2 ranks, with run.sh's feature switches.

The repository's own ``run.sh`` starts ``models/<MODEL>/main_mxrec.py``. A compat script is not a
model of the zoo, so :func:`launch` builds a small launch folder per run that looks like a
checkout to ``run.sh`` (``run.sh``, ``mx_rec_py`` and ``.venv`` linked from this repository,
``models/<name>/main_mxrec.py`` linked to the script, ``data_layout.txt`` to
``scripts/<name>.data_layout.txt`` when there is one) and runs that ``run.sh`` unchanged.

Every script writes its numbers to the JSON file named by ``COMPAT_RESULT`` (rank 0; the
other ranks write ``<file>.rank<N>``): ``{"losses": [per step], "eval": {metric: value}, ...}``.
The tests compare those files between tiers, modes and rank counts.

Example:
    >>> result = launch("wide_deep", ranks=1, switches={"CACHE_MODE": "DDR"},
    ...                 data_path=criteo, work=tmp_path)                      # doctest: +SKIP
    >>> assert_loss_falls(result)                                             # doctest: +SKIP
"""
import json
import resource
import subprocess
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from tests.paths import PYTHON, REPO, SHARED_DATA, launch_env, require_shared

SCRIPTS = Path(__file__).resolve().parent / "scripts"
RANK_TABLES = REPO / "tests" / "e2e" / "rank_tables"
PKG_PATH = REPO / "mx_rec_py" / "mx_rec"
CENSUS_SAMPLE = SHARED_DATA / "census" / "census-income.sample"
CRITEO_TRAIN = SHARED_DATA / "criteo" / "wide_resdnn" / "train.csv"
CRITEO_DEV = SHARED_DATA / "criteo" / "wide_resdnn" / "dev.csv"
SWITCHES = ("USE_DYNAMIC", "CACHE_MODE", "USE_FAAE", "USE_DYNAMIC_EXPANSION", "USE_MULTI_LOOKUP",
            "USE_MODIFY_GRAPH", "TRAIN_RANK_SIZE")
# Launcher and script variables a caller's shell could leak into a run.
CLEARED = (*SWITCHES, "MODEL", "MODEL_ARGS", "HOROVODRUN", "HOROVODRUN_ARGS", "MXREC_DRY_RUN", "CM_CHIEF_IP",
           "CM_CHIEF_PORT", "CM_WORKER_IP", "CM_WORKER_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
           "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE", "APPLY_GRADIENTS_STRATEGY")
RUN_TIMEOUT_S = 240


def rank_table(ranks: int, folder: Path) -> Path:
    """An HCCL rank table (version 2.0, one server) for ``ranks`` processes: the shared 2-rank
    fixture, or one written into ``folder`` for other counts."""
    if ranks == 2:
        return RANK_TABLES / "v2_server_list_2p.json"
    table = {"version": "2.0", "server_count": "1", "status": "completed",
             "server_list": [{"server_id": "localhost",
                              "device": [{"device_id": str(r), "device_ip": f"192.168.{100 + r}.101",
                                          "rank_id": str(r)} for r in range(ranks)]}]}
    path = folder / f"hccl_{ranks}p.json"
    path.write_text(json.dumps(table, indent=2))
    return path


def _launch_folder(script: str, folder: Path) -> Path:
    """A folder that ``run.sh`` takes for a checkout whose only model is ``script``; returns its run.sh."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("run.sh", "mx_rec_py", ".venv"):
        link = folder / name
        if not link.exists():
            link.symlink_to(REPO / name)
    model = folder / "models" / script
    model.mkdir(parents=True, exist_ok=True)
    main = model / "main_mxrec.py"
    if not main.exists():
        main.symlink_to(SCRIPTS / f"{script}.py")
    layout = SCRIPTS / f"{script}.data_layout.txt"  # what run.sh checks DATA_PATH for (default: train/, test/)
    if layout.is_file() and not (model / "data_layout.txt").exists():
        (model / "data_layout.txt").symlink_to(layout)
    return folder / "run.sh"


def launch(script: str, ranks: int, switches: Mapping[str, str], data_path: Path, work: Path,
           extra_env: Optional[Mapping[str, str]] = None, timeout: int = RUN_TIMEOUT_S) -> Dict:
    """Run ``scripts/<script>.py`` through ``run.sh`` on ``ranks`` processes; returns rank 0's result.

    ``work`` (created) holds the launch folder, the run's working directory (SSD files, checkpoints)
    and the result files; each rank's result is also under ``result["ranks"][r]``.

    Raises:
        AssertionError: the job failed (the message holds the tail of its output) or wrote no result.
    """
    work.mkdir(parents=True, exist_ok=True)
    run_sh = _launch_folder(script, work / "launch")
    so_path = work / "so"
    so_path.mkdir(exist_ok=True)
    result_path = work / "result.json"
    env = launch_env({"MODEL": script, **{k: str(v) for k, v in switches.items()},
                      "COMPAT_RESULT": str(result_path), "HOROVODRUN_ARGS": "--start-timeout 120",
                      **(extra_env or {})}, drop=CLEARED)
    command = ["bash", str(run_sh), str(so_path), str(PKG_PATH), str(rank_table(ranks, work)), str(data_path)]
    cpu_before = _children_cpu_s()
    proc = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
    cpu_s = _children_cpu_s() - cpu_before
    label = f"{script} on {ranks} rank(s) with {dict(switches)}"
    output = _job_output(proc)
    assert proc.returncode == 0, f"{label}: exit {proc.returncode}\n{output}"
    assert result_path.is_file(), f"{label}: no result file {result_path}\n{output}"
    result = json.loads(result_path.read_text())
    per_rank = [result] + [json.loads(Path(f"{result_path}.rank{r}").read_text()) for r in range(1, ranks)]
    combined = combine_ranks(per_rank, label)
    combined["cpu_s"] = cpu_s
    return combined


def _children_cpu_s() -> float:
    """CPU seconds (user + system) of this process's finished children: a job's cost on CI's cores."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _job_output(proc: subprocess.CompletedProcess) -> str:
    """The end of a job's output: the ranks' own lines (horovodrun prefixes them ``[rank]<stream>:``)
    without horovodrun's traceback about a failed rank."""
    lines = (proc.stdout + "\n" + proc.stderr).splitlines()
    ranks = [line for line in lines if line.startswith("[") and ">:" in line[:16]]
    plan = [line for line in lines if not line.startswith("[")][:12]
    return "\n".join(plan + ["..."] + (ranks or lines)[-70:])


def combine_ranks(per_rank: Sequence[Mapping], label: str) -> Dict:
    """One result for the whole job: per-step losses averaged over ranks (each rank's loss is the
    mean over its equal share of the global batch, so this is the global batch's mean loss) and
    evaluation metrics over every rank's ``eval_rows`` (``[labels..., predictions...]`` per sample):
    per task AUC and mean log loss, so that 1 rank and N ranks report the same numbers."""
    losses = np.mean([np.asarray(r["losses"], np.float64) for r in per_rank], axis=0)
    result = {**per_rank[0], "losses": losses.tolist(), "ranks": list(per_rank), "label": label, "eval": {}}
    if per_rank[0].get("eval_rows"):
        rows = np.concatenate([np.asarray(r["eval_rows"], np.float64) for r in per_rank])
        tasks = rows.shape[1] // 2
        for task in range(tasks):
            target, prob = rows[:, task], np.clip(rows[:, tasks + task], 1e-7, 1 - 1e-7)
            result["eval"][f"logloss_{task}"] = float(-np.mean(target * np.log(prob) + (1 - target) * np.log(1 - prob)))
            if 0 < target.sum() < len(target):
                result["eval"][f"auc_{task}"] = float(roc_auc_score(target, prob))
        result["eval"]["samples"] = float(len(rows))
    return result


def assert_loss_falls(result: Mapping, window: int = 0) -> None:
    """The mean loss of the last ``window`` steps (default a quarter of them) is below the first's."""
    losses = np.asarray(result["losses"], dtype=np.float64)
    assert losses.size >= 4 and np.all(np.isfinite(losses)), f"{result.get('label')}: losses {losses}"
    window = window or max(1, losses.size // 4)
    first, last = losses[:window].mean(), losses[-window:].mean()
    assert last < first, f"{result.get('label')}: loss did not fall ({first:.5f} -> {last:.5f}): {losses}"


def assert_same_numbers(a: Mapping, b: Mapping, rtol: float, atol: float = 0.0,
                        keys: Iterable[str] = ("losses", "eval")) -> None:
    """Per-step losses and eval metrics of two runs agree within ``rtol`` / ``atol``."""
    for key in keys:
        left, right = a[key], b[key]
        if isinstance(left, dict):
            assert sorted(left) == sorted(right), f"{key}: {sorted(left)} vs {sorted(right)}"
            left, right = [left[k] for k in sorted(left)], [right[k] for k in sorted(right)]
        np.testing.assert_allclose(np.asarray(left, np.float64), np.asarray(right, np.float64), rtol=rtol,
                                   atol=atol, err_msg=f"{key}: {a.get('label')} vs {b.get('label')}")


def convert_census(output: Path) -> Path:
    """The shared census sample as TFRecords (``models/mmoe/census.py``): its 200 rows train, its
    first 80 rows test; returns the data folder (with ``train/``, ``test/``, ``meta.json``)."""
    require_shared(CENSUS_SAMPLE)
    test_rows = output.parent / f"{output.name}_test.txt"
    lines = CENSUS_SAMPLE.read_text(encoding="utf-8").splitlines()
    test_rows.write_text("\n".join(lines[:80]) + "\n", encoding="utf-8")
    _run_tool(REPO / "models" / "mmoe" / "census.py", "--train_data_path", CENSUS_SAMPLE,
              "--test_data_path", test_rows, "--output_path", output)
    return output


def convert_criteo(output: Path, train_rows: int = 2048, test_rows: int = 256) -> Path:
    """The first rows of the shared Criteo excerpt as TFRecords (``tools/criteo/convert.py``, one
    sample per record); returns the data folder."""
    require_shared(CRITEO_TRAIN, CRITEO_DEV)
    parts = {}
    for name, source, rows in (("train", CRITEO_TRAIN, train_rows), ("test", CRITEO_DEV, test_rows)):
        path = output.parent / f"{output.name}_{name}.txt"
        with open(source, encoding="utf-8") as handle:
            path.write_text("".join(line for _, line in zip(range(rows), handle)), encoding="utf-8")
        parts[name] = path
    _run_tool(REPO / "tools" / "criteo" / "convert.py", "--train_data_path", parts["train"],
              "--test_data_path", parts["test"], "--output_path", output)
    return output


def _run_tool(tool: Path, *args: object) -> None:
    proc = subprocess.run([PYTHON, str(tool), *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=180, env=launch_env({}))
    assert proc.returncode == 0, f"{tool.name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"


def empty_data_folder(work: Path) -> Path:
    """An existing, empty DATA_PATH for scripts that make their own data (run.sh checks it exists)."""
    path = work / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


