"""``ACGPushOpsToDatasetHook``: Rec SDK's hook that pushes string-parsing ops into the input pipeline.

In Rec SDK (automatic graph modification, Estimator mode) this hook finds, below the iterator's
``get_next()``, the ops of types ``StringSplit`` / ``StringToNumber`` and the ops whose name
contains ``ACG_PUSH_NODE``, and moves them with what they need into the dataset, so that the
training step starts from numbers.

Here the same: the hook pushes the outputs of those ops into the input pipeline (``graph.push``)
and ``GraphModifierHook`` (pass it after this hook) computes them in the ``tf.data`` map of the
pipeline it rebuilds, every reader (lookups and the dense part alike) reading the pipeline's
copy. Our pass rebuilds only the pipelines of iterators that feed a ``modify_graph=True`` lookup:
ops below another iterator stay in the step (``found`` says which, and the log names them).
With ``dump_graph=True`` the graph is written as it is when the session begins
(``acg_push_ops.pbtxt`` under ``$MXREC_GRAPH_DUMP_DIR``, default ``./mx_rec_graph``).
"""
import os
from typing import Dict, List

import tensorflow as tf

from mx_rec.graph.hooks import lookup_iterators
from mx_rec.graph.push import push_to_pipeline
from mx_rec.lookup.trace import GET_NEXT_TYPES, iterator_source
from mx_rec.system.log import logger

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
    """Pushes the ops Rec SDK pushes into the dataset; ``GraphModifierHook`` (after it) moves them.

    Args:
        dump_graph: write the graph when the session begins.

    Attributes (after ``begin``):
        found: op name -> "pipeline" (moved by ``GraphModifierHook``) or "step" (stays in the step).

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
        rebuilt = set(lookup_iterators(graph))
        self.found = {}
        for op in ops_to_push(graph):
            pushed = [push_to_pipeline(out) for out in op.outputs]
            moved = all(pushed) and iterator_source(op.outputs[0], op.name) in rebuilt if op.outputs else False
            self.found[op.name] = "pipeline" if moved else "step"
            logger.info("ACGPushOpsToDatasetHook: '%s' %s", op.name,
                        "runs in the input pipeline after graph modification" if moved else
                        "stays in the training step (not below an iterator that feeds a modify_graph lookup, or "
                        "not computable from it alone)")
