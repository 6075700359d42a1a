"""Hash momentum: TF's sparse momentum update on the looked-up rows; the accumulator is a table slot.

For each looked-up row (``use_nesterov=False``): ``accum = momentum * accum + g; row -= lr * accum``;
with Nesterov: ``row -= lr * (g + momentum * accum)`` after the same accumulator update.
"""
import numbers

import tensorflow as tf

from mx_rec.optimizers.base import CustomizedOptimizer, check_learning_rate, check_name


class CustomizedMomentum(tf.compat.v1.train.MomentumOptimizer, CustomizedOptimizer):
    """TF's MomentumOptimizer (ResourceSparseApplyMomentum) restricted to table variables."""

    slot_init_values = {"momentum": 0.0}

    def __init__(self, learning_rate, momentum_var, use_locking: bool = False, name: str = "Momentum",
                 use_nesterov: bool = False):
        super().__init__(learning_rate=learning_rate, momentum=momentum_var, use_locking=use_locking, name=name,
                         use_nesterov=use_nesterov)


def create_hash_optimizer(learning_rate_input=0.001, mom=0.9, enable_locking: bool = False,
                          optimizer_name: str = "momentum", enable_nesterov: bool = False) -> CustomizedMomentum:
    """Hash momentum (Rec SDK's ``mx_rec.optimizers.momentum`` signature).

    Args:
        learning_rate_input: float in [0, 10], or a tensor / variable / callable.
        mom: the momentum, a float in [0, 1] or a tensor.
        enable_locking: use locks for the updates. optimizer_name: 1 to 200 characters.
        enable_nesterov: Nesterov momentum (TF's approximation).

    Example:
        >>> from mx_rec.optimizers.momentum import create_hash_optimizer
        >>> sparse_optimizer = create_hash_optimizer(0.01, mom=0.9)
    """
    check_learning_rate(learning_rate_input, optimizer_name)
    check_name(optimizer_name, "momentum")
    if isinstance(mom, numbers.Real) and not isinstance(mom, bool):
        if not 0.0 <= mom <= 1.0:
            raise ValueError(f"{optimizer_name}: mom={mom} is outside [0.0, 1.0]")
    elif not isinstance(mom, (tf.Tensor, tf.Variable)) and not callable(mom):
        raise TypeError(f"{optimizer_name}: mom must be a float or a tensor, got {mom!r}")
    for flag, value in (("enable_locking", enable_locking), ("enable_nesterov", enable_nesterov)):
        if not isinstance(value, bool):
            raise TypeError(f"{optimizer_name}: {flag} must be a bool, got {value!r}")
    return CustomizedMomentum(learning_rate_input, mom, enable_locking, optimizer_name, enable_nesterov)
