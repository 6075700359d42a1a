"""The update of one table variable: which sparse update the optimizer class implements, and how a
step's gradient rows reach it (``APPLY_GRADIENTS_STRATEGY``).

Table variables are resource variables, so TF hands their IndexedSlices gradient to
``_resource_apply_sparse_duplicate_indices``. A class may implement its row update in any of TF's
four sparse methods; Rec SDK scripts written for TF 1.15 reference variables often override the
non-resource ones (``_apply_sparse_duplicate_indices(grad, var)`` with ``grad`` an IndexedSlices).
The most derived class that defines one of them (outside TensorFlow) decides; within a class the
resource methods win. Without any, TF's own class's update runs.
"""
from typing import Callable, Optional, Tuple

import tensorflow as tf
from tensorflow.python.training.optimizer import Optimizer

from mx_rec.optimizers.strategy import apply_strategy

SPARSE_METHODS = ("_resource_apply_sparse_duplicate_indices", "_resource_apply_sparse",
                  "_apply_sparse_duplicate_indices", "_apply_sparse")
FRAMEWORK_PACKAGES = ("tensorflow", "keras", "tf_keras")


def is_framework(obj) -> bool:
    """A class or function of TensorFlow / Keras itself (not a subclass written on top of it)."""
    return (getattr(obj, "__module__", None) or "").split(".")[0] in FRAMEWORK_PACKAGES


def _own_sparse_method(cls) -> Optional[str]:
    """The sparse method the most derived non-framework class of ``cls`` defines, or None."""
    for klass in cls.__mro__:
        if is_framework(klass) or klass.__module__ == "mx_rec.optimizers.base":
            continue
        for name in SPARSE_METHODS:
            fn = klass.__dict__.get(name)
            fn = getattr(fn, "_mxrec_inner", fn)  # a hook we put around a framework function is not the class's
            if fn is not None and not is_framework(fn):
                return name
    return None


def _indices_are_unique(table) -> bool:
    """A table with one built lookup (one call, or several merged by multi-lookup) gets a gradient on
    distinct rows only (the lookup already summed duplicate ids; static shapes pad nothing)."""
    return table.built_lookups == 1


def unique_update(optimizer, inner: Callable, handle) -> Tuple[Callable, bool]:
    """(apply(values [N, dim], indices [N]) -> update op for distinct indices, whether that update
    also sums duplicate indices by itself)."""
    method = _own_sparse_method(type(optimizer))
    if method == "_resource_apply_sparse_duplicate_indices":
        return (lambda values, indices: inner(values, handle, indices)), False
    if method == "_resource_apply_sparse":
        return (lambda values, indices: optimizer._resource_apply_sparse(values, handle, indices)), False
    if method is not None:
        apply = getattr(optimizer, method)

        def apply_slices(values, indices):
            shape = tf.raw_ops.VariableShape(input=handle.handle, out_type=tf.int64)
            return apply(tf.IndexedSlices(values, indices, dense_shape=shape), handle)
        return apply_slices, False
    if type(optimizer)._resource_apply_sparse is not Optimizer._resource_apply_sparse:
        return (lambda values, indices: optimizer._resource_apply_sparse(values, handle, indices)), False
    # TF's own duplicate-indices update (GradientDescent: a scatter-add, which sums duplicates itself)
    return (lambda values, indices: inner(values, handle, indices)), True


def sparse_update(optimizer, inner: Callable, values: tf.Tensor, handle, indices: tf.Tensor, table) -> tf.Operation:
    """The update op of table variable ``handle`` for gradient rows values [N, dim] at indices [N]."""
    apply, sums_itself = unique_update(optimizer, inner, handle)
    if sums_itself or _indices_are_unique(table):
        return apply(values, indices)
    return apply_strategy().apply(apply, values, indices, table.built_lookups)
