"""Hash FTRL-T: a time-decayed, smoothed-gradient FTRL-proximal update on the looked-up rows.

Slots z, n, g, w (all start at 0), per looked-up row with gradient ``grad``:

    g'    = grad_factor * g + (1 - grad_factor) * grad              smoothed gradient
    sigma = (sqrt(n + g'^2) - sqrt(n)) / alpha
    z'    = (1 - epsilon) * z + g' - sigma * w
    n'    = (1 - epsilon) * n + g'^2
    w'    = (lambda1 * sign(z') - z') / ((beta + sqrt(n')) / alpha + lambda2)   if |z'| > lambda1, else 0
    row   = w'                                                      (the row is replaced, slot w keeps it)

``alpha`` is the step size; ``learning_rate`` is accepted (Rec SDK's signature) but the update
does not use it. ``epsilon`` decays the accumulated z and n each time a row is updated.
"""
import numbers

import tensorflow as tf

from mx_rec.optimizers.base import CustomizedOptimizer, check_learning_rate, check_name

_DEFAULTS = {"alpha": 0.06, "beta": 1.0, "lambda1": 0.0, "lambda2": 0.0, "epsilon": 0.0, "grad_factor": 0.0}
_NAMES = ("z_name", "n_name", "g_name")


class FtrlTBase(tf.compat.v1.train.Optimizer):
    """FTRL-T's parameters, slots ``z``, ``n``, ``g``, ``w`` and sparse row update, for table rows
    (``CustomizedFtrlT``) or plain variables (``mx_rec.optimizers.ftrl_t_dense``)."""

    def __init__(self, learning_rate, use_locking: bool = False, name: str = "Ftrl_t", **kwargs):
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate
        self._params = {key: kwargs.get(key, default) for key, default in _DEFAULTS.items()}
        self._slot_suffixes = {key[0]: kwargs.get(key) for key in _NAMES}
        self._tensors = {}

    def _prepare(self):
        self._learning_rate_tensor = tf.convert_to_tensor(self._call_if_callable(self._learning_rate),
                                                          name="learning_rate")
        self._tensors = {key: tf.convert_to_tensor(self._call_if_callable(value), name=key)
                         for key, value in self._params.items()}

    def slot_op_name(self, slot: str) -> str:
        """The name slot ``slot``'s variable gets under its table variable's."""
        return f"{self._name}/{self._slot_suffixes.get(slot) or slot}"

    def _create_slots(self, var_list):
        for var in var_list:
            for slot in ("z", "n", "g", "w"):
                self._zeros_slot(var, slot, self.slot_op_name(slot))

    def _params_for(self, var) -> dict:
        return {key: tf.cast(value, var.dtype.base_dtype) for key, value in self._tensors.items()}

    def _resource_apply_sparse(self, grad, handle, indices):
        states = [self.get_slot(handle, s) for s in ("z", "n", "g", "w")]
        new = ftrl_t_step(self._params_for(handle), *(tf.gather(s, indices) for s in states), grad)
        return tf.group(*[tf.raw_ops.ResourceScatterUpdate(resource=v.handle, indices=indices, updates=u)
                          for v, u in zip(states + [handle], new + [new[-1]])])


def ftrl_t_step(params: dict, z, n, g, w, grad) -> list:
    """One FTRL-T step on rows (any shape, all alike): the new [z, n, g, w] (see the module docstring)."""
    g_new = params["grad_factor"] * g + (1.0 - params["grad_factor"]) * grad
    sigma = (tf.sqrt(n + tf.square(g_new)) - tf.sqrt(n)) / params["alpha"]
    z_new = (1.0 - params["epsilon"]) * z + g_new - sigma * w
    n_new = (1.0 - params["epsilon"]) * n + tf.square(g_new)
    denominator = (params["beta"] + tf.sqrt(n_new)) / params["alpha"] + params["lambda2"]
    w_new = tf.where(tf.abs(z_new) > params["lambda1"], (params["lambda1"] * tf.sign(z_new) - z_new) / denominator,
                     tf.zeros_like(z_new))
    return [z_new, n_new, g_new, w_new]


class CustomizedFtrlT(FtrlTBase, CustomizedOptimizer):
    """Hash FTRL-T (see the module docstring) on table rows."""

    slot_init_values = {"z": 0.0, "n": 0.0, "g": 0.0, "w": 0.0}


def create_hash_optimizer(learning_rate, use_locking: bool = False, name: str = "Ftrl_t",
                          **kwargs) -> CustomizedFtrlT:
    """Hash FTRL-T (Rec SDK's ``mx_rec.optimizers.ftrl_t`` signature).

    Args:
        learning_rate: float in [0, 10], or a tensor / variable / callable (not used by the update).
        kwargs: alpha (> 0, default 0.06), beta (>= 0, 1.0), lambda1 (>= 0, 0.0), lambda2 (>= 0, 0.0),
            epsilon (decay in [0, 1), 0.0), grad_factor (smoothing in [0, 1), 0.0); z_name / n_name /
            g_name: suffixes of the slot variables' names.

    Example:
        >>> from mx_rec.optimizers.ftrl_t import create_hash_optimizer
        >>> sparse_optimizer = create_hash_optimizer(0.01, alpha=0.1, lambda1=0.001)
    """
    check_learning_rate(learning_rate, name)
    check_name(name, "Ftrl_t")
    check_kwargs(name, kwargs)
    return CustomizedFtrlT(learning_rate, use_locking, name, **kwargs)


def check_kwargs(name: str, kwargs: dict) -> None:
    """FTRL-T's keywords and their ranges; TypeError / ValueError naming the optimizer and the keyword."""
    unknown = sorted(set(kwargs) - set(_DEFAULTS) - set(_NAMES))
    if unknown:
        raise TypeError(f"{name}: unknown keyword(s) {unknown}; accepted: {sorted(_DEFAULTS) + list(_NAMES)}")
    limits = {"alpha": (0.0, None, False), "beta": (0.0, None, True), "lambda1": (0.0, None, True),
              "lambda2": (0.0, None, True), "epsilon": (0.0, 1.0, True), "grad_factor": (0.0, 1.0, True)}
    for key, (low, high, closed) in limits.items():
        value = kwargs.get(key, _DEFAULTS[key])
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            if isinstance(value, (tf.Tensor, tf.Variable)):
                continue
            raise TypeError(f"{name}: {key} must be a float or a tensor, got {value!r}")
        if value < low or (value == low and not closed) or (high is not None and value >= high):
            raise ValueError(f"{name}: {key}={value} is outside {'[' if closed else '('}{low}, "
                             f"{high if high is not None else 'inf'})")
