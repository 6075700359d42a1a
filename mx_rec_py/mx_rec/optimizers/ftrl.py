"""Hash FTRL: TF's sparse FTRL-proximal update on the looked-up rows; accum and linear are table slots."""
import tensorflow as tf

from mx_rec.optimizers.base import CustomizedOptimizer, check_learning_rate, check_name

_FTRL_KWARGS = {"learning_rate_power": -0.5, "initial_accumulator_value": 0.1, "l1_regularization_strength": 0.0,
                "l2_regularization_strength": 0.0, "accum_name": None, "linear_name": None,
                "l2_shrinkage_regularization_strength": 0.0}


class CustomizedFtrl(tf.compat.v1.train.FtrlOptimizer, CustomizedOptimizer):
    """TF's FtrlOptimizer (ResourceSparseApplyFtrlV2) restricted to table variables."""

    def __init__(self, learning_rate, use_locking, name, **kwargs):
        super().__init__(learning_rate=learning_rate, use_locking=use_locking, name=name, **kwargs)
        self.slot_init_values = {"accum": float(kwargs["initial_accumulator_value"]), "linear": 0.0}

    def _prepare(self):
        rate = self._learning_rate  # TF's FTRL takes no callable learning rate; the others do, so this does too
        self._learning_rate = self._call_if_callable(rate)
        try:
            super()._prepare()
        finally:
            self._learning_rate = rate


def create_hash_optimizer(learning_rate, use_locking: bool = False, name: str = "Ftrl", **kwargs):
    """Hash FTRL (Rec SDK signature); kwargs as TF's FtrlOptimizer (learning_rate_power, l1/l2 ...)."""
    check_learning_rate(learning_rate, name)
    check_name(name, "Ftrl")
    unknown = sorted(set(kwargs) - set(_FTRL_KWARGS))
    if unknown:
        raise TypeError(f"{name}: unknown keyword(s) {unknown}; accepted: {sorted(_FTRL_KWARGS)}")
    params = {**_FTRL_KWARGS, **kwargs}
    return CustomizedFtrl(learning_rate, use_locking, name, **params)
