"""Lazy Adam by address (Rec SDK's dynamic-expansion flow); the update is ``lazy_adam``'s."""
from mx_rec.optimizers import lazy_adam
from mx_rec.optimizers.by_address import ByAddressOptimizer


def create_hash_optimizer_by_address(learning_rate=0.001, beta1: float = 0.9, beta2: float = 0.999,
                                     epsilon: float = 1e-8, name: str = "LazyAdamByAddress") -> ByAddressOptimizer:
    """Rec SDK signature; ``apply_gradients(zip(grads, addresses))``."""
    return ByAddressOptimizer(lazy_adam.create_hash_optimizer(learning_rate, beta1, beta2, epsilon, name))
