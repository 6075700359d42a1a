"""Where a step's time goes: TF's per-op trace (in the worker) and py-spy samples (from the parent).

- :func:`op_profile` runs steps with ``RunOptions(trace_level=FULL_TRACE)`` and sums each op's
  duration (``all_end_rel_micros``; ops run on 2 threads, so the sum can exceed the wall time).
  The host-side key work of mx_rec shows up as its ``PyFunc`` / ``EagerPyFunc`` ops
  (``tf.numpy_function``).
- :func:`pyspy_profile` samples a worker with py-spy while it runs steps, and folds the stacks into
  self time per function and inclusive time per mx_rec function (``file:function`` -> share of
  samples; ``share_of_wall`` divides by rate x seconds, i.e. the share of the wall time one thread
  spent there). py-spy leaves idle threads out, and without ``--native`` it sees Python frames only:
  the main thread waiting in ``session.run`` while TF's C++ kernels run is mostly idle, so the samples
  are essentially the host-side Python / numba work (mx_rec's ``tf.numpy_function`` callbacks).
"""
import collections
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

TOP = 15


def _top(counter: Dict[str, float], total: float, unit_scale: float, steps: int, unit: str) -> List[dict]:
    rows = sorted(counter.items(), key=lambda kv: -kv[1])[:TOP]
    return [{"name": k, f"{unit}_per_step": v * unit_scale / steps, "share": v / total if total else 0.0}
            for k, v in rows]


def op_profile(stepper, steps: int) -> dict:
    """Trace ``steps`` steps of a worker's stepper; ops summed by type and by name (top 15 each)."""
    import tensorflow as tf

    by_type: Dict[str, float] = collections.Counter()
    by_name: Dict[str, float] = collections.Counter()
    graph = stepper.built.session.graph
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    wall = 0.0
    for _ in range(steps):
        metadata = tf.compat.v1.RunMetadata()
        wall += stepper.run(1, options=options, run_metadata=metadata)
        for dev in metadata.step_stats.dev_stats:
            for node in dev.node_stats:
                name = node.node_name.split(":")[0]
                try:
                    op_type = graph.get_operation_by_name(name).type
                except (KeyError, ValueError):
                    op_type = name  # _SOURCE, _Recv and the like
                by_type[op_type] += node.all_end_rel_micros
                by_name[name] += node.all_end_rel_micros
    total = sum(by_type.values())
    return {"steps": steps, "wall_ms_per_step": 1e3 * wall / steps, "op_ms_per_step_sum": total / 1e3 / steps,
            "by_type": _top(by_type, total, 1e-3, steps, "ms"), "by_name": _top(by_name, total, 1e-3, steps, "ms")}


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _frame_key(frame: str, repo: Path) -> str:
    """``func (path:line)`` -> ``relative/path.py:func`` (paths inside the checkout made relative)."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m.group("file")
    try:
        path = str(Path(path).resolve().relative_to(repo))
    except ValueError:
        parts = Path(path).parts
        path = "/".join(parts[parts.index("site-packages") + 1:]) if "site-packages" in parts else path
    return f"{path}:{m.group('func')}"


def fold_stacks(raw: str, repo: Path) -> dict:
    """py-spy ``--format raw`` text (``frame;frame;... count`` lines) -> self and inclusive shares."""
    self_time: Dict[str, int] = collections.Counter()
    inclusive: Dict[str, int] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame_key(f, repo) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        total += n
        self_time[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    mx_rec_inclusive = {k: v for k, v in inclusive.items() if k.startswith("mx_rec_py/")}
    return {"samples": total,
            "self": _top(self_time, total, 1.0, 1, "samples"),
            "mx_rec_inclusive": _top(mx_rec_inclusive, total, 1.0, 1, "samples")}


def pyspy_profile(pyspy: str, pid: int, run_steps: Callable[[], float], repo: Path, native: bool = False,
                  rate: int = 200) -> Tuple[dict, str]:
    """Sample process ``pid`` with py-spy while ``run_steps()`` runs; returns (folded shares, raw text)."""
    with tempfile.TemporaryDirectory(prefix="peers_pyspy_") as tmp:
        out = Path(tmp) / "raw.txt"
        cmd = [pyspy, "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate), "-o", str(out)]
        if native:
            cmd.append("--native")
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)  # attach
        seconds = run_steps()
        os.kill(spy.pid, signal.SIGINT)
        _, err = spy.communicate(timeout=60)
        raw = out.read_text() if out.exists() else ""
    if not raw:
        return {"error": f"py-spy wrote nothing: {err.strip()[-500:]}"}, ""
    folded = fold_stacks(raw, repo)
    possible = rate * seconds  # samples of one thread that is busy the whole time
    for key in ("self", "mx_rec_inclusive"):
        for entry in folded[key]:
            entry["share_of_wall"] = entry["samples_per_step"] / possible if possible else None
    folded.update(seconds=seconds, native=native, rate_hz=rate,
                  busy_python_share_of_wall=folded["samples"] / possible if possible else None)
    return folded, raw
