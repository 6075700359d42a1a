"""Run jobs on 1 rank (plain python) or N ranks (real processes under ``horovodrun --gloo``)."""
import os
import subprocess
from pathlib import Path
from typing import Dict, List, Sequence, Union

import numpy as np

from tests.paths import PYTHON, REPO

VENV_BIN = str(Path(PYTHON).parent)


def run_job(script: Union[Path, str], args: Sequence[str], ranks: int, timeout: int = 300,
            expect_ok: bool = True) -> subprocess.CompletedProcess:
    """Run ``script`` with ``args`` on ``ranks`` processes; asserts exit 0 unless ``expect_ok`` is False.

    ``script`` is a file, or a dotted module name run with ``python -m`` from the repository root
    (so a test module holding its own rank code can run itself: ``run_job(__name__, ...)``).
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    target = ["-m", script] if isinstance(script, str) else [str(script)]
    command = [PYTHON, *target, *map(str, args)]
    if ranks > 1:
        command = [f"{VENV_BIN}/horovodrun", "--gloo", "-np", str(ranks), "-H", f"localhost:{ranks}", *command]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if expect_ok:
        assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def merged_state(directory: Path, stem: str = "rank") -> Dict[str, np.ndarray]:
    """Every rank's dumped table state concatenated and sorted by key."""
    parts: List[Dict[str, np.ndarray]] = []
    paths = [directory / f"{stem}.npz"] if (directory / f"{stem}.npz").exists() else \
        sorted(directory.glob(f"{stem}[0-9]*.npz"))
    for path in paths:
        with np.load(path) as data:
            parts.append({k: data[k] for k in data.files})
    keys = np.concatenate([p["keys"] for p in parts])
    order = np.argsort(keys)
    out = {"keys": keys[order], "losses": parts[0]["losses"], "ranks": int(parts[0]["ranks"])}
    for name in ("embeddings", "m", "v"):
        out[name] = np.concatenate([p[name] for p in parts])[order]
    stat_keys = np.concatenate([p["stat_keys"] for p in parts])
    stat_order = np.argsort(stat_keys)
    out["stat_keys"] = stat_keys[stat_order]
    out["counts"] = np.concatenate([p["counts"] for p in parts])[stat_order]
    out["parts"] = parts
    return out


def assert_same_tables(a: Dict[str, np.ndarray], b: Dict[str, np.ndarray], atol: float) -> None:
    np.testing.assert_array_equal(a["keys"], b["keys"])
    np.testing.assert_array_equal(a["stat_keys"], b["stat_keys"])
    np.testing.assert_array_equal(a["counts"], b["counts"])
    for name in ("embeddings", "m", "v"):
        np.testing.assert_allclose(a[name], b[name], atol=atol, rtol=0, err_msg=name)
