"""Graph rewriting: one pass a module, applied by an explicit call (``modifier``).

Rec SDK's documented imports ``from mx_rec.graph import LookupSubgraphSlicerHook, GraphModifierHook``
(and the other hooks) work; they load on first use, so importing this package builds nothing.
"""
import importlib

_HOOKS = {"GraphModifierHook": "mx_rec.graph.modifier", "modify_graph_and_start_emb_cache": "mx_rec.graph.modifier",
          "LookupSubgraphSlicerHook": "mx_rec.graph.hooks", "OrphanLookupKeySlicerHook": "mx_rec.graph.hooks",
          "ACGPushOpsToDatasetHook": "mx_rec.graph.acg_push_ops"}


def __getattr__(name):
    if name in _HOOKS:
        return getattr(importlib.import_module(_HOOKS[name]), name)
    raise AttributeError(f"module 'mx_rec.graph' has no attribute {name!r}")
