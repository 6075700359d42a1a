"""Cut a trained model's dense graph out of its MetaGraphDef and freeze its weights.

Surgery on the ``.meta`` file (no model code runs, no Horovod needed):

1. every batch entry of the prediction signature (``signature.set_prediction``) becomes a
   placeholder ``mxrec_inference/input/<key>`` (the iterator's outputs are cut off);
2. every recorded ``sparse_lookup`` output (``mx_rec_lookups``, an Identity ``.../embeddings``)
   becomes a placeholder of the same name: the local model feeds rows from the merged tables;
3. the graph is pruned to the prediction and the ids tensors of the lookups it uses;
4. dense variables become constants read from the TF checkpoint.

The result may hold no Horovod, py_func or iterator op; :class:`ExportError` names any that remain.
"""
import re
from typing import Any, Dict, List, Set, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2, node_def_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from mx_rec.inference.signature import collection_strings, meta_signature
from mx_rec.lookup.registry import LOOKUP_COLLECTION

INPUT_SCOPE = "mxrec_inference/input/"
_FORBIDDEN = {"PyFunc", "PyFuncStateless", "EagerPyFunc", "IteratorGetNext", "IteratorGetNextSync", "IteratorV2",
              "Iterator", "AnonymousIteratorV2", "AnonymousIteratorV3", "OneShotIterator", "MakeIterator"}


class ExportError(RuntimeError):
    """The checkpoint cannot become a local model; the message names the file, tensor or op."""


def _node_of(tensor: str) -> str:
    return tensor.lstrip("^").split(":")[0]


def _canonical(tensor: str) -> str:
    return tensor if ":" in tensor else tensor + ":0"


def _placeholder(name: str, dtype: tf.DType, shape) -> node_def_pb2.NodeDef:
    node = node_def_pb2.NodeDef(name=name, op="Placeholder")
    node.attr["dtype"].type = dtype.as_datatype_enum
    if shape is not None:
        node.attr["shape"].shape.CopyFrom(tf.TensorShape(shape).as_proto())
    return node


def _rewire(graph_def: graph_pb2.GraphDef, signature: Dict[str, Any], lookups: List[Dict]) -> Dict[str, str]:
    """Steps 1 and 2 in place; returns batch key -> placeholder tensor name."""
    renamed, inputs, cut_nodes = {}, {}, set()
    for key, entry in signature["inputs"].items():
        node = _placeholder(INPUT_SCOPE + re.sub(r"[^A-Za-z0-9_.\-/]", "_", key), tf.as_dtype(entry["dtype"]),
                            entry["shape"])
        graph_def.node.append(node)
        inputs[key] = node.name + ":0"
        for tensor in [entry["tensor"], *entry.get("aliases", [])]:
            renamed[_canonical(tensor)] = inputs[key]
            cut_nodes.add(_node_of(tensor))
    outputs = {_node_of(lookup["output"]) for lookup in lookups}
    for node in graph_def.node:
        if node.name in outputs and node.op == "Identity":
            dtype = tf.as_dtype(node.attr["T"].type)
            node.CopyFrom(_placeholder(node.name, dtype, None))
            continue
        rewritten = []
        for name in node.input:
            if name.startswith("^"):
                if name[1:] not in cut_nodes:
                    rewritten.append(name)
            else:
                rewritten.append(renamed.get(_canonical(name), name))
        del node.input[:]
        node.input.extend(rewritten)
        node.device = ""
        if "_class" in node.attr:  # colocation with nodes that pruning removes
            del node.attr["_class"]
    return inputs


def _extract(graph_def: graph_pb2.GraphDef, tensors: List[str]) -> graph_pb2.GraphDef:
    """The nodes ``tensors`` depend on (data and control inputs), in their original order."""
    nodes = {n.name: n for n in graph_def.node}
    wanted, todo = set(), [_node_of(t) for t in tensors]
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        if name not in nodes:
            raise ExportError(f"tensor '{name}' named by the graph's records is not in its GraphDef")
        wanted.add(name)
        todo.extend(_node_of(i) for i in nodes[name].input)
    out = graph_pb2.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.node.extend(n for n in graph_def.node if n.name in wanted)
    out.library.CopyFrom(graph_def.library)
    return out


