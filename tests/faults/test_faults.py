"""Fault injection on real processes: saves killed at points spread over their whole duration, every kind
of checkpoint file damaged at several offsets, a disk filled at each write.

Every fault must end one of two ways: the restore (and ``tools/export_local.py``) gives the previous
checkpoint bit for bit (dense variables, rows, slots, admission counts; the exported rows and graph),
or the new one where the save had completed; or both refuse with a message naming the file. The
counts go to ``benchmarks/results/faults.json``.

One module fixture does the work (the jobs run two processes at a time), and one verifier process
judges every case, so the tests below only read its report.
"""
import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pytest

from tests.faults.fault_job import damage
from tests.paths import PYTHON, REPO, launch_env

JOB = Path(__file__).with_name("fault_job.py")
VENV_BIN = str(Path(PYTHON).parent)
RESULTS = REPO / "benchmarks" / "results" / "faults.json"
KILLS_1_RANK = 8  # per mode (with and without global_step)
DAMAGE = {"shard": (0.01, 0.4, 0.8, 1.0), "manifest": (0.01, 0.5, 1.0), "tf-data": (0.0, 0.5, 1.0),
          "tf-index": (0.01, 0.5, 1.0), "tf-meta": (0.01, 0.5, 1.0)}
PAGE = 4096  # tmpfs counts whole pages


