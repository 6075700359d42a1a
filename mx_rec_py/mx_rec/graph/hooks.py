"""Rec SDK's slicer hooks for Estimator / ``MonitoredSession`` flows with graph modification.

Rec SDK documents both as hooks to pass *before* ``GraphModifierHook``:

- ``LookupSubgraphSlicerHook(op_types)``: ops of the given types in a lookup's key subgraph (and
  the ops they need) run in the CPU prefetch stage instead of the training step.
- ``OrphanLookupKeySlicerHook()``: lookups whose keys do not come from a dataset ("orphan" keys)
  are supported in graph-modification mode.

What they do here, with our modify-graph pass (``mx_rec.graph.modifier``):

- The pass already replays, inside the rebuilt input pipeline, every stateless op between the
  iterator's ``get_next()`` and a ``modify_graph=True`` lookup's ids, whatever its type, for the
  lookup's own use. ``LookupSubgraphSlicerHook`` finds the ops of ``op_types`` in each lookup's
  key subgraph (``found``: table name -> ops) and pushes their outputs into the pipeline too
  (``graph.push``), so that every reader of them, the dense part of the model included, reads
  the pipeline's copy, and the ops leave the training step: Rec SDK's behaviour.
- An orphan lookup would make the pass raise ("ids must come from a dataset iterator").
  ``sparse_lookup(..., modify_graph=True)`` already refuses ids without an iterator when the
  lookup is built (naming the table and the op), so such lookups are written with
  ``modify_graph=False`` here (their key processing then runs in the step). For key stages that
  reach the pass untraced all the same (recorded through ``mx_rec.lookup.key_stage``),
  ``OrphanLookupKeySlicerHook`` keeps their processing in the training step instead of failing,
  so the rest of the graph is still modified; ``orphans`` lists their tables.
"""
from typing import Dict, List, Optional, Sequence

import tensorflow as tf

from mx_rec.graph.push import push_to_pipeline
from mx_rec.lookup.key_stage import KeyStage, recorded_stages
from mx_rec.lookup.merge import build_pending_lookups
from mx_rec.lookup.trace import iterator_source, replay_ops
from mx_rec.system.log import logger


def lookup_iterators(graph: tf.Graph) -> List[tf.Operation]:
    """The iterators (``IteratorGetNext`` ops) that feed a pending ``modify_graph`` lookup of ``graph``."""
    out = []
    for stage in _pending_stages(graph):
        try:
            source = iterator_source(stage.keys, f"table '{stage.table_name}'")
        except ValueError:
            continue
        if source not in out:
            out.append(source)
    return out


def _pending_stages(graph: tf.Graph) -> List[KeyStage]:
    build_pending_lookups(graph)  # multi-lookup: merged lookups make their key stages when built
    return [s for s in recorded_stages(graph) if s.modify_graph and not s.moved]


def key_subgraph_ops(graph: tf.Graph, op_types: Optional[Sequence[str]] = None) -> Dict[str, List[tf.Operation]]:
    """Ops of ``op_types`` (None: of any type) between an iterator and each pending ``modify_graph`` lookup's ids.

    Returns:
        table name -> those ops (lookups whose ids do not come from an iterator are skipped).
    """
    wanted = None if op_types is None else set(op_types)
    found: Dict[str, List[tf.Operation]] = {}
    for stage in _pending_stages(graph):
        try:
            source = iterator_source(stage.keys, f"table '{stage.table_name}'")
        except ValueError:
            continue
        ops = [op for op in replay_ops(stage.keys, source) if wanted is None or op.type in wanted]
        if ops:
            found.setdefault(stage.table_name, []).extend(op for op in ops if op not in found[stage.table_name])
    return found


class LookupSubgraphSlicerHook(tf.compat.v1.train.SessionRunHook):
    """Move ``op_types`` ops of the lookups' key subgraphs, for every reader, into the input pipeline that
    ``GraphModifierHook`` (pass it after this hook) rebuilds (see the module docstring).

    Args:
        op_types: op type names, e.g. ``["StringToNumber"]``.
        full_graph: the graph (default: the default graph when the session begins).

    Example:
        >>> hooks = [LookupSubgraphSlicerHook(op_types=["StringToNumber"]), GraphModifierHook()]  # doctest: +SKIP
        >>> estimator.train(input_fn, hooks=hooks)                                                # doctest: +SKIP
    """

    def __init__(self, op_types: List[str], full_graph: Optional[tf.Graph] = None) -> None:
        if not isinstance(op_types, list) or not all(isinstance(t, str) and t for t in op_types):
            raise TypeError(f"LookupSubgraphSlicerHook: op_types must be a list of op type names, got {op_types!r}")
        self._op_types = list(op_types)
        self._full_graph = full_graph
        self.found: Dict[str, List[tf.Operation]] = {}

    def begin(self) -> None:
        graph = self._full_graph or tf.compat.v1.get_default_graph()
        self.found = key_subgraph_ops(graph, self._op_types)
        if not self.found:
            logger.info("LookupSubgraphSlicerHook: no %s op in any lookup's key subgraph: nothing to slice",
                        self._op_types)
        for table, ops in sorted(self.found.items()):
            for op in ops:
                for out in op.outputs:
                    push_to_pipeline(out)
            logger.info("LookupSubgraphSlicerHook: table '%s': %s run in the input pipeline after graph "
                        "modification", table, sorted(op.name for op in ops))


class OrphanLookupKeySlicerHook(tf.compat.v1.train.SessionRunHook):
    """Lets graph modification accept lookups whose ids do not come from a dataset iterator: their key
    processing stays in the training step (see the module docstring). Pass it before ``GraphModifierHook``.

    Args:
        full_graph: the graph (default: the default graph when the session begins).
    """

    def __init__(self, full_graph: Optional[tf.Graph] = None) -> None:
        self._full_graph = full_graph
        self.orphans: List[str] = []

    def begin(self) -> None:
        graph = self._full_graph or tf.compat.v1.get_default_graph()
        self.orphans = []
        for stage in _pending_stages(graph):
            try:
                iterator_source(stage.keys, f"table '{stage.table_name}'")
            except ValueError as err:
                stage.modify_graph = False  # processed in the step, as without modify_graph
                self.orphans.append(stage.table_name)
                logger.info("OrphanLookupKeySlicerHook: a lookup of table '%s' keeps its key processing in the "
                            "training step (%s)", stage.table_name, err)
