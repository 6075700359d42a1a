"""Adagrad by address (Rec SDK's dynamic-expansion flow); the update is ``adagrad``'s."""
from mx_rec.optimizers import adagrad
from mx_rec.optimizers.by_address import ByAddressOptimizer


def create_hash_optimizer_by_address(learning_rate=0.001, initial_accumulator_value: float = 0.9,
                                     name: str = "Adagrad") -> ByAddressOptimizer:
    """Rec SDK signature; ``apply_gradients(zip(grads, addresses))``."""
    return ByAddressOptimizer(adagrad.create_hash_optimizer(learning_rate, initial_accumulator_value, name=name))