def _prune(graph_def: graph_pb2.GraphDef, tensors: List[str]) -> graph_pb2.GraphDef:
    pruned = _extract(graph_def, tensors)
    pruned.library.CopyFrom(_used_functions(graph_def.library, pruned))
    return pruned


def _used_functions(library, graph_def: graph_pb2.GraphDef):
    """The part of ``library`` that ``graph_def``'s nodes call, transitively."""
    functions = {f.signature.name: f for f in library.function}
    wanted: Set[str] = set()

    def visit(nodes) -> None:
        for node in nodes:
            names = [node.op] + [v.func.name for v in node.attr.values() if v.HasField("func")]
            names += [f.name for v in node.attr.values() if v.HasField("list") for f in v.list.func]
            for name in names:
                if name in functions and name not in wanted:
                    wanted.add(name)
                    visit(functions[name].node_def)

    visit(graph_def.node)
    out = type(library)()
    out.function.extend(functions[n] for n in sorted(wanted))
    out.gradient.extend(g for g in library.gradient if g.function_name in wanted)
    return out


def _check_ops(graph_def: graph_pb2.GraphDef) -> None:
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    bad = [f"'{n.name}' ({n.op})" for n in reversed(nodes) if n.op in _FORBIDDEN or n.op.startswith("Horovod")]
    if bad:
        raise ExportError(
            f"the prediction depends on op(s) {', '.join(bad[:5])}, which a local model cannot run: pass every "
            "batch entry the model reads to mx_rec.inference.set_prediction(probs, batch), and look tables up "
            "with sparse_lookup (its outputs are recorded)")


def _shape_embeddings(graph_def: graph_pb2.GraphDef, used: List[Dict]) -> None:
    """Give each embedding placeholder the shape ids.shape + [dim], read off an import of the graph."""
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name="")
        shapes = {_node_of(lk["output"]): graph.get_tensor_by_name(lk["ids"]).shape.concatenate([lk["dim"]])
                  for lk in used}
    for node in graph_def.node:
        if node.name in shapes:
            node.attr["shape"].shape.CopyFrom(shapes[node.name].as_proto())


def _const(name: str, value) -> node_def_pb2.NodeDef:
    node = node_def_pb2.NodeDef(name=name, op="Const")
    node.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    return node


def _freeze_variables(graph_def: graph_pb2.GraphDef, prefix: str, keep: List[str]) -> graph_pb2.GraphDef:
    """Step 4: reads of dense variables (``ReadVariableOp``, ``ResourceGather``, ref variables) become
    constants holding the checkpoint's values; the variables go."""
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    variables = {}
    for node in graph_def.node:
        if node.op in ("VarHandleOp", "VariableV2"):
            name = node.name if reader.has_tensor(node.name) else node.attr["shared_name"].s.decode()
            if not reader.has_tensor(name):
                raise ExportError(f"dense variable '{node.name}' is not in the TF checkpoint {prefix} (a table "
                                  "variable read outside sparse_lookup, or a Saver given only some variables)")
            variables[node.name] = reader.get_tensor(name)
    added = []
    for node in graph_def.node:
        if node.op == "VariableV2":
            node.CopyFrom(_const(node.name, variables[node.name]))
            continue
        sources = [_node_of(i) for i in node.input if not i.startswith("^") and _node_of(i) in variables]
        if not sources:
            continue
        if node.op == "ReadVariableOp":
            node.CopyFrom(_const(node.name, variables[sources[0]]))
        elif node.op == "ResourceGather" and _node_of(node.input[0]) in variables and len(sources) == 1:
            params, axis = _const(node.name + "/frozen_params", variables[sources[0]]), _const(
                node.name + "/frozen_axis", np.int32(0))
            batch_dims, indices = node.attr["batch_dims"].i, node.attr["Tindices"].type
            dtype, rest = node.attr["dtype"].type, list(node.input[1:])
            node.op = "GatherV2"
            node.attr.clear()
            del node.input[:]
            node.input.extend([params.name, rest[0], axis.name] + rest[1:])
            node.attr["Tparams"].type, node.attr["Tindices"].type = dtype, indices
            node.attr["Taxis"].type, node.attr["batch_dims"].i = tf.int32.as_datatype_enum, batch_dims
            added += [params, axis]
        else:
            raise ExportError(f"op '{node.name}' ({node.op}) uses dense variable '{sources[0]}' in a way the export "
                              "cannot freeze (only reads and gathers are supported)")
    graph_def.node.extend(added)
    return _prune(graph_def, keep)


