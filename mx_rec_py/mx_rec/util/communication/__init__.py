"""Door kept for Rec SDK scripts: ``mx_rec.util.communication.hccl_ops`` (rank queries, collectives)."""
import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    if name == "hccl_ops":
        return importlib.import_module(f"{__name__}.hccl_ops")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
