"""Hash lazy Adam: Adam moments and row updates only for the rows a step looked up.

With t the number of steps this optimizer has applied (kept as beta1^t / beta2^t, as TF's
former LazyAdamOptimizer did, and equal to the global step when it runs once per step):

    m[r] = beta1 * m[r] + (1 - beta1) * g[r]
    v[r] = beta2 * v[r] + (1 - beta2) * g[r]^2
    row[r] -= lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m[r] / (sqrt(v[r]) + epsilon)
"""
import tensorflow as tf

from mx_rec.kernels.ops import sparse_lazy_adam
from mx_rec.optimizers.base import CustomizedOptimizer, check_learning_rate, check_name
from mx_rec.system.log import log_once


class CustomizedLazyAdam(tf.compat.v1.train.AdamOptimizer, CustomizedOptimizer):
    """Adam whose sparse update touches only the rows in the gradient (slots ``m`` and ``v``).

    Tables with float16 / bfloat16 rows or slots (``create_table(storage_dtype=, slot_dtype=)``) get
    the same float32 update, each value rounded once to its storage type."""

    slot_init_values = {"m": 0.0, "v": 0.0}
    supports_compact_storage = True  # float16 / bfloat16 rows and slots, float32 math (sparse_lazy_adam)

    def _valid_dtypes(self):
        return {tf.float32, tf.float64, tf.float16, tf.bfloat16}

    def _resource_apply_sparse(self, grad, var, indices):
        dtype = grad.dtype.base_dtype  # the math dtype (float32 for float16 / bfloat16 storage)
        beta1_power, beta2_power = (tf.cast(p, dtype) for p in self._get_beta_accumulators())
        lr = tf.cast(self._lr_t, dtype)
        step_size = lr * tf.sqrt(1.0 - beta2_power) / (1.0 - beta1_power)
        # one pass over the rows and both slots (mx_rec.kernels); TF's ops where the kernel does not apply
        return sparse_lazy_adam(var, self.get_slot(var, "m"), self.get_slot(var, "v"), step_size,
                                tf.cast(self._beta1_t, dtype), tf.cast(self._beta2_t, dtype),
                                tf.cast(self._epsilon_t, dtype), grad, indices, use_locking=self._use_locking)


def create_hash_optimizer(learning_rate=0.001, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8,
                          name: str = "LazyAdam", use_fusion_optim: bool = False) -> CustomizedLazyAdam:
    """Hash lazy Adam (Rec SDK signature); beta1 in (0, 1), beta2 in [0, 1], epsilon in (0, 1].

    learning_rate: float in [0, 10], or a tensor / variable / callable. use_fusion_optim: an NPU
    fused kernel; accepted, no effect here.

    Example:
        >>> from mx_rec.optimizers.lazy_adam import create_hash_optimizer
        >>> sparse_optimizer = create_hash_optimizer(0.001)
    """
    check_arguments(learning_rate, beta1, beta2, epsilon, name)
    if use_fusion_optim:
        log_once(f"{name}:use_fusion_optim", f"{name}: use_fusion_optim selects an NPU fused kernel; it has no effect here")
    return CustomizedLazyAdam(learning_rate=learning_rate, beta1=beta1, beta2=beta2, epsilon=epsilon, name=name)


def check_arguments(learning_rate, beta1: float, beta2: float, epsilon: float, name: str) -> None:
    """Rec SDK's ranges; ValueError / TypeError naming the optimizer and the argument."""
    check_learning_rate(learning_rate, name)
    check_name(name, "LazyAdam")
    if not 0.0 < beta1 < 1.0:
        raise ValueError(f"{name}: beta1={beta1} is outside (0.0, 1.0)")
    if not 0.0 <= beta2 <= 1.0:
        raise ValueError(f"{name}: beta2={beta2} is outside [0.0, 1.0]")
    if not 0.0 < epsilon <= 1.0:
        raise ValueError(f"{name}: epsilon={epsilon} is outside (0.0, 1.0]")
