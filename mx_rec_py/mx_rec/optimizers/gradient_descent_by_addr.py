"""SGD by address (Rec SDK's dynamic-expansion flow): ``row -= lr * (grad + weight_decay * row)``."""
from mx_rec.optimizers import gradient_descent
from mx_rec.optimizers.by_address import ByAddressOptimizer


def create_hash_optimizer_by_addr(learning_rate, weight_decay: float = 0.0001, use_locking: bool = False,
                                  name: str = "GradientDescentByAddr") -> ByAddressOptimizer:
    """Rec SDK signature; ``apply_gradients(zip(grads, addresses))``."""
    if not 0.0 <= weight_decay <= 1.0:
        raise ValueError(f"{name}: weight_decay={weight_decay} is outside [0.0, 1.0]")
    return ByAddressOptimizer(gradient_descent.create_hash_optimizer(learning_rate, use_locking, name),
                              weight_decay=weight_decay)
