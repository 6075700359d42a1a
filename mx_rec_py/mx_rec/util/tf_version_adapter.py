"""Door kept for Rec SDK scripts: the NPU adapter names, each mapped to its CPU/GPU counterpart.

| name                     | on an NPU (npu_bridge / npu_device) | here |
|--------------------------|-------------------------------------|------|
| ``hccl_ops``               | HCCL collectives                    | ``mx_rec.util.communication.hccl_ops`` (Horovod) |
| ``npu_ops``                | NPU system ops, NPU dropout         | no-op system ops, ``tf.nn.dropout`` |
| ``NPUCheckpointSaverHook`` | checkpoint hook of ``NPUEstimator`` | ``tf.compat.v1.train.CheckpointSaverHook`` |
| ``NPULossScaleOptimizer``  | loss-scaled optimizer               | :class:`NPULossScaleOptimizer` (same scaling) |

Example:
    >>> from mx_rec.util.tf_version_adapter import hccl_ops, NPULossScaleOptimizer
    >>> opt = NPULossScaleOptimizer(tf.compat.v1.train.AdamOptimizer(0.01), 1024.0)  # doctest: +SKIP
"""
from types import SimpleNamespace
from typing import Any, List, Optional, Tuple

import tensorflow as tf

from mx_rec.util.communication import hccl_ops  # noqa: F401
from mx_rec.system.log import log_once

def _log_once(name: str) -> None:
    log_once(f"npu_ops.{name}", "npu_ops.%s is NPU-only; it has no effect here", name)


def _initialize_system(*args: Any, **kwargs: Any) -> tf.Operation:
    _log_once("initialize_system")
    return tf.no_op(name="npu_initialize_system")


def _shutdown_system(*args: Any, **kwargs: Any) -> tf.Operation:
    _log_once("shutdown_system")
    return tf.no_op(name="npu_shutdown_system")


def _dropout(x: tf.Tensor, keep_prob: float, noise_shape=None, seed=None, name=None) -> tf.Tensor:
    """NPU dropout (``keep_prob`` as in TF1): ``tf.nn.dropout`` with ``rate = 1 - keep_prob``."""
    return tf.nn.dropout(x, rate=1.0 - keep_prob, noise_shape=noise_shape, seed=seed, name=name)


npu_ops = SimpleNamespace(initialize_system=_initialize_system, shutdown_system=_shutdown_system,
                          NPUInit=_initialize_system, NPUShutdown=_shutdown_system, dropout=_dropout)


class NPUCheckpointSaverHook(tf.compat.v1.train.CheckpointSaverHook):
    """``NPUEstimator``'s checkpoint hook: TF's ``CheckpointSaverHook`` with the same arguments."""


def _scale(grad, factor: tf.Tensor):
    if grad is None:
        return None
    if isinstance(grad, tf.IndexedSlices):
        return tf.IndexedSlices(grad.values * tf.cast(factor, grad.values.dtype), grad.indices, grad.dense_shape)
    return grad * tf.cast(factor, grad.dtype)


class NPULossScaleOptimizer(tf.compat.v1.train.Optimizer):
    """Scale the loss before differentiating and unscale the gradients, around ``opt``.

    Args:
        opt: any TF1 optimizer (dense, hash or by-address).
        loss_scale_manager: a number (fixed scale), None (1), or an object with ``get_loss_scale()``
            (and optionally ``update_loss_scale(is_finite)``, run with each apply), as NPU's managers have.
        is_distributed: accepted for Rec SDK compatibility (gradients are reduced by mx_rec already).
    """

    def __init__(self, opt: tf.compat.v1.train.Optimizer, loss_scale_manager: Any = None,
                 is_distributed: bool = False) -> None:
        if not isinstance(opt, tf.compat.v1.train.Optimizer):
            raise TypeError(f"NPULossScaleOptimizer: opt must be a tf.compat.v1.train.Optimizer, got {opt!r}")
        super().__init__(use_locking=False, name=f"LossScale{opt.get_name()}")
        self._opt = opt
        self._manager = loss_scale_manager
        self._is_distributed = is_distributed

    def _loss_scale(self) -> tf.Tensor:
        manager = self._manager
        if manager is None:
            return tf.constant(1.0)
        if isinstance(manager, (int, float)) and not isinstance(manager, bool):
            return tf.constant(float(manager))
        if hasattr(manager, "get_loss_scale"):
            return tf.cast(manager.get_loss_scale(), tf.float32)
        raise TypeError(f"NPULossScaleOptimizer: loss_scale_manager must be a number, None or have "
                        f"get_loss_scale(), got {manager!r}")

    def compute_gradients(self, loss, var_list=None, **kwargs) -> List[Tuple[Any, Any]]:
        scale = self._loss_scale()
        grads = self._opt.compute_gradients(loss * tf.cast(scale, loss.dtype), var_list=var_list, **kwargs)
        return [(_scale(g, 1.0 / scale), v) for g, v in grads]

    def apply_gradients(self, grads_and_vars, global_step=None, name: Optional[str] = None):
        grads_and_vars = list(grads_and_vars)
        apply = self._opt.apply_gradients(grads_and_vars, global_step=global_step, name=name)
        if not hasattr(self._manager, "update_loss_scale"):
            return apply
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g.values if isinstance(g, tf.IndexedSlices) else g))
                                for g, _ in grads_and_vars if g is not None])
        return tf.group(apply, self._manager.update_loss_scale(finite))

    def get_slot(self, var, name):
        return self._opt.get_slot(var, name)

    def get_slot_names(self):
        return self._opt.get_slot_names()

    def variables(self):
        return self._opt.variables()

    def _apply_dense(self, grad, var):  # not reached: apply_gradients delegates to the wrapped optimizer
        raise NotImplementedError

    def _resource_apply_dense(self, grad, handle):
        raise NotImplementedError

    def _resource_apply_sparse(self, grad, handle, indices):
        raise NotImplementedError

    def _apply_sparse(self, grad, var):
        raise NotImplementedError


__all__ = ["hccl_ops", "npu_ops", "NPUCheckpointSaverHook", "NPULossScaleOptimizer"]
