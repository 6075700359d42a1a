"""Hash SGD: ``row -= learning_rate * (grad + weight_decay * row)`` for the rows a step looked up."""
from typing import Optional

import tensorflow as tf

from mx_rec.optimizers.base import CustomizedOptimizer, check_learning_rate, check_name
from mx_rec.system.log import log_once


class CustomizedGradientDescent(tf.compat.v1.train.GradientDescentOptimizer, CustomizedOptimizer):
    """TF's GradientDescentOptimizer restricted to table variables and sparse gradients, with optional
    weight decay (None: none)."""

    def __init__(self, learning_rate, use_locking: bool = False, name: str = "GradientDescent",
                 weight_decay: Optional[float] = None):
        super().__init__(learning_rate=learning_rate, use_locking=use_locking, name=name)
        self.weight_decay = weight_decay

    def _resource_apply_sparse(self, grad, handle, indices):
        lr = tf.cast(self._learning_rate_tensor, grad.dtype.base_dtype)
        if self.weight_decay:
            grad = grad + tf.cast(self.weight_decay, grad.dtype.base_dtype) * tf.gather(handle, indices)
        return tf.raw_ops.ResourceScatterAdd(resource=handle.handle, indices=indices, updates=-lr * grad)


def create_hash_optimizer(learning_rate, use_locking: bool = False, name: str = "GradientDescent",
                          use_fusion_optim: bool = False, weight_decay: Optional[float] = None
                          ) -> CustomizedGradientDescent:
    """Hash SGD (Rec SDK signature).

    Args:
        learning_rate: float in [0, 10], or a tensor / variable / callable.
        use_fusion_optim: an NPU fused kernel; accepted, no effect here.
        weight_decay: None, or a float in [1e-5, 1e-2] added to the gradient as ``weight_decay * row``.

    Example:
        >>> from mx_rec.optimizers.gradient_descent import create_hash_optimizer
        >>> sparse_optimizer = create_hash_optimizer(0.001)
    """
    check_learning_rate(learning_rate, name)
    check_name(name, "GradientDescent")
    if weight_decay is not None and not 1e-5 <= weight_decay <= 1e-2:
        raise ValueError(f"{name}: weight_decay={weight_decay} is outside [1e-5, 1e-2] (None: no decay)")
    if use_fusion_optim:
        log_once(f"{name}:use_fusion_optim", f"{name}: use_fusion_optim selects an NPU fused kernel; it has no effect here")
    return CustomizedGradientDescent(learning_rate, use_locking, name, weight_decay)