def freeze(meta_graph: meta_graph_pb2.MetaGraphDef, prefix: str) -> Tuple[graph_pb2.GraphDef, Dict[str, Any]]:
    """The frozen prediction graph of a checkpoint and its description.

    Args:
        meta_graph: the training job's graph (its ``.meta``), with a signature from ``set_prediction``.
        prefix: TF checkpoint prefix holding the dense variables.

    Returns:
        (GraphDef, spec) where spec is ``{"prediction": tensor, "inputs": {key: {"tensor", "dtype",
        "shape"}}, "lookups": [{"table", "ids", "embeddings", "dim", "default"}]}`` (tensor names of
        the frozen graph; only the inputs and lookups the prediction uses).

    Raises:
        ExportError: no signature, a prediction that needs an unregistered input, or a missing variable.
    """
    signature = meta_signature(meta_graph)
    if signature is None:
        raise ExportError("the checkpoint's graph has no prediction signature: call "
                          "mx_rec.inference.set_prediction(probs, batch) in the model's eval graph before saving")
    lookups = collection_strings(meta_graph, LOOKUP_COLLECTION)
    graph_def = graph_pb2.GraphDef()
    graph_def.CopyFrom(meta_graph.graph_def)
    inputs = _rewire(graph_def, signature, lookups)
    prediction = _canonical(signature["prediction"])
    reached = {n.name for n in _prune(graph_def, [prediction]).node}
    used = [dict(lk, ids=inputs.get(_ids_key(lk, signature), lk["ids"])) for lk in lookups
            if _node_of(lk["output"]) in reached]
    keep = [prediction] + [lk["ids"] for lk in used]
    pruned = _prune(graph_def, keep)
    _check_ops(pruned)
    _shape_embeddings(pruned, used)
    present = {n.name for n in pruned.node}
    inputs = {key: name for key, name in inputs.items() if _node_of(name) in present}
    keep += list(inputs.values()) + [lk["output"] for lk in used]
    frozen = _freeze_variables(pruned, prefix, keep)
    _check_ops(frozen)
    spec = {"prediction": prediction,
            "inputs": {k: {**signature["inputs"][k], "tensor": v, "aliases": []} for k, v in sorted(inputs.items())},
            "lookups": [{"table": lk["table"], "ids": _canonical(lk["ids"]), "embeddings": _canonical(lk["output"]),
                         "dim": lk["dim"], "default": lk["default"],
                         **({"padding_keys": lk["padding_keys"]} if lk.get("padding_keys") else {})}
                        for lk in used]}
    return frozen, spec


def _ids_key(lookup: Dict, signature: Dict[str, Any]) -> str:
    """The batch key whose tensor is the lookup's ids, or "" when the ids are computed."""
    ids = _canonical(lookup["ids"])
    return next((k for k, e in signature["inputs"].items()
                 if ids in {_canonical(t) for t in [e["tensor"], *e.get("aliases", [])]}), "")
