"""Hash Adagrad: TF's sparse Adagrad update on the looked-up rows; the accumulator is a table slot."""
import tensorflow as tf

from mx_rec.optimizers.base import HashOptimizerMixin, check_learning_rate


class CustomizedAdagrad(HashOptimizerMixin, tf.compat.v1.train.AdagradOptimizer):
    """``accum += g^2; row -= lr * g / sqrt(accum)`` (TF's ResourceSparseApplyAdagrad) on looked-up rows."""

    def __init__(self, learning_rate, initial_accumulator_value, use_locking, name):
        super().__init__(learning_rate=learning_rate, initial_accumulator_value=initial_accumulator_value,
                         use_locking=use_locking, name=name)
        self.slot_init_values = {"accumulator": float(initial_accumulator_value)}


def create_hash_optimizer(learning_rate=0.001, initial_accumulator_value=0.9, use_locking: bool = False,
                          name: str = "Adagrad"):
    """Hash Adagrad (Rec SDK signature); initial_accumulator_value in (0, 1]."""
    check_learning_rate(learning_rate, name)
    if not 0.0 < initial_accumulator_value <= 1.0:
        raise ValueError(f"{name}: initial_accumulator_value={initial_accumulator_value} is outside (0.0, 1.0]")
    return CustomizedAdagrad(learning_rate, initial_accumulator_value, use_locking, name)
