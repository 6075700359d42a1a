"""Paths tests share: the repo root, the venv's python, and ../shared/data."""
import os
import sys
from pathlib import Path
from typing import Collection, Dict, Mapping

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SHARED_DATA = REPO.parent / "shared" / "data"


def require_shared(*paths: Path) -> None:
    """Fail (not skip) when a real data sample is missing: CI and developers have ../shared beside
    the repository, so a missing file means a broken checkout or path, which must not pass silently."""
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        import pytest
        pytest.fail(f"shared data sample(s) missing: {missing}; tests read them from ../shared/data beside the "
                    "repository (see ../shared/data/SOURCES.md)")


def launch_env(extra: Mapping[str, str], drop: Collection[str] = ()) -> Dict[str, str]:
    """This process's environment without the variables in ``drop``, the venv first on PATH (so
    ``python`` and ``horovodrun`` are the project's), ``PYTHON`` set to it, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHON"] = PYTHON
    env.update(extra)
    return env
