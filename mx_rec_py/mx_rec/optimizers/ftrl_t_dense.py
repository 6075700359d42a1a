"""FTRL-T for dense variables (Rec SDK's ``mx_rec.optimizers.ftrl_t_dense``): the update of
``mx_rec.optimizers.ftrl_t`` on every element of a plain ``tf.Variable``, for a model's dense part."""
import tensorflow as tf

from mx_rec.optimizers.base import check_learning_rate, check_name
from mx_rec.optimizers.ftrl_t import FtrlTBase, check_kwargs, ftrl_t_step


class CustomizedFtrlTZ(FtrlTBase):
    """FTRL-T on dense variables (a dense gradient updates every element; an IndexedSlices one, its rows)."""

    def _resource_apply_dense(self, grad, handle):
        states = [self.get_slot(handle, s) for s in ("z", "n", "g", "w")]
        new = ftrl_t_step(self._params_for(handle), *(s.read_value() for s in states), grad)
        return tf.group(*[v.assign(u, read_value=False) for v, u in zip(states + [handle], new + [new[-1]])])

    def _apply_dense(self, grad, var):
        states = [self.get_slot(var, s) for s in ("z", "n", "g", "w")]
        new = ftrl_t_step(self._params_for(var), *(tf.identity(s) for s in states), grad)
        return tf.group(*[tf.compat.v1.assign(v, u) for v, u in zip(states + [var], new + [new[-1]])])


def create_ftrl_dense_optimizer(learning_rate, use_locking: bool = False, name: str = "Ftrl_t_dense",
                                **kwargs) -> CustomizedFtrlTZ:
    """Dense FTRL-T (Rec SDK signature); keywords as ``ftrl_t.create_hash_optimizer``.

    Example:
        >>> from mx_rec.optimizers.ftrl_t_dense import create_ftrl_dense_optimizer
        >>> dense_optimizer = create_ftrl_dense_optimizer(0.01, alpha=0.1)
    """
    check_learning_rate(learning_rate, name)
    check_name(name, "Ftrl_t_dense")
    check_kwargs(name, kwargs)
    return CustomizedFtrlTZ(learning_rate, use_locking, name, **kwargs)
