"""The serving function of a SavedModel: the frozen dense graph around stock-op table lookups.

The frozen graph of ``freeze.freeze`` has a placeholder per batch entry and per lookup output
(its embeddings). It is imported once (``tf.compat.v1.wrap_function``) and cut twice: batch
entries -> each lookup's ids, and batch entries + embeddings -> prediction. The serving function
chains them with :class:`ServingTable` lookups in between:

    serving_default(**batch entries) -> {"prediction": prediction}

Batch size: the entries' leading dimension is made unknown, so one call takes any number of
samples. A graph that only runs at the batch size it was built with (a reshape to a fixed
batch) is detected at export by a probe, and then served chunk by chunk at that size
(``tf.map_fn`` over zero-padded chunks), as ``load_inference_model`` does.
"""
from typing import Callable, List, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from mx_rec.inference.serving_table import ServingTable


def _relax_batch(graph_def: graph_pb2.GraphDef, names: List[str]) -> graph_pb2.GraphDef:
    """A copy of ``graph_def`` whose placeholders ``names`` have an unknown leading dimension."""
    out = graph_pb2.GraphDef()
    out.CopyFrom(graph_def)
    wanted = {n.split(":")[0] for n in names}
    for node in out.node:
        if node.name in wanted and node.op == "Placeholder" and "shape" in node.attr:
            shape = tf.TensorShape(node.attr["shape"].shape)
            if shape.rank:
                node.attr["shape"].shape.CopyFrom(tf.TensorShape([None] + shape.as_list()[1:]).as_proto())
    return out


def input_specs(spec: Mapping) -> List[tf.TensorSpec]:
    """One TensorSpec per batch entry of ``spec["inputs"]`` (sorted by name), leading dimension unknown."""
    specs = []
    for key in sorted(spec["inputs"]):
        entry = spec["inputs"][key]
        shape = None if entry["shape"] is None else [None] + list(entry["shape"][1:])
        specs.append(tf.TensorSpec(shape, tf.as_dtype(entry["dtype"]), name=key))
    return specs


def _core(graph_def: graph_pb2.GraphDef, spec: Mapping, tables: Mapping[str, ServingTable],
          zero_rows: bool = False) -> Callable:
    """f(*entries) -> prediction, for entries in ``input_specs`` order; ``zero_rows``: lookups give zeros
    (the probe runs before the tables' variables hold their rows)."""
    lookups = spec["lookups"]
    relaxed = _relax_batch(graph_def, [e["tensor"] for e in spec["inputs"].values()] +
                           [lk["embeddings"] for lk in lookups])
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(relaxed, name=""), [])
    tensor = wrapped.graph.get_tensor_by_name
    feeds = [tensor(spec["inputs"][k]["tensor"]) for k in sorted(spec["inputs"])]
    embeddings = [tensor(lk["embeddings"]) for lk in lookups]
    ids_of = wrapped.prune(feeds, [tensor(lk["ids"]) for lk in lookups]) if lookups else None
    predict = wrapped.prune(feeds + embeddings, tensor(spec["prediction"]))

    def core(*entries):
        ids = ids_of(*entries) if ids_of is not None else []
        if zero_rows:
            rows = [tf.zeros(tf.concat([tf.shape(i), [lk["dim"]]], axis=0), e.dtype)
                    for lk, i, e in zip(lookups, ids, embeddings)]
        else:
            rows = [tables[lk["table"]].lookup(i, lk["dim"], lk["default"], lk.get("padding_keys", ()), e.dtype)
                    for lk, i, e in zip(lookups, ids, embeddings)]
        return predict(*entries, *rows)

    return core


def _chunked(core: Callable, batch: int, out: tf.TensorSpec) -> Callable:
    """core at a fixed ``batch``: any n samples, zero-padded to whole chunks, mapped chunk by chunk."""

    def serve(*entries):
        n = tf.shape(entries[0])[0]
        chunks = (n + batch - 1) // batch
        pad = chunks * batch - n
        split = []
        for entry in entries:
            rank = entry.shape.rank
            padded = tf.pad(entry, [[0, pad]] + [[0, 0]] * (rank - 1))
            split.append(tf.reshape(padded, tf.concat([[chunks, batch], tf.shape(entry)[1:]], axis=0)))
        result = tf.map_fn(lambda xs: core(*xs), tuple(split),
                           fn_output_signature=tf.TensorSpec([batch] + out.shape.as_list()[1:], out.dtype))
        merged = tf.reshape(result, tf.concat([[chunks * batch], tf.shape(result)[2:]], axis=0))
        return merged[:n]

    return serve


def _probe(core: Callable, specs: List[tf.TensorSpec], n: int) -> Optional[str]:
    """None when ``core`` runs on ``n`` samples of padding ids and zeros, else TF's message (why it cannot)."""
    batch = []
    for s in specs:
        shape = [n] + [d or 1 for d in s.shape.as_list()[1:]]
        batch.append(np.full(shape, -1 if s.dtype.is_integer else 0, s.dtype.as_numpy_dtype))
    try:
        tf.function(core, autograph=False)(*batch)
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as err:
        return str(err)
    return None


def serving_function(graph_def: graph_pb2.GraphDef, spec: Mapping, tables: Mapping[str, ServingTable]
                     ) -> Tuple[tf.types.experimental.ConcreteFunction, Optional[int]]:
    """The ``serving_default`` function and the fixed batch size it chunks by (None: any batch in one call).

    Args:
        graph_def, spec: what ``freeze.freeze`` returned. tables: table name -> its ServingTable.
    """
    specs = input_specs(spec)
    core = _core(graph_def, spec, tables)
    leading = {(e["shape"] or [None])[0] for e in spec["inputs"].values()}
    fixed = leading.pop() if len(leading) == 1 else None
    chunk_by = None
    if fixed and specs and all(s.shape.rank for s in specs) and \
            _probe(_core(graph_def, spec, tables, zero_rows=True), specs, fixed + 1) is not None:
        chunk_by = int(fixed)
    if chunk_by:
        traced = tf.function(core, autograph=False).get_concrete_function(
            *[tf.TensorSpec([chunk_by] + s.shape.as_list()[1:], s.dtype) for s in specs]).structured_outputs
        body = _chunked(core, chunk_by, tf.TensorSpec(traced.shape, traced.dtype))
    else:
        body = core

    def serve(*entries):
        return {"prediction": tf.identity(body(*entries), name="prediction")}

    return tf.function(serve, input_signature=specs, autograph=False).get_concrete_function(), chunk_by

