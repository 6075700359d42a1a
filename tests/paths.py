"""Paths tests share: the repo root, the venv's python, and ../shared/data."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SHARED_DATA = REPO.parent / "shared" / "data"
