"""The fused ops with their TF-op equivalents: same inputs, same float32 numbers.

- ``sparse_lazy_adam``: lazy Adam's row update of a table variable and its ``m`` / ``v`` slots in one
  pass over the rows (read row, m, v; write them back), instead of two gathers, three scatters and
  the element-wise ops between them.
- ``segment_sum``: ``tf.math.unsorted_segment_sum`` of rows, summed in parallel per segment in the
  rows' order (TF's CPU kernel adds them one after another on one thread).

The compiled kernels run on the CPU; a variable placed on a GPU gets TF's ops (logged once).

Example:
    >>> from mx_rec.kernels.ops import segment_sum
    >>> summed = segment_sum(rows, inverse, num_rows)   # rows float32 [N, d], inverse int32 [N]
"""
from typing import Optional

import tensorflow as tf

from mx_rec.kernels.library import library
from mx_rec.system.log import log_once

HALF_TYPES = (tf.float16, tf.bfloat16)


def _on_cpu(variable) -> bool:
    device = (getattr(variable, "device", "") or "").upper()
    if "GPU" in device:
        return False
    return bool(device) or not tf.config.list_physical_devices("GPU")


def fused_library_for(variable) -> Optional[object]:
    """The op library when it may update ``variable`` (built, enabled, a CPU variable), else None."""
    lib = library()
    if lib is not None and not _on_cpu(variable):
        log_once(f"kernels:gpu:{variable.name}", "%s is on a GPU: its sparse update runs TF's ops (mx_rec's fused "
                 "kernels are CPU kernels)", variable.name)
        return None
    return lib


def sparse_lazy_adam(var, m, v, step_size: tf.Tensor, beta1: tf.Tensor, beta2: tf.Tensor, epsilon: tf.Tensor,
                     grad: tf.Tensor, indices: tf.Tensor, use_locking: bool = False) -> tf.Operation:
    """Lazy Adam on rows ``indices`` (int32/int64 [N], distinct for the usual result; a repeated row is
    updated once per occurrence, in order) of resource variables var and m, v ([rows, d]; all float64,
    or var and the slots each float32 / float16 / bfloat16 with float32 math: m and v share one type,
    which may differ from var's), with grad [N, d] in the math dtype and scalar
    ``step_size = lr * sqrt(1 - beta2^t) / (1 - beta1^t)``, beta1, beta2, epsilon. Every value is read,
    updated in the math dtype and rounded once to its storage type:

        m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
        var += -step_size * m / (sqrt(v) + epsilon)
    """
    math_dtype = grad.dtype.base_dtype
    slot_dtype = m.dtype.base_dtype
    if v.dtype.base_dtype != slot_dtype:
        raise TypeError(f"sparse_lazy_adam: slots m ({slot_dtype.name}) and v ({v.dtype.base_dtype.name}) of "
                        f"{var.name} must share one dtype")
    lib = fused_library_for(var)
    if lib is not None:
        return lib.mxrec_sparse_lazy_adam(var.handle, m.handle, v.handle, step_size, beta1, beta2, epsilon, grad,
                                          indices, T=var.dtype.base_dtype, Tslot=slot_dtype, use_locking=use_locking)

    def read(slot):
        rows = tf.gather(slot, indices)
        return tf.cast(rows, math_dtype) if rows.dtype != math_dtype else rows

    def write(slot, values, add=False):
        values = tf.cast(values, slot.dtype.base_dtype) if slot.dtype.base_dtype != math_dtype else values
        op = tf.raw_ops.ResourceScatterAdd if add else tf.raw_ops.ResourceScatterUpdate
        return op(resource=slot.handle, indices=indices, updates=values)

    m_t = beta1 * read(m) + (1.0 - beta1) * grad
    v_t = beta2 * read(v) + (1.0 - beta2) * tf.square(grad)
    delta = -step_size * m_t / (tf.sqrt(v_t) + epsilon)
    if var.dtype.base_dtype in HALF_TYPES:  # storage rounding: add in float32, store the rounded sum
        return tf.group(write(m, m_t), write(v, v_t), write(var, read(var) + delta))
    return tf.group(write(m, m_t), write(v, v_t), write(var, delta, add=True))


def segment_sum(data: tf.Tensor, segment_ids: tf.Tensor, num_segments) -> tf.Tensor:
    """``tf.math.unsorted_segment_sum(data, segment_ids, num_segments)`` for data [N, d] (float types),
    segment_ids int32/int64 [N] (negative: dropped); [num_segments, d]. Same sums, same order of
    additions, parallel over segments."""
    lib = library()
    if lib is None or data.shape.rank != 2 or tf.config.list_physical_devices("GPU"):  # a CPU kernel: no copies
        return tf.math.unsorted_segment_sum(data, segment_ids, num_segments)           # off a GPU and back
    return lib.mxrec_segment_sum(data, segment_ids, num_segments)


@tf.RegisterGradient("MxrecSegmentSum")
def _segment_sum_grad(op, grad):
    """d data = grad[segment_ids] (zeros for dropped rows), as TF's UnsortedSegmentSum gradient."""
    ids = op.inputs[1]
    valid = tf.cast(tf.greater_equal(ids, 0), grad.dtype)[:, None]
    return [tf.gather(grad, tf.maximum(ids, 0)) * valid, None, None]
