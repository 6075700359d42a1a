"""Doors kept for Rec SDK scripts: ``from mx_rec.core import create_table, sparse_lookup`` (loaded on first use)."""
import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("create_table", "sparse_lookup"):
        return getattr(importlib.import_module(f"{__name__}.embedding"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
