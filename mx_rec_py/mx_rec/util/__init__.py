"""Doors kept for Rec SDK scripts (``initialize``, ``ops``, ``variable``, ``communication``, ...).

``import mx_rec.util`` then ``mx_rec.util.communication.hccl_ops.get_rank_id()`` works as in Rec SDK;
the submodules load on first use, so ``mx_rec.util.log`` stays light.
"""
import importlib
from typing import Any

_LAZY = ("communication", "tf_version_adapter", "initialize", "ops", "variable")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{name}")
        if name == "communication":
            importlib.import_module(f"{__name__}.communication.hccl_ops")
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
