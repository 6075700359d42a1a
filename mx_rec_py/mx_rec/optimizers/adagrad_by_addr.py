"""Adagrad by address (Rec SDK's dynamic-expansion flow); the update is ``adagrad``'s."""
from mx_rec.optimizers import adagrad
from mx_rec.optimizers.by_address import ByAddressMixin


class CustomizedAdagradByAddress(ByAddressMixin, adagrad.CustomizedAdagrad):
    """Hash Adagrad taking (gradient, address) pairs; see ``mx_rec.optimizers.by_address``."""


def create_hash_optimizer_by_address(learning_rate=0.001, initial_accumulator_value: float = 0.9,
                                     name: str = "Adagrad") -> CustomizedAdagradByAddress:
    """Rec SDK signature; ``apply_gradients(zip(grads, addresses))``.

    Example:
        >>> from mx_rec.optimizers.adagrad_by_addr import create_hash_optimizer_by_address
        >>> sparse_optimizer = create_hash_optimizer_by_address()
    """
    adagrad.check_arguments(learning_rate, initial_accumulator_value, name)
    return CustomizedAdagradByAddress(learning_rate, initial_accumulator_value, False, name)
