"""Entry point: every system, both workloads, alternating rounds, memory probes, profiles -> JSON.

Steps of one invocation:
1. Re-run itself in the benchmark environment (``tools/bench_env.sh``: TFRA 0.7.0, matplotlib,
   py-spy). If that environment cannot be built, the run goes on without TFRA and the JSON says so.
2. Generate the pool (``data.generate``) and start one worker per system (``worker.py``), one after
   the other, so each first pass over the pool (where mx_rec and TFRA insert keys) runs alone.
3. Per workload, ``rounds`` rounds; round r runs the systems in the order rotated by r, each for
   ``micro_steps`` / ``dlrm_steps`` steps. Figures are medians over rounds; ratios are against
   ``plain_tf`` measured in the same invocation (also the median of per-round ratios, steadier
   when other processes load the machine).
4. Profiles of mx_rec HBM (TF op trace and py-spy; the op trace of plain TF beside it).
5. Memory probes (``memory.py``), one process each.
6. Write the JSON, the chart and the README table (``report.py``).

Units: micro ``steps_per_s`` and ``keys_per_s`` (ids looked up and updated per second, B x F a
step); dlrm ``samples_per_s`` (B a step) and ``steps_per_s``; memory in bytes.
"""
import argparse
import dataclasses
import datetime
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from benchmarks.peers.handles import REPO, Worker, close_all, worker_env
from benchmarks.peers.settings import PRESETS, Settings, tier_sizes
from benchmarks.peers.systems import MX_REC_MODES, SYSTEMS, WORKLOADS

DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "peers.json"
IN_ENV = "MXREC_PEERS_BENCH_ENV"  # set once re-run in the benchmark environment ("1") or after failing ("0: why")
COMMAND = "MXREC_PEERS_COMMAND"
TARGETS = {"dlrm": {"plain_tf": 1.05, "tfra": 1.5}, "micro": {"plain_tf": 1.2}}  # issue 19
BASE = "plain_tf"


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--rounds", type=int, help="timed rounds (>= 1; default: the preset's)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated subset of {SYSTEMS}")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results JSON; the chart goes beside it")
    parser.add_argument("--readme", type=Path, help="README whose bench section to rewrite "
                        "(default: the checkout's README.md for the full preset at the default output, else none)")
    parser.add_argument("--no-profile", action="store_true", help="skip the op trace and py-spy profiles")
    args = parser.parse_args(argv)
    unknown = set(args.systems.split(",")) - set(SYSTEMS)
    if unknown or not args.systems:
        parser.error(f"--systems: unknown {sorted(unknown)}; choose from {SYSTEMS}")
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    if args.readme is None and args.preset == "full" and args.output == DEFAULT_OUTPUT:
        args.readme = REPO / "README.md"
    return args


def _enter_bench_env(argv: Sequence[str]) -> None:
    """Re-exec in the benchmark environment; on failure record why and go on without TFRA."""
    exe = Path(sys.executable)
    exe = exe.relative_to(REPO) if exe.is_relative_to(REPO) else exe
    os.environ.setdefault(COMMAND, shlex.join([str(exe), "-m", "benchmarks.peers", *argv]))
    if os.environ.get(IN_ENV):
        return
    proc = subprocess.run(["bash", str(REPO / "tools" / "bench_env.sh")], capture_output=True, text=True)
    python = proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 and proc.stdout.strip() else ""
    if not python:
        os.environ[IN_ENV] = "0: tools/bench_env.sh failed: " + proc.stderr.strip()[-1500:]
        print(f"[peers] benchmark environment unavailable; running without TFRA\n{proc.stderr[-1500:]}", file=sys.stderr)
        return
    os.environ[IN_ENV] = "1"
    env = worker_env()
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]
    os.execv(python, [python, "-m", "benchmarks.peers", *argv])