def _pages(size: int) -> int:
    return -(-size // PAGE)


def fill_targets(unit_dir: Path) -> List[int]:
    """Free bytes that make a save of ``unit_dir``'s size run out of space at each of its writes, in the
    order it writes them: each table shard (its last page), the rank's entry, TF's data (mid-file) and
    index, the graph."""
    sparse = unit_dir / "model-mxrec-sparse"
    used, targets = 1, []  # the owner file
    for shard in (sparse / "items" / "shard-00000-of-00001.npz", sparse / "users" / "shard-00000-of-00001.npz"):
        targets.append(used + _pages(shard.stat().st_size) - 1)
        used += _pages(shard.stat().st_size)
    targets.append(used)  # the rank's entry (one page, removed before TF writes)
    data = _pages((unit_dir / "model.data-00000-of-00001").stat().st_size)
    targets.append(used + data // 2)
    used += data
    targets.append(used)  # TF's index
    used += _pages((unit_dir / "model.index").stat().st_size)
    targets.append(used + _pages((unit_dir / "model.meta").stat().st_size) // 2)
    used += _pages((unit_dir / "model.meta").stat().st_size)
    return [t * PAGE for t in targets]  # the manifest and TF's 'checkpoint' file: fill_job fills right before them




class Job:
    """A job process (``ranks`` > 1: under ``horovodrun --gloo``) started when a slot is free."""

    def __init__(self, args: Sequence[str], ranks: int = 1, env: Optional[Dict[str, str]] = None, expect: int = 0):
        self.args, self.ranks, self.env, self.expect = [str(a) for a in args], ranks, env or {}, expect
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> None:
        command = [PYTHON, str(JOB), *self.args]
        if self.ranks > 1:
            command = [f"{VENV_BIN}/horovodrun", "--gloo", "-np", str(self.ranks), "-H", f"localhost:{self.ranks}",
                       *command]
        self.proc = subprocess.Popen(command, cwd=REPO, env=launch_env({"TF_CPP_MIN_LOG_LEVEL": "2", **self.env}),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def finish(self) -> None:
        out, _ = self.proc.communicate(timeout=300)
        rc = self.proc.returncode
        ok = rc == self.expect if self.ranks == 1 or self.expect == 0 else rc != 0
        assert ok, f"{self.args} on {self.ranks} rank(s): exit {rc}, expected {self.expect}\n{out[-5000:]}"


def run_jobs(jobs: List[Job], slots: int = 2) -> None:
    """Run ``jobs``, at most ``slots`` processes at a time (a job of N ranks takes N)."""
    waiting, running = list(jobs), []
    while waiting or running:
        while waiting and (not running or sum(j.ranks for j in running) + waiting[0].ranks <= slots):
            waiting[0].start()
            running.append(waiting.pop(0))
        running.pop(0).finish()


def events(log: Path) -> List[str]:
    """The fault hook's log: event texts, event n at index n - 1."""
    lines = [line.split("\t", 1) for line in log.read_text().splitlines()]
    return [text for n, text in lines if n.isdigit()]


def commit_event(log: List[str]) -> int:
    """The event (1-based) that renames the finished unit into place: killed at it, the save did not finish."""
    return next(i for i, e in enumerate(log, 1) if e.startswith("rename ") and "-mxrec-sparse.tmp-" in e)


def kill_points(log: List[str], count: int) -> List[int]:
    """``count`` events spread evenly over the save, counting a run of writes to one file as its first,
    middle and last write; always the commit rename and the events around TF's save op."""
    groups: List[List[int]] = []
    for i, text in enumerate(log, 1):
        key = text.rsplit(" #", 1)[0]
        if groups and log[groups[-1][0] - 1].rsplit(" #", 1)[0] == key and text.startswith("write "):
            groups[-1].append(i)
        else:
            groups.append([i])
    candidates = sorted({i for g in groups for i in (g[0], g[len(g) // 2], g[-1])})
    step = (len(candidates) - 1) / max(1, count - 1)
    chosen = {candidates[round(k * step)] for k in range(count)}
    commit = commit_event(log)
    tf_op = log.index("tf save op starts") + 1
    return sorted(chosen | {commit, commit + 1, tf_op, tf_op + 1})


def copy(src: Path, dst: Path) -> Path:
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)  # -a keeps the unit's hard links
    return dst


def _kill_cases(root: Path, ranks: int, mode: str, base: Path, count_dir: Path, count_logs: Dict[int, Path],
                per_rank: Dict[int, int]) -> Tuple[List[Job], List[dict]]:
    jobs, cases = [], []
    for rank, count in per_rank.items():
        log = events(count_logs[rank])
        if ranks > 1 and rank > 0:  # mid-save on the other rank
            points = [len(log) // 2]
        elif ranks > 1:  # after TF's files are written, before the unit is complete
            points = [log.index("tf save op ended") + 2]
        else:
            points = kill_points(log, count)
        commit = commit_event(log) if rank == 0 else len(log) + 1
        for point in points:
            name = f"kill-{ranks}rank-{mode}-r{rank}-at{point}"
            case_dir = copy(base, root / name)
            env = {"MXREC_FAULT_LOG": str(root / f"{name}.log"), "MXREC_FAULT_KILL_AT": str(point),
                   "MXREC_FAULT_RANK": str(rank)}
            jobs.append(Job(["resave", case_dir, mode], ranks, env, expect=-9))
            allowed = [f"P{ranks}{mode}"] + ([f"N{ranks}{mode}"] if point > commit else [])
            cases.append({"name": name, "kind": f"kill-{ranks}rank-{mode}", "dir": str(case_dir), "allowed": allowed,
                          "event": log[point - 1], "save_after": mode == "step", "ranks": ranks})
    if ranks == 1:
        name = f"kill-1rank-{mode}-inside-tf-save-op"
        case_dir = copy(base, root / name)
        env = {"MXREC_FAULT_LOG": str(root / f"{name}.log"), "MXREC_FAULT_KILL_AT": "0", "MXREC_FAULT_INSIDE_OP": "1"}
        jobs.append(Job(["resave", case_dir, mode], 1, env, expect=-9))
        cases.append({"name": name, "kind": f"kill-1rank-{mode}", "dir": str(case_dir), "allowed": [f"P1{mode}"],
                      "event": "inside TF's save op", "save_after": mode == "step", "ranks": 1})
    return jobs, cases


def _damage_cases(root: Path, base: Path) -> List[dict]:
    prefix = base / "model-6"
    files = {"shard": base / "model-6-mxrec-sparse" / "users" / "shard-00000-of-00001.npz",
             "manifest": base / "model-6-mxrec-sparse" / "manifest.json",
             "tf-data": Path(f"{prefix}.data-00000-of-00001"), "tf-index": Path(f"{prefix}.index"),
             "tf-meta": Path(f"{prefix}.meta")}
    cases = []
    for kind, fractions in DAMAGE.items():
        for fraction in fractions:
            name = f"damage-{kind}-at{fraction}"
            case_dir = copy(base, root / name)
            target = case_dir / files[kind].relative_to(base)
            damage(target, fraction)
            names = [str(target), str(case_dir / "model-6-mxrec-sparse" / "dense" / target.name)]
            cases.append({"name": name, "kind": f"damage-{kind}", "dir": str(case_dir), "allowed": ["P1step"],
                          "must_name": names})
    return cases


def _mixed_cases(root: Path, p2: Path, n2: Path) -> List[dict]:
    """2 ranks: one rank's shard, or TF's files, from another (finished) save of the same prefix."""
    shard = Path("model-mxrec-sparse") / "users" / "shard-00001-of-00002.npz"
    mixed_shard = copy(p2, root / "mixed-2rank-shard-of-another-save")
    shutil.copyfile(n2 / shard, mixed_shard / shard)
    mixed_dense = copy(p2, root / "mixed-2rank-tf-files-of-another-save")
    for name in ("model.index", "model.data-00000-of-00001"):
        os.remove(mixed_dense / name)
        shutil.copyfile(n2 / name, mixed_dense / name)
    return [{"name": mixed_shard.name, "kind": "mixed-2rank", "dir": str(mixed_shard), "allowed": ["P2nostep"],
             "must_name": [str(mixed_shard / shard)]},
            {"name": mixed_dense.name, "kind": "mixed-2rank", "dir": str(mixed_dense), "allowed": ["P2nostep"],
             "must_name": [str(mixed_dense / "model.index"), str(mixed_dense / "model.data-00000-of-00001")]}]


def _save_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file() and "dense" not in p.parts)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    bases = {}
    for ranks in (1, 2):
        bases[ranks] = {m: root / f"P{ranks}{m}" for m in ("step", "nostep")}
        for d in bases[ranks].values():
            d.mkdir()
    run_jobs([Job(["train", bases[1]["step"], bases[1]["nostep"]]),
              Job(["train", bases[2]["step"], bases[2]["nostep"]], ranks=2)])
    # a save run to the end under the hook: its events, and the new checkpoint N
    counts, jobs = {}, []
    for ranks in (1, 2):
        for mode in ("step", "nostep"):
            d = copy(bases[ranks][mode], root / f"N{ranks}{mode}")
            log = root / f"N{ranks}{mode}-{{rank}}.log"
            counts[ranks, mode] = (d, {r: Path(str(log).format(rank=r)) for r in range(ranks)})
            jobs.append(Job(["resave", d, mode], ranks, {"MXREC_FAULT_LOG": str(log), "MXREC_FAULT_RANK": "all"}))
    run_jobs(jobs)
    cases, jobs = [], []
    for ranks, per_rank in ((1, {0: KILLS_1_RANK}), (2, {0: 1, 1: 1})):  # 2 ranks: one kill on each
        for mode in ("step", "nostep"):
            j, c = _kill_cases(root, ranks, mode, bases[ranks][mode], *counts[ranks, mode], per_rank)
            jobs += j
            cases += c
    fill = _fill(root, bases[1]["nostep"], counts[1, "nostep"][0], jobs, cases)
    try:
        run_jobs(sorted(jobs, key=lambda j: -j.ranks))
    finally:  # also when a job failed before the fill job unmounted its disk
        subprocess.run(["umount", str(root / "tmpfs")], check=False, capture_output=True)
    for case in cases:  # what the hook says the kill hit
        log = root / f"{case['name']}.log"
        if log.exists():
            last = log.read_text().splitlines()[-1:]
            case["killed_at"] = last[0].split("\t", 1)[-1] if last else "before the first event"
    cases += _damage_cases(root, bases[1]["step"]) + _mixed_cases(root, bases[2]["nostep"], counts[2, "nostep"][0])
    references = {f"P{r}{m}": str(d) for r in (1, 2) for m, d in bases[r].items()}
    references.update({f"N{r}{m}": str(counts[r, m][0]) for r in (1, 2) for m in ("step", "nostep")})
    spec = {"references": references, "cases": cases, "scratch": str(root / "scratch"), "model_damage": "P1step"}
    (root / "scratch").mkdir()
    (root / "cases.json").write_text(json.dumps(spec))
    run_jobs([Job(["verify", root / "cases.json", root / "verdicts.json"])])
    verdicts = json.loads((root / "verdicts.json").read_text())
    fill_report = json.loads((fill / "fill.json").read_text())
    _write_results(verdicts, cases, fill_report)
    return {"verdicts": verdicts, "cases": {c["name"]: c for c in cases}, "fill": fill_report}


def _fill(root: Path, base: Path, new: Path, jobs: List[Job], cases: List[dict]) -> Path:
    """A small tmpfs holding the previous checkpoint; saves with less free space than they need."""
    mount = root / "tmpfs"
    mount.mkdir()
    need = _save_bytes(new)  # one whole unit, as a save writes it
    size = 2 * _save_bytes(base) + 2 * need + (1 << 20)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    out = root / "fill"
    out.mkdir()
    try:
        copy(base, mount / "ckpt")
    except BaseException:
        subprocess.run(["umount", str(mount)], check=False)
        raise
    targets = fill_targets(new)
    job = Job(["fill", mount / "ckpt", out, "nostep", *targets])
    original_finish = job.finish

    def finish():
        try:
            original_finish()
        finally:
            subprocess.run(["umount", str(mount)], check=False)

    job.finish = finish
    jobs.append(job)
    for i, target in enumerate(targets + ["manifest", "tf-state"]):  # last: the unit is complete, TF's state is not
        cases.append({"name": f"disk-full-{i}-free{target}", "kind": "disk-full", "dir": str(out / f"fill-{i}"),
                      "allowed": ["P1nostep"] + (["N1nostep"] if target == "tf-state" else [])})
    cases.append({"name": "disk-full-then-room", "kind": "disk-full-then-room", "dir": str(out / "fill-final"),
                  "allowed": ["N1nostep"]})
    return out


def _ended(verdict: dict) -> str:
    if "load" in verdict:
        return f"load: {verdict['load']}"
    return f"restore: {verdict['restore']}; export: {verdict['export']}"


def survived(verdict: dict) -> bool:
    text = json.dumps({k: v for k, v in verdict.items() if k in ("restore", "export", "load")})
    return "WRONG" not in text and not verdict.get("leftovers_after_next_save")


def _write_results(verdicts: List[dict], cases: List[dict], fill_report: List[dict]) -> None:
    kinds: Dict[str, Counter] = {}
    for v in verdicts:
        kinds.setdefault(v["kind"], Counter())[_ended(v)] += 1
    summary = {"faults_tried": len(verdicts), "survived": sum(survived(v) for v in verdicts),
               "by_kind": {k: {"tried": sum(c.values()), "ended": dict(sorted(c.items()))}
                           for k, c in sorted(kinds.items())},
               "kill_points": {c["name"]: c.get("killed_at", "") for c in cases if c["kind"].startswith("kill")},
               "disk_full": [{k: v for k, v in r.items() if k != "final"} for r in fill_report if "free" in r],
               "not_survived": [v for v in verdicts if not survived(v)]}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=1) + "\n")


def _by_kind(report, prefix: str) -> List[dict]:
    found = [v for v in report["verdicts"] if v["kind"].startswith(prefix)]
    assert found, f"no {prefix} cases ran"
    return found


@pytest.mark.parametrize("kind", ["kill-1rank-step", "kill-1rank-nostep", "kill-2rank-step", "kill-2rank-nostep"])
def test_a_killed_save_leaves_the_previous_unit_or_the_new_one_whole(report, kind):
    verdicts = _by_kind(report, kind)
    assert [v for v in verdicts if not survived(v)] == []
    for v in verdicts:
        case = report["cases"][v["case"]]
        assert v["restore"].startswith("restored "), v  # a kill never makes the latest checkpoint unusable
        assert v["export"] == v["restore"], v
        if case["allowed"] == [case["allowed"][0]]:
            assert v["restore"] == f"restored {case['allowed'][0]}", v
        assert v.get("leftovers_after_next_save", []) == [], v


def test_a_save_without_step_killed_after_tf_wrote_its_files_restores_the_previous_unit(report):
    """The reported mix: new tables with old dense variables. Killed between TF's files and the commit."""
    hit = [v for v in _by_kind(report, "kill-1rank-nostep")
           if report["cases"][v["case"]]["event"] in ("tf save op ended",) or "inside" in v["case"]]
    assert len(hit) >= 2
    for v in hit:
        assert v["restore"] == "restored P1nostep" and v["export"] == "restored P1nostep", v


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_file_restores_unchanged_or_is_refused_naming_it(report, kind):
    verdicts = _by_kind(report, f"damage-{kind}")
    assert [v for v in verdicts if not survived(v)] == []
    if kind != "tf-meta":  # restore does not read the graph; export does
        assert all(v["restore"] == "refused naming the file" for v in verdicts), verdicts
    assert all(v["export"] == "refused naming the file" for v in verdicts), verdicts


def test_mixed_ranks_or_tf_files_of_another_save_never_mix(report):
    verdicts = {v["case"]: v for v in _by_kind(report, "mixed-2rank")}
    shard = verdicts["mixed-2rank-shard-of-another-save"]
    assert shard["restore"] == shard["export"] == "refused naming the file", shard
    dense = verdicts["mixed-2rank-tf-files-of-another-save"]  # the unit keeps links to its own TF files
    assert dense["restore"] == dense["export"] == "restored P2nostep", dense


def test_a_damaged_exported_model_is_refused_naming_the_file(report):
    assert all(v["load"] == "refused naming the file" for v in _by_kind(report, "damage-exported-model"))


def test_a_full_disk_names_the_path_and_size_and_changes_nothing(report):
    attempts = [r for r in report["fill"] if "free" in r]
    assert len(attempts) == 8
    for attempt in attempts:
        assert attempt["ended"] == "DiskFullError", attempt
        assert "no space left on device writing /" in attempt["message"]
        assert "this save needs about" in attempt["message"], attempt
    where = {a["message"].split(": this save")[0].rsplit("/", 1)[-1].split(".tmp")[0] for a in attempts}
    assert len(where) >= 4, where  # the disk ran out at different writes
    for v in _by_kind(report, "disk-full"):
        case = report["cases"][v["case"]]
        assert v["restore"] == v["export"] and v["restore"] in [f"restored {r}" for r in case["allowed"]], v
        if v["kind"] == "disk-full":
            assert "restored P1nostep" == v["restore"] or case["allowed"][-1] == "N1nostep", v
    final = report["fill"][-1]["final"]
    assert not [n for n in final if any(m in n for m in (".tmp", ".old-", ".tempstate", "_temp"))], final


def test_the_counts_are_written(report):
    summary = json.loads(RESULTS.read_text())
    assert summary["faults_tried"] >= 60 and summary["survived"] == summary["faults_tried"], summary["not_survived"]
