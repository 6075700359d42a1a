"""Lazy Adam by address (Rec SDK's dynamic-expansion flow); the update is ``lazy_adam``'s."""
from mx_rec.optimizers import lazy_adam
from mx_rec.optimizers.by_address import ByAddressMixin


class CustomizedLazyAdamByAddress(ByAddressMixin, lazy_adam.CustomizedLazyAdam):
    """Hash lazy Adam taking (gradient, address) pairs; see ``mx_rec.optimizers.by_address``."""


def create_hash_optimizer_by_address(learning_rate=0.001, beta1: float = 0.9, beta2: float = 0.999,
                                     epsilon: float = 1e-8, name: str = "LazyAdamByAddress"
                                     ) -> CustomizedLazyAdamByAddress:
    """Rec SDK signature; ``apply_gradients(zip(grads, addresses))``.

    Example:
        >>> from mx_rec.optimizers.lazy_adam_by_addr import create_hash_optimizer_by_address
        >>> sparse_optimizer = create_hash_optimizer_by_address()
    """
    lazy_adam.check_arguments(learning_rate, beta1, beta2, epsilon, name)
    return CustomizedLazyAdamByAddress(learning_rate=learning_rate, beta1=beta1, beta2=beta2, epsilon=epsilon,
                                       name=name)