def _load() -> List[float]:
    return list(os.getloadavg())


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for dist in ("tensorflow-cpu", "tensorflow", "tensorflow-recommenders-addons", "horovod", "numpy", "numba",
                 "rocksdict", "matplotlib", "py-spy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _timed_rounds(workers: Dict[str, Worker], workload: str, steps: int, rounds: int, log) -> Dict[str, List[float]]:
    """Seconds of each round per system; round r starts at the r-th system (rotation)."""
    names = list(workers)
    seconds: Dict[str, List[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            seconds[name].append(workers[name].request(op="run", workload=workload, steps=steps)["seconds"])
        log(f"{workload} round {r + 1}/{rounds}: " + ", ".join(f"{n} {steps / s[-1]:.2f}" for n, s in seconds.items())
            + " steps/s")
    return seconds


def _summarize(workload: str, seconds: Dict[str, List[float]], steps: int, settings: Settings) -> dict:
    per_step = settings.ids_per_step if workload == "micro" else settings.batch_size
    unit = "keys_per_s" if workload == "micro" else "samples_per_s"
    systems = {}
    for name, secs in seconds.items():
        rates = [steps / s for s in secs]
        systems[name] = {"steps_per_s": statistics.median(rates), unit: statistics.median(rates) * per_step,
                         "round_steps_per_s": rates, "rounds": len(rates), "steps_per_round": steps}
    if BASE in systems:
        base = systems[BASE]
        for name, entry in systems.items():
            entry["ratio_to_plain_tf"] = entry["steps_per_s"] / base["steps_per_s"]
            entry["ratio_to_plain_tf_paired"] = statistics.median(
                a / b for a, b in zip(entry["round_steps_per_s"], base["round_steps_per_s"]))
    return {"unit": unit, "per_step": per_step, "systems": systems}


def _targets(workloads: dict) -> dict:
    out = {}
    for workload, refs in TARGETS.items():
        entries = workloads.get(workload, {}).get("systems", {})
        for ref, target in refs.items():
            key = f"{workload}_mx_rec_hbm_over_{ref}"
            if "mx_rec_hbm" in entries and ref in entries:
                ratio = entries["mx_rec_hbm"]["steps_per_s"] / entries[ref]["steps_per_s"]
                out[key] = {"target": target, "ratio": ratio, "met": ratio >= target,
                            # what the ratio would be if mx_rec ran exactly as fast as plain TF (the upper bound)
                            "ratio_if_as_fast_as_plain_tf": entries[BASE]["steps_per_s"] / entries[ref]["steps_per_s"]
                            if BASE in entries else None}
            else:
                out[key] = {"target": target, "ratio": None, "met": None, "note": "not measured in this run"}
    return out


def _memory(settings: Settings, systems: Sequence[str], log) -> dict:
    """Peak RSS of each probe over the baseline probe's, with each byte's owner (``memory.measure``)."""
    from benchmarks.peers.memory import measure

    return measure(settings, systems, log)


def _profiles(workers: Dict[str, Worker], settings: Settings, workloads: dict, log) -> dict:
    """Op traces of mx_rec HBM and plain TF (``steps`` steps), py-spy of mx_rec HBM for about
    ``settings.profile_seconds`` (steps from the measured rate)."""
    from benchmarks.peers.profiling import pyspy_profile

    out: Dict[str, dict] = {}
    pyspy = str(Path(sys.executable).parent / "py-spy")
    for workload in WORKLOADS:
        steps = settings.micro_steps if workload == "micro" else settings.dlrm_steps
        rate = workloads[workload]["systems"].get("mx_rec_hbm", {}).get("steps_per_s", 1.0)
        spy_steps = max(steps, math.ceil(settings.profile_seconds * rate))
        entry = out.setdefault(workload, {})
        for name in ("mx_rec_hbm", BASE):
            if name in workers:
                entry[f"op_trace_{name}"] = workers[name].request(op="trace", workload=workload, steps=steps)
        if "mx_rec_hbm" in workers:
            w = workers["mx_rec_hbm"]
            if Path(pyspy).exists():
                entry["pyspy_mx_rec_hbm"], _ = pyspy_profile(
                    pyspy, w.pid, lambda: w.request(op="run", workload=workload, steps=spy_steps)["seconds"], REPO)
            else:
                entry["pyspy_mx_rec_hbm"] = {"error": f"py-spy not found at {pyspy}"}
        log(f"profiled {workload}")
    return out


def run(settings: Settings, systems: Sequence[str], profile: bool, log=print) -> dict:
    """Everything but writing: returns the result dict (see the module docstring)."""
    from benchmarks.lookup_update import _mx_rec_source, machine_info
    from benchmarks.peers import data

    started = time.perf_counter()
    load_before = _load()
    workers: Dict[str, Worker] = {}
    with tempfile.TemporaryDirectory(prefix="mxrec_peers_") as tmp:
        pool_dir = Path(tmp) / "pool"
        pool_facts = data.generate(settings, pool_dir)
        log(f"pool: {settings.pool_batches} batches of {settings.batch_size}x{settings.fields} ids, "
            f"{pool_facts['distinct_keys_per_batch_max']} distinct keys per batch at most")
        sizes = {s: tier_sizes(MX_REC_MODES[s], settings.num_keys, pool_facts["distinct_keys_per_batch_max"])
                 for s in systems if s in MX_REC_MODES}
        settings_json = json.dumps(dataclasses.asdict(settings))
        try:
            for name in systems:
                workers[name] = Worker(name, WORKLOADS, pool_dir, settings_json, json.dumps(sizes.get(name, {})),
                                       Path(tmp) / f"{name}.log")
                workers[name].wait_ready()
                log(f"worker {name} ready")
            workloads, load_during = {}, {}
            for workload in WORKLOADS:
                steps = settings.micro_steps if workload == "micro" else settings.dlrm_steps
                seconds = _timed_rounds(workers, workload, steps, settings.rounds, log)
                load_during[workload] = _load()
                workloads[workload] = _summarize(workload, seconds, steps, settings)
                for name, w in workers.items():
                    entry = workloads[workload]["systems"][name]
                    fp = w.ready["first_pass"][workload]
                    entry["first_pass_steps_per_s"] = fp["steps"] / fp["seconds"] if fp["seconds"] else None
                    entry["table"] = w.request(op="stats", workload=workload)
            profiles = _profiles(workers, settings, workloads, log) if profile else {"skipped": "--no-profile"}
        finally:
            close_all(list(workers.values()))
    memory = _memory(settings, systems, log)
    bench_env = os.environ.get(IN_ENV, "")
    tfra_note = {"ran": "tfra" in systems, "version": _versions()["tensorflow-recommenders-addons"]}
    if not bench_env.startswith("1"):
        tfra_note.update(ran=False, reason=bench_env[3:] or "not run in the benchmark environment")
    elif "tfra" not in systems:
        tfra_note["reason"] = "left out by --systems"
    return {
        "benchmark": "peers",
        "command": os.environ.get(COMMAND, shlex.join([sys.executable, "-m", "benchmarks.peers"])),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": time.perf_counter() - started,
        "settings": dict(dataclasses.asdict(settings), ids_per_step=settings.ids_per_step),
        "mx_rec_sizes": sizes,
        "data": pool_facts,
        "machine": dict(machine_info(), load_average_before=load_before, load_average_after_rounds=load_during,
                        load_average_after=_load()),
        "versions": _versions(),
        "source": _mx_rec_source(),
        "tfra": tfra_note,
        "systems_run": list(systems),
        "workloads": workloads,
        "targets": _targets(workloads),
        "memory": memory,
        "profiles": profiles,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    _enter_bench_env(argv)
    settings = PRESETS[args.preset]
    if args.rounds is not None:
        settings = dataclasses.replace(settings, rounds=args.rounds)
    systems = [s for s in SYSTEMS if s in args.systems.split(",")]
    if not os.environ.get(IN_ENV, "").startswith("1") and "tfra" in systems:
        systems.remove("tfra")
    result = run(settings, systems, profile=not args.no_profile, log=lambda m: print(f"[peers] {m}", flush=True))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    from benchmarks.peers import report

    result["chart"] = report.write_chart(result, args.output.with_suffix(".png"))
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.readme is not None:
        report.update_readme(args.readme, args.output, REPO)
    print(report.summary(result))
    print(f"[peers] written: {args.output}" + (f", {result['chart']}" if result["chart"] else ""))
    return 0
