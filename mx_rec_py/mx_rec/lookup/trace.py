"""Tracing id tensors back to the dataset iterator that produces them.

Modify-graph mode accepts ids computed from an ``IteratorGetNext`` op's outputs by pure ops
(slicing, reshaping, casting, constants): those ops can be replayed inside the rebuilt input
pipeline. Anything else on the way (a placeholder, a variable, a stateful op) is an error.
"""
from typing import Dict, List, Set

import tensorflow as tf

GET_NEXT_TYPES = ("IteratorGetNext", "IteratorGetNextSync")


def _is_stateful(op: tf.Operation) -> bool:
    try:
        return bool(op.op_def.is_stateful)
    except (AttributeError, ValueError):
        return True


def _walk(tensor: tf.Tensor, what: str) -> Dict[str, tf.Operation]:
    """Ops between the iterator(s) and ``tensor`` (name -> op), iterators included; ValueError on a bad source."""
    seen: Dict[str, tf.Operation] = {}
    stack = [tensor.op]
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen[op.name] = op
        if op.type in GET_NEXT_TYPES:
            continue
        if _is_stateful(op) or (not op.inputs and op.type != "Const"):
            culprit = f"'{op.name}' (op type {op.type})"
            if op.type == "ReadVariableOp":
                culprit = f"variable '{op.inputs[0].op.name}'"
            raise ValueError(f"{what}: ids must come from a dataset iterator's get_next() through stateless ops, "
                             f"but they depend on {culprit}; feed them from "
                             "tf.compat.v1.data.make_initializable_iterator(dataset).get_next()")
        stack.extend(t.op for t in op.inputs)
    return seen


def iterator_source(tensor: tf.Tensor, what: str) -> tf.Operation:
    """The one ``IteratorGetNext`` op that ``tensor`` is computed from.

    Raises:
        ValueError: ``tensor`` does not come from an iterator, depends on a placeholder, variable
            or stateful op on the way, or mixes several iterators; ``what`` starts the message.
    """
    sources = [op for op in _walk(tensor, what).values() if op.type in GET_NEXT_TYPES]
    if not sources:
        raise ValueError(f"{what}: ids '{tensor.name}' do not come from a dataset iterator; pass "
                         "iterator.get_next() tensors (or use FeatureSpec mode)")
    if len(sources) > 1:
        raise ValueError(f"{what}: ids '{tensor.name}' mix several iterators ({sorted(op.name for op in sources)})")
    return sources[0]


def replay_ops(tensor: tf.Tensor, source: tf.Operation) -> List[tf.Operation]:
    """The ops computing ``tensor`` from ``source``'s outputs, in topological order (``source`` excluded)."""
    ops = _walk(tensor, f"ids '{tensor.name}'")
    order: List[tf.Operation] = []
    done: Set[str] = {source.name}

    def visit(op: tf.Operation) -> None:
        stack = [(op, False)]
        while stack:
            current, expanded = stack.pop()
            if current.name in done:
                continue
            if expanded:
                done.add(current.name)
                order.append(current)
                continue
            stack.append((current, True))
            stack.extend((t.op, False) for t in current.inputs if t.op.name in ops and t.op.name not in done)

    visit(tensor.op)
    return order


def replay(tensor: tf.Tensor, source: tf.Operation, outputs: List[tf.Tensor]) -> tf.Tensor:
    """Recompute ``tensor`` in the current (function) graph from ``outputs``, stand-ins for ``source``'s."""
    if tensor.op is source:
        return outputs[tensor.value_index]
    ops = replay_ops(tensor, source)
    graph_def = tf.compat.v1.GraphDef()
    used = set()
    for op in ops:
        node = graph_def.node.add()
        node.CopyFrom(op.node_def)
        node.ClearField("device")
        kept = [i for i in node.input if not i.startswith("^")]  # ordering only: irrelevant for pure ops
        del node.input[:]
        node.input.extend(kept)
        used.update(t.value_index for t in op.inputs if t.op is source)
    input_map = {f"{source.name}:{i}": outputs[i] for i in used}
    (result,) = tf.graph_util.import_graph_def(graph_def, input_map=input_map, return_elements=[tensor.name],
                                              name="replayed")
    return result
