"""Rebuilding an input pipeline with the lookups' key stages inside it.

    old:  dataset --IteratorV2/MakeIterator--> IteratorGetNext --> model, key stage (in the step)
    new:  dataset.map(element -> element + key stages' outputs).prefetch(2)
              --new iterator--> get_next --> model, lookups (key stage already done)

The dataset is the same ``variant`` tensor the old ``MakeIterator`` consumed, wrapped again with
``tf.data.experimental.from_variant``; every consumer of the old iterator's outputs and of the key
stages' outputs is rewired to the new iterator's outputs. The key stages then run in the
``tf.data`` threads, one or two batches ahead of the training step.
"""
import gc
from dataclasses import dataclass
from typing import Any, List, Sequence

import tensorflow as tf

from mx_rec.lookup.key_stage import KeyStage
from mx_rec.lookup.trace import replay

PREFETCH_BATCHES = 2


@dataclass
class RebuiltPipeline:
    """initializer: the new iterator's initializer op; batch: its element (the old structure when
    the Python iterator object is still alive, else the flat tuple of tensors); is_training: it
    feeds training lookups."""

    initializer: tf.Operation
    batch: Any
    is_training: bool


def _dataset_variant(get_next: tf.Operation) -> tf.Tensor:
    resource = get_next.inputs[0]
    for op in resource.consumers():
        if op.type == "MakeIterator":
            return op.inputs[0]
    raise ValueError(f"modify_graph: the ids come from '{get_next.name}', whose iterator "
                     f"'{resource.op.name}' (op type {resource.op.type}) is not initializable; build it with "
                     "tf.compat.v1.data.make_initializable_iterator(dataset)")


def _python_structure(get_next: tf.Operation):
    """The element structure of the live ``tf.compat.v1.data.Iterator`` behind ``get_next``, or None."""
    resource = get_next.inputs[0]
    for obj in gc.get_objects():
        if isinstance(obj, tf.compat.v1.data.Iterator) and getattr(obj, "_iterator_resource", None) is resource:
            return obj.element_spec
    return None


def _rewire(old: tf.Tensor, new: tf.Tensor) -> None:
    for consumer in list(old.consumers()):
        for index, tensor in enumerate(consumer.inputs):
            if tensor.op is old.op and tensor.value_index == old.value_index:
                consumer._update_input(index, new)  # pylint: disable=protected-access


def _rewire_control(old: tf.Operation, new: tf.Operation) -> None:
    """Ops that wait for ``old`` wait for ``new`` instead (a critical section's lock waits for every
    input of its body, key stages included; left alone, the old stage would still run in the step)."""
    for consumer in list(old._control_outputs):  # pylint: disable=protected-access
        controls = [new if c is old else c for c in consumer.control_inputs]
        consumer._remove_all_control_inputs()  # pylint: disable=protected-access
        consumer._add_control_inputs(controls)  # pylint: disable=protected-access


def rebuild_pipeline(get_next: tf.Operation, stages: Sequence[KeyStage],
                     pushed: Sequence[tf.Tensor] = ()) -> RebuiltPipeline:
    """Move ``stages`` (all computed from ``get_next``'s outputs) into a rebuilt input pipeline.

    ``pushed``: more tensors computed from ``get_next``'s outputs by stateless ops (see
    ``graph.push``); they are computed in the pipeline too, and every reader of one reads the
    pipeline's copy instead.
    """
    variant = _dataset_variant(get_next)
    specs = tuple(tf.TensorSpec(shape, dtype) for shape, dtype in
                  zip(get_next.get_attr("output_shapes"), get_next.get_attr("output_types")))

    def add_key_stages(*element):
        extra: List[tf.Tensor] = []
        for stage in stages:
            keys = replay(stage.keys, get_next, list(element))
            outputs = tf.numpy_function(stage.fn, [keys], stage.dtypes, stateful=True, name="key_stage")
            for out, ref in zip(outputs, stage.outputs):
                out.set_shape(ref.shape)
            extra.extend(outputs)
        for tensor in pushed:
            copy = replay(tensor, get_next, list(element))
            copy.set_shape(tensor.shape)
            extra.append(copy)
        return tuple(element) + tuple(extra)

    with tf.name_scope("mx_rec_pipeline"):
        dataset = tf.data.experimental.from_variant(variant, specs)
        dataset = dataset.map(add_key_stages).prefetch(PREFETCH_BATCHES)
        iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
        flat = iterator.get_next()
    for old, new in zip(get_next.outputs, flat):
        _rewire(old, new)
    _rewire_control(get_next, flat[0].op)
    position = len(get_next.outputs)
    for stage in stages:
        for old in stage.outputs:
            _rewire(old, flat[position])
            position += 1
        _rewire_control(stage.outputs[0].op, flat[0].op)
        stage.moved = True
    for tensor in pushed:
        _rewire(tensor, flat[position])
        position += 1
    structure = _python_structure(get_next)
    element = flat[:len(get_next.outputs)]
    batch = tf.nest.pack_sequence_as(structure, list(element)) if structure is not None else element
    return RebuiltPipeline(iterator.initializer, batch, any(stage.insert for stage in stages))
