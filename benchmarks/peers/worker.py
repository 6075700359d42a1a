"""One system's worker process: builds its graphs once, then steps them when the parent asks.

Started by ``run.py`` as ``python -m benchmarks.peers.worker --system S --workloads micro,dlrm
--pool DIR --settings JSON --sizes JSON`` with the checkout and ``mx_rec_py`` on PYTHONPATH. Protocol: one JSON object a line; replies go to the original
stdout, while fd 1 is pointed at stderr so that library prints cannot corrupt it.

Requests (``op``) and replies:
    ready (sent unasked once built): {"ready": true, "first_pass": {workload: {"steps", "seconds"}}}
    {"op": "run", "workload": W, "steps": N}   -> {"seconds": float}   N steps, wall time
    {"op": "stats", "workload": W}             -> the table's counters (keys held, tier hits)
    {"op": "trace", "workload": W, "steps": N} -> per-op profile of N steps (``profiling.op_profile``)
    {"op": "quit"}                             -> {"bye": true}, then exit
Any failure: {"error": "..."} and exit status 1.
"""
import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _protocol_stream():
    """A private copy of stdout for replies; fd 1 then points at stderr."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


class _Stepper:
    """Cycles one built graph through the pool (batch ``cursor % pool_batches``)."""

    def __init__(self, built, pool):
        self.built = built
        self.pool = pool
        self.cursor = 0
        self.feeds = built.feeds

    def feed(self):
        i = self.cursor % self.pool["ids"].shape[0]
        self.cursor += 1
        return {self.feeds[name]: self.pool[name][i] for name in ("ids", "dense", "labels")}

    def run(self, steps: int, **run_kwargs) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            self.built.session.run(self.built.train_op, feed_dict=self.feed(), **run_kwargs)
        return time.perf_counter() - start


def main() -> int:
    proto = _protocol_stream()
    parser = argparse.ArgumentParser()
    parser.add_argument("--system", required=True)
    parser.add_argument("--workloads", required=True)
    parser.add_argument("--pool", type=Path, required=True)
    parser.add_argument("--settings", required=True, help="Settings as JSON")
    parser.add_argument("--sizes", default="{}", help="mx_rec create_table sizes as JSON")
    args = parser.parse_args()

    def reply(obj) -> None:
        proto.write(json.dumps(obj) + "\n")

    try:
        from benchmarks.peers.systems import TF_OPS_SYSTEMS

        if args.system in TF_OPS_SYSTEMS:
            os.environ["MXREC_FUSED_KERNELS"] = "0"
        import tensorflow as tf

        from benchmarks.peers import data, profiling, systems
        from benchmarks.peers.settings import Settings

        tf.compat.v1.disable_eager_execution()
        settings = Settings(**json.loads(args.settings))
        pool = data.load(args.pool)
        ssd_dir = tempfile.mkdtemp(prefix=f"peers_ssd_{args.system}_")
        atexit.register(shutil.rmtree, ssd_dir, True)
        steppers, first_pass = {}, {}
        for workload in args.workloads.split(","):
            built = systems.build(args.system, workload, settings, json.loads(args.sizes), ssd_dir)
            stepper = steppers[workload] = _Stepper(built, pool)
            stepper.run(1)  # session set-up, kernel caches: left out of the first pass
            n = pool["ids"].shape[0] - 1
            first_pass[workload] = {"steps": n, "seconds": stepper.run(n)}  # mx_rec / TFRA insert the keys
            stepper.run(settings.warmup_steps)
        reply({"ready": True, "pid": os.getpid(), "first_pass": first_pass})
        for line in sys.stdin:
            request = json.loads(line)
            op = request["op"]
            if op == "quit":
                reply({"bye": True})
                break
            stepper = steppers[request["workload"]]
            if op == "run":
                reply({"seconds": stepper.run(int(request["steps"]))})
            elif op == "stats":
                reply(stepper.built.stats())
            elif op == "trace":
                reply(profiling.op_profile(stepper, int(request["steps"])))
            else:
                raise ValueError(f"unknown op {op!r}")
    except Exception as err:  # noqa: BLE001 - reported to the parent, which names the system
        traceback.print_exc()
        reply({"error": f"{type(err).__name__}: {err}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
