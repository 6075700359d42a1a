"""``APPLY_GRADIENTS_STRATEGY``: how a step's gradient rows of one key reach a hash optimizer.

A lookup hands its table one gradient row per key it looked up (its ranks' rows of that key are
already combined on the owner). A table looked up several times in a step (not merged by
multi-lookup) gets several rows of a key:

- ``sum_same_id_gradients_and_apply`` (our default): the rows are summed and the key's row is
  updated once, as one lookup of all the ids would do. Multi-lookup merged or not, same numbers.
- ``direct_apply`` (Rec SDK's default): each lookup's rows are applied as they come, one lookup
  after another, each update starting from the state the previous one left. SGD gives the same
  numbers either way; stateful optimizers (Adagrad, Adam, FTRL, momentum) do not.

Each value is a small strategy class (as ``communication.gradient_reduction`` is for
``all2all_gradients_op``): ``apply_strategy()`` reads the environment variable when the update op
is built (``apply_gradients``) and returns the strategy, whose ``apply`` builds the update.
"""
import os
from typing import Callable, Dict, List, Optional, Tuple

import tensorflow as tf

from mx_rec.constants.constants import ApplyGradientsStrategy
from mx_rec.kernels.ops import segment_sum

ENV_NAME = "APPLY_GRADIENTS_STRATEGY"
DEFAULT = ApplyGradientsStrategy.SUM_SAME_ID_GRADIENTS_AND_APPLY


def current_strategy() -> ApplyGradientsStrategy:
    """The strategy ``APPLY_GRADIENTS_STRATEGY`` names (unset or empty: summing).

    Raises:
        ValueError: the variable holds something else, naming it and the accepted values.
    """
    value = os.environ.get(ENV_NAME, "").strip()
    if not value:
        return DEFAULT
    try:
        return ApplyGradientsStrategy.mapping(value)
    except KeyError:
        raise ValueError(f"{ENV_NAME}={value!r} is not one of "
                         f"{[m.value for m in ApplyGradientsStrategy]}") from None


def occurrence(indices: tf.Tensor) -> tf.Tensor:
    """For indices int [N]: int32 [N], how many earlier entries hold the same index (0 for a first)."""
    unique, group = tf.unique(indices, out_idx=tf.int32)
    n = tf.size(indices, out_type=tf.int32)
    order = tf.argsort(group, stable=True)  # entries of a group together, in their original order
    sorted_group = tf.gather(group, order)
    positions = tf.range(n)
    starts = tf.math.unsorted_segment_min(positions, sorted_group, tf.size(unique))
    return tf.scatter_nd(order[:, None], positions - tf.gather(starts, sorted_group), [n])


_PASS_THROUGH = ("Identity", "Reshape", "Cast", "ExpandDims", "Squeeze")


def _built_at(tensor: tf.Tensor) -> int:
    """When the op a gradient's indices come from was built: the backward pass's reshapes are looked
    through to the lookup's own rows, so lookups sort in the order they were built."""
    op = tensor.op
    for _ in range(16):
        if op.type not in _PASS_THROUGH or not op.inputs:
            break
        op = op.inputs[0].op
    return op._id  # pylint: disable=protected-access


def lookup_parts(values: tf.Tensor, indices: tf.Tensor) -> Optional[List[Tuple[tf.Tensor, tf.Tensor]]]:
    """Each lookup's (values, indices), in the order the lookups were built, when the gradient is the
    concatenation TF (or a by-address optimizer) made of several lookups' gradients; else None."""
    def flat(v: tf.Tensor, i: tf.Tensor) -> Optional[list]:
        if v.op.type != "ConcatV2" or i.op.type != "ConcatV2":
            return [(v, i)]
        vs, js = list(v.op.inputs[:-1]), list(i.op.inputs[:-1])
        if len(vs) != len(js):
            return None
        parts = [flat(a, b) for a, b in zip(vs, js)]
        return None if any(p is None for p in parts) else [x for p in parts for x in p]

    parts = flat(values, indices)
    if parts is None or len(parts) < 2:
        return None
    return sorted(parts, key=lambda part: _built_at(part[1]))


def apply_in_rounds(apply_unique, values: tf.Tensor, indices: tf.Tensor, rounds: int) -> tf.Operation:
    """``direct_apply`` of rows values [N, dim] at indices [N] from at most ``rounds`` lookups: each
    lookup's rows after the previous lookup's (lookups in the order they were built). When the
    lookups' parts cannot be told apart, round r applies every index's r-th row instead.
    ``apply_unique(values, indices)`` builds one update whose indices are distinct."""
    parts = lookup_parts(values, indices)
    if parts is None:
        occ = occurrence(indices)
        parts = []
        for r in range(rounds):
            mask = tf.equal(occ, r)
            parts.append((tf.boolean_mask(values, mask), tf.boolean_mask(indices, mask)))
    done = tf.no_op()
    for part_values, part_indices in parts:
        with tf.control_dependencies([done]):
            done = apply_unique(tf.identity(part_values), tf.identity(part_indices))
    return done


ApplyUnique = Callable[[tf.Tensor, tf.Tensor], tf.Operation]


class ApplyStrategy:
    """Base strategy: the update op of a table's gradient rows values [N, dim] at indices [N] (repeated
    indices when several lookups of the table met a key), from ``apply_unique(values, indices)``, an
    update whose indices are distinct.

    Attributes:
        member: the ``ApplyGradientsStrategy`` value this class implements.
    """

    member: ApplyGradientsStrategy

    def apply(self, apply_unique: ApplyUnique, values: tf.Tensor, indices: tf.Tensor, lookups: int) -> tf.Operation:
        """The update op; ``lookups``: the lookups built of the table (each gave distinct rows)."""
        raise NotImplementedError


class SumSameIdGradients(ApplyStrategy):
    """``sum_same_id_gradients_and_apply``: a key's rows are summed, its row updated once."""

    member = ApplyGradientsStrategy.SUM_SAME_ID_GRADIENTS_AND_APPLY

    def apply(self, apply_unique: ApplyUnique, values: tf.Tensor, indices: tf.Tensor, lookups: int) -> tf.Operation:
        unique, position = tf.unique(indices)
        return apply_unique(segment_sum(values, position, tf.shape(unique)[0]), unique)


class DirectApply(ApplyStrategy):
    """``direct_apply``: each lookup's rows applied after the previous lookup's (``apply_in_rounds``)."""

    member = ApplyGradientsStrategy.DIRECT_APPLY

    def apply(self, apply_unique: ApplyUnique, values: tf.Tensor, indices: tf.Tensor, lookups: int) -> tf.Operation:
        if lookups <= 1:  # one lookup's rows are distinct; only send_count padding repeats (scratch row)
            return apply_unique(values, indices)
        return apply_in_rounds(apply_unique, values, indices, lookups)


APPLY_STRATEGIES: Dict[ApplyGradientsStrategy, ApplyStrategy] = {
    cls.member: cls() for cls in (SumSameIdGradients, DirectApply)}


def apply_strategy() -> ApplyStrategy:
    """The strategy object ``APPLY_GRADIENTS_STRATEGY`` names (see ``current_strategy``)."""
    return APPLY_STRATEGIES[current_strategy()]
