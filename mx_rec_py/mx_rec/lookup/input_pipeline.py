"""FeatureSpec mode: the dataset map function and finding a feature's ids after ``get_next()``.

``get_asc_insert_func`` checks every spec against the batch and tags the dataset's elements with
a zero-size marker tensor whose static shape ``[0, MARKER_BASE + pipeline id]`` survives into the
iterator's ``output_shapes``. ``sparse_lookup(table, spec)`` without ``batch=`` uses that tag to
find the ``IteratorGetNext`` op of the pipeline, and the dict's key order to find the ids in it.

Each pipeline is recorded, when its map is traced, in the registry (``config.graph_registry``) of
the graph that builds the dataset (the graph its iterator lives in), and goes with it.

Specs may share a name and a batch key (Rec SDK allows it: two tables reading one feature, or one
spec per lookup of a table); each reads the same ids and is told apart by its ``unique_name``.
"""
import itertools
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union

import tensorflow as tf

from mx_rec.config.graph_registry import find_registry, registry_of
from mx_rec.lookup.feature_spec import FeatureSpec

MARKER_KEY = "__mx_rec_pipeline__"
MARKER_BASE = 7_340_000
_GET_NEXT_OPS = ("IteratorGetNext", "IteratorGetNextSync")
_ids = itertools.count(1)


@dataclass
class _Pipeline:
    pipeline_id: int
    specs: List[FeatureSpec]
    is_training: bool
    flat_keys: List[str] = field(default_factory=list)


def _outermost(graph: tf.Graph) -> tf.Graph:
    """The graph a dataset map function's graph belongs to (the one holding the dataset and its iterator)."""
    while getattr(graph, "outer_graph", None) is not None:
        graph = graph.outer_graph
    return graph


def _pipelines(graph: Optional[tf.Graph] = None) -> Dict[int, _Pipeline]:
    """The pipelines traced in ``graph`` (default graph): pipeline id -> pipeline, in tracing order."""
    registry = find_registry(graph or tf.compat.v1.get_default_graph())
    return registry.pipelines if registry is not None else {}


def make_insert_func(tgt_key_specs: Union[FeatureSpec, Sequence[FeatureSpec]], is_training: bool = True):
    """A ``dataset.map`` function for batches (dicts of tensors) holding the specs' features.

    Raises (when the map is traced):
        TypeError: elements are not dicts, or a feature's ids are not integers.
        KeyError: a spec's key is not in the batch, naming the spec and the keys present.
    """
    specs = [tgt_key_specs] if isinstance(tgt_key_specs, FeatureSpec) else list(tgt_key_specs or [])
    if not specs or not all(isinstance(s, FeatureSpec) for s in specs):
        raise TypeError(f"get_asc_insert_func: tgt_key_specs must be FeatureSpec objects, got {tgt_key_specs!r}")
    pipeline = _Pipeline(next(_ids), specs, bool(is_training))

    def insert_fn(*element):
        if len(element) != 1 or not isinstance(element[0], dict):
            raise TypeError("get_asc_insert_func: dataset elements must be a dict of tensors (the batch), "
                            f"got {len(element)} component(s) of type {[type(e).__name__ for e in element]}")
        batch = dict(element[0])
        for spec in specs:
            if spec.batch_key not in batch:
                raise KeyError(f"FeatureSpec '{spec.label}': the batch has no key {spec.batch_key!r}; "
                               f"keys present: {sorted(map(str, batch))}")
            ids = batch[spec.batch_key]
            if not spec.is_timestamp and not ids.dtype.is_integer:
                raise TypeError(f"FeatureSpec '{spec.label}': ids must be an integer tensor, "
                                f"got {ids.dtype.name}")
        batch[MARKER_KEY] = tf.zeros([0, MARKER_BASE + pipeline.pipeline_id], dtype=tf.int8)
        pipeline.flat_keys = list(tf.nest.flatten({k: k for k in batch}))
        registry_of(_outermost(tf.compat.v1.get_default_graph())).pipelines[pipeline.pipeline_id] = pipeline
        return batch

    return insert_fn


def timestamp_spec_for(spec: FeatureSpec) -> Optional[FeatureSpec]:
    """The ``is_timestamp`` FeatureSpec of a pipeline that carries ``spec``, if any."""
    for pipeline in reversed(list(_pipelines().values())):
        if any(s is spec for s in pipeline.specs):
            for other in pipeline.specs:
                if other.is_timestamp:
                    return other
    return None


def find_feature_ids(spec: FeatureSpec, is_training: bool, graph: Optional[tf.Graph] = None) -> tf.Tensor:
    """The ids tensor of ``spec`` from the newest iterator of a pipeline that carries it.

    Raises:
        ValueError: no such iterator in the graph; the message says to pass ``batch=``.
    """
    graph = graph or tf.compat.v1.get_default_graph()
    # pipelines mapped with this spec, or with another spec reading the same batch key (the train and eval
    # pipelines of a script usually hold distinct specs of one name)
    wanted = {MARKER_BASE + p.pipeline_id: p for p in _pipelines(graph).values()
              if any(s is spec or s.batch_key == spec.batch_key for s in p.specs)}
    for op in reversed(graph.get_operations()):
        if op.type not in _GET_NEXT_OPS:
            continue
        shapes = [tf.TensorShape(s) for s in op.get_attr("output_shapes")]
        for shape in shapes:
            dims = shape.as_list() if shape.rank else []
            if len(dims) >= 2 and dims[-2] == 0 and dims[-1] in wanted:
                pipeline = wanted[dims[-1]]
                if pipeline.is_training != bool(is_training) and len(wanted) > 1:
                    continue
                if len(pipeline.flat_keys) != len(op.outputs):
                    raise ValueError(
                        f"FeatureSpec '{spec.label}': the dataset was reshaped after get_asc_insert_func's "
                        "map; pass the batch to sparse_lookup(..., batch=batch)")
                return op.outputs[pipeline.flat_keys.index(spec.batch_key)]
    raise ValueError(
        f"FeatureSpec '{spec.label}': no dataset iterator in the graph carries it; map the dataset with "
        "get_asc_insert_func([...this spec...]) and call iterator.get_next() before sparse_lookup, "
        "or pass the batch with sparse_lookup(..., batch=batch)")
