"""SGD by address (Rec SDK's dynamic-expansion flow): ``row -= lr * (grad + weight_decay * row)``."""
from mx_rec.optimizers.base import check_learning_rate, check_name
from mx_rec.optimizers.by_address import ByAddressMixin
from mx_rec.optimizers.gradient_descent import CustomizedGradientDescent


class CustomizedGradientDescentByAddr(ByAddressMixin, CustomizedGradientDescent):
    """Hash SGD taking (gradient, address) pairs; see ``mx_rec.optimizers.by_address``."""


def create_hash_optimizer_by_addr(learning_rate, weight_decay: float = 0.0001, use_locking: bool = False,
                                  name: str = "GradientDescentByAddr") -> CustomizedGradientDescentByAddr:
    """Rec SDK signature; ``apply_gradients(zip(grads, addresses))``. weight_decay in [0, 1].

    Example:
        >>> from mx_rec.optimizers.gradient_descent_by_addr import create_hash_optimizer_by_addr
        >>> sparse_optimizer = create_hash_optimizer_by_addr(0.001)
    """
    check_learning_rate(learning_rate, name)
    check_name(name, "GradientDescentByAddr")
    if not 0.0 <= weight_decay <= 1.0:
        raise ValueError(f"{name}: weight_decay={weight_decay} is outside [0.0, 1.0]")
    return CustomizedGradientDescentByAddr(learning_rate, use_locking, name, weight_decay)
