"""Hash SGD: ``row -= learning_rate * grad`` for the rows a step looked up."""
import tensorflow as tf

from mx_rec.optimizers.base import HashOptimizerMixin, check_learning_rate


class CustomizedGradientDescent(HashOptimizerMixin, tf.compat.v1.train.GradientDescentOptimizer):
    """TF's GradientDescentOptimizer restricted to table variables and sparse gradients."""


def create_hash_optimizer(learning_rate, use_locking: bool = False, name: str = "GradientDescent"):
    """Hash SGD (Rec SDK signature). learning_rate: float in [0, 10] or a tensor."""
    check_learning_rate(learning_rate, name)
    return CustomizedGradientDescent(learning_rate=learning_rate, use_locking=use_locking, name=name)
