"""``ACGPushOpsToDatasetHook``: Rec SDK's hook that pushes string-parsing ops into the input pipeline.

In Rec SDK (automatic graph modification, Estimator mode) this hook finds, below the iterator's
``get_next()``, the ops of types ``StringSplit`` / ``StringToNumber`` and the ops whose name
contains ``ACG_PUSH_NODE``, and moves them with what they need into the dataset, so that the
training step starts from numbers.

Here: ``GraphModifierHook`` (pass it after this hook) already replays every stateless op between
``get_next()`` and a ``modify_graph=True`` lookup's ids inside the rebuilt input pipeline, so those
ops, when they feed lookups, leave the step anyway. This hook pushes nothing itself: it finds the
ops Rec SDK would push (``found``, by name), logs which of them feed lookups (moved by the graph
modification) and which feed only the dense part of the model (they stay in the step here). With
``dump_graph=True`` it writes the graph as it is when the session begins
(``acg_push_ops.pbtxt`` under ``$MXREC_GRAPH_DUMP_DIR``, default ``./mx_rec_graph``).
"""
import os
from typing import Dict, List

import tensorflow as tf

from mx_rec.graph.hooks import key_subgraph_ops
from mx_rec.graph.trace import GET_NEXT_TYPES
from mx_rec.util.log import logger

PUSHED_TYPES = ("StringSplit", "StringSplitV2", "StringToNumber")
PUSHED_NAME_MARK = "ACG_PUSH_NODE"
DUMP_DIR_ENV = "MXREC_GRAPH_DUMP_DIR"


def ops_to_push(graph: tf.Graph) -> List[tf.Operation]:
    """Ops below an ``IteratorGetNext`` of ``graph`` that Rec SDK's hook pushes (see the module docstring)."""
    seen, order = set(), []
    stack = [op for op in graph.get_operations() if op.type in GET_NEXT_TYPES]
    while stack:
        op = stack.pop()
        for out in op.outputs:
            for consumer in out.consumers():
                if consumer.name not in seen:
                    seen.add(consumer.name)
                    stack.append(consumer)
                    if consumer.type in PUSHED_TYPES or PUSHED_NAME_MARK in consumer.name:
                        order.append(consumer)
    return sorted(order, key=lambda o: o.name)


class ACGPushOpsToDatasetHook(tf.compat.v1.train.SessionRunHook):
    """Finds the ops Rec SDK pushes into the dataset; the graph modification moves those that feed lookups.

    Args:
        dump_graph: write the graph when the session begins.

    Attributes (after ``begin``):
        found: op name -> "lookup" (moved into the pipeline by ``GraphModifierHook``) or "dense" (stays).

    Example:
        >>> hooks = [ACGPushOpsToDatasetHook(), GraphModifierHook()]  # doctest: +SKIP
        >>> estimator.train(input_fn, hooks=hooks)                     # doctest: +SKIP
    """

    def __init__(self, dump_graph: bool = False) -> None:
        if not isinstance(dump_graph, bool):
            raise TypeError(f"ACGPushOpsToDatasetHook: dump_graph must be a bool, got {dump_graph!r}")
        self._dump_graph = dump_graph
        self.found: Dict[str, str] = {}

    def begin(self) -> None:
        graph = tf.compat.v1.get_default_graph()
        if self._dump_graph:
            folder = os.environ.get(DUMP_DIR_ENV, os.path.join(os.getcwd(), "mx_rec_graph"))
            os.makedirs(folder, exist_ok=True)
            tf.io.write_graph(graph.as_graph_def(), folder, "acg_push_ops.pbtxt", as_text=True)
        on_lookups = {op.name for ops in key_subgraph_ops(graph).values() for op in ops}
        self.found = {op.name: "lookup" if op.name in on_lookups else "dense" for op in ops_to_push(graph)}
        for name, where in sorted(self.found.items()):
            if where == "lookup":
                logger.info("ACGPushOpsToDatasetHook: '%s' feeds a lookup: graph modification runs it in the "
                            "input pipeline", name)
            else:
                logger.info("ACGPushOpsToDatasetHook: '%s' feeds only the dense part: it stays in the training "
                            "step here", name)
