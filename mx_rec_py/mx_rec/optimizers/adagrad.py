"""Hash Adagrad: TF's sparse Adagrad update on the looked-up rows; the accumulator is a table slot."""
import tensorflow as tf

from mx_rec.optimizers.base import CustomizedOptimizer, check_learning_rate, check_name


class CustomizedAdagrad(tf.compat.v1.train.AdagradOptimizer, CustomizedOptimizer):
    """``accum += g^2; row -= lr * g / sqrt(accum)`` (TF's ResourceSparseApplyAdagrad) on looked-up rows."""

    def __init__(self, learning_rate, initial_accumulator_value, use_locking, name):
        super().__init__(learning_rate=learning_rate, initial_accumulator_value=initial_accumulator_value,
                         use_locking=use_locking, name=name)
        self.slot_init_values = {"accumulator": float(initial_accumulator_value)}


def create_hash_optimizer(learning_rate=0.001, initial_accumulator_value=0.9, use_locking: bool = False,
                          name: str = "Adagrad") -> CustomizedAdagrad:
    """Hash Adagrad (Rec SDK signature); initial_accumulator_value in (0, 1]; learning_rate a float in
    [0, 10] or a tensor / variable / callable.

    Example:
        >>> from mx_rec.optimizers.adagrad import create_hash_optimizer
        >>> sparse_optimizer = create_hash_optimizer(0.001)
    """
    check_arguments(learning_rate, initial_accumulator_value, name)
    return CustomizedAdagrad(learning_rate, initial_accumulator_value, use_locking, name)


def check_arguments(learning_rate, initial_accumulator_value: float, name: str) -> None:
    """Rec SDK's ranges; ValueError / TypeError naming the optimizer and the argument."""
    check_learning_rate(learning_rate, name)
    check_name(name, "Adagrad")
    if not 0.0 < initial_accumulator_value <= 1.0:
        raise ValueError(f"{name}: initial_accumulator_value={initial_accumulator_value} is outside (0.0, 1.0]")
