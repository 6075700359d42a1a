"""The parent's side of the worker processes: start one per system, send requests, read replies."""
import json
import os
import select
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
REPLY_TIMEOUT_S = 900.0


def worker_env() -> Dict[str, str]:
    """This environment with the checkout (the zoo imports as ``models``) and mx_rec_py on PYTHONPATH."""
    env = dict(os.environ)
    paths = [REPO, REPO / "mx_rec_py"]
    env["PYTHONPATH"] = os.pathsep.join([str(p) for p in paths] + [p for p in [env.get("PYTHONPATH")] if p])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


class WorkerError(RuntimeError):
    """A worker failed or stopped answering; the message names the system and ends with its log."""


class Worker:
    """One system's worker (``benchmarks.peers.worker``); its stderr goes to ``log_path``."""

    def __init__(self, system: str, workloads: Sequence[str], pool: Path, settings_json: str, sizes_json: str,
                 log_path: Path, python: str = sys.executable) -> None:
        self.system = system
        self.log_path = log_path
        self._log = open(log_path, "w", encoding="utf-8")
        cmd = [python, "-m", "benchmarks.peers.worker", "--system", system, "--workloads", ",".join(workloads),
               "--pool", str(pool), "--settings", settings_json, "--sizes", sizes_json]
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=worker_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True, bufsize=1)
        self.ready: Optional[dict] = None

    def _fail(self, what: str) -> WorkerError:
        self._log.flush()
        tail = self.log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        return WorkerError(f"worker {self.system}: {what}\n--- log tail ({self.log_path}) ---\n{tail}")

    def read(self, timeout: float = REPLY_TIMEOUT_S) -> dict:
        """The next reply; raises WorkerError on an error reply, an exit or a timeout."""
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise self._fail(f"no reply within {timeout:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            raise self._fail(f"exited with status {self.proc.wait()}")
        reply = json.loads(line)
        if "error" in reply:
            raise self._fail(reply["error"])
        return reply

    def wait_ready(self) -> dict:
        self.ready = self.read()
        return self.ready

    def request(self, **request) -> dict:
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise self._fail("its stdin closed") from None
        return self.read()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        """Ask the worker to quit; kill it if it does not within 30 s."""
        if self.proc.poll() is None:
            try:
                self.request(op="quit")
                self.proc.wait(timeout=30)
            except (WorkerError, OSError, ValueError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def close_all(workers: List[Worker]) -> None:
    for w in workers:
        w.close()
